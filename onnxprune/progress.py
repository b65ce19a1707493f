r"""Progress of long steps on stderr: a bar on a terminal, plain periodic lines in logs.

One small facility for every long step (analysis batches, allocation, compensation,
refinement, distillation epochs, verification, latency runs)::

    from onnxprune import progress

    for batch in progress.track(batches, total=n, what="analysis", unit="batch"):
        ...

    with progress.task("distillation", total=epochs, unit="epoch") as bar:
        for epoch in range(epochs):
            ...
            bar.advance(info=f"fidelity {cos:.4f}")

    progress.note("using the data-free baseline (uniform L1, no compensation)")

On a terminal (``stderr.isatty()``) the task is one line redrawn with ``\r``; anywhere else
(logs, CI, pipes) it prints a plain line at most every ``interval`` seconds (5, or
``$ONNXPRUNE_PROGRESS_INTERVAL``) and one when a step that took that long ends, never a
``\r``; steps shorter than that stay out of the log. :func:`configure` sets the verbosity
once (the CLI does it from ``-q``/``-v``): ``QUIET`` prints nothing, ``NORMAL`` the tasks
and notes, ``VERBOSE`` also :func:`detail` lines. Library callers that never configure get
progress only on a terminal.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO, TypeVar

QUIET, NORMAL, VERBOSE = 0, 1, 2
T = TypeVar("T")


@dataclass
class _Settings:
    level: int | None = None  # None: NORMAL on a terminal, QUIET otherwise
    stream: TextIO | None = None  # None: sys.stderr at the time of writing
    tty: bool | None = None  # None: ask the stream
    # seconds between plain lines; a step shorter than this prints none
    interval: float = field(
        default_factory=lambda: _env_float("ONNXPRUNE_PROGRESS_INTERVAL", 5.0))


def _env_float(name: str, default: float) -> float:
    try:
        return max(0.0, float(os.environ.get(name, default)))
    except ValueError:
        return default


_settings = _Settings()


def configure(
    level: int | None = None,
    *,
    stream: TextIO | None = None,
    tty: bool | None = None,
    interval: float | None = None,
) -> None:
    """Set how progress is shown (the CLI calls this once from ``-q``/``-v``).

    Args:
        level: ``QUIET``, ``NORMAL`` or ``VERBOSE``; ``None`` restores the default
            (``NORMAL`` on a terminal, else ``QUIET``).
        stream: where to write (default: ``sys.stderr`` when writing).
        tty: force the bar (``True``) or plain lines (``False``); default: ask the stream.
        interval: seconds between plain lines (``0``: a line per step).

    """
    _settings.level, _settings.stream, _settings.tty = level, stream, tty
    if interval is not None:
        _settings.interval = max(0.0, float(interval))


def level() -> int:
    """Return the verbosity in effect."""
    if _settings.level is not None:
        return _settings.level
    return NORMAL if _is_tty() else QUIET


def _stream() -> TextIO:
    return _settings.stream or sys.stderr


def _is_tty() -> bool:
    if _settings.tty is not None:
        return _settings.tty
    isatty = getattr(_stream(), "isatty", None)
    return bool(isatty and isatty())


def _write(text: str) -> None:
    stream = _stream()
    stream.write(text)
    stream.flush()


_bars: list[Task] = []  # tasks drawing a bar on the terminal now


def note(message: str) -> None:
    """Print one line (what mode runs, what was applied) unless quiet."""
    if level() >= NORMAL:
        _line_above_bars(f"onnxprune: {message}\n")


def detail(message: str) -> None:
    """Print one line only with ``-v``."""
    if level() >= VERBOSE:
        _line_above_bars(f"onnxprune: {message}\n")


def _line_above_bars(text: str) -> None:
    # on a terminal a bar may be on the current line: clear it, print, let it redraw below
    _write(f"\r\x1b[K{text}" if _bars else text)


class Task:
    """A long step of ``total`` units; use :func:`task` or :func:`track` to make one."""

    def __init__(self, what: str, total: int | None, unit: str) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self.info = ""
        self._start = time.monotonic()
        self._last = self._start
        self._shown = level() >= NORMAL
        self._tty = _is_tty()
        self._lines = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        if self._shown and self._tty:
            _bars.append(self)
        if self._shown and (self._tty or _settings.interval > 0):
            # a heartbeat, so that one long unit (a batch of 34 s) still shows time passing
            self._beat = threading.Thread(target=self._heartbeat, daemon=True)
            self._beat.start()

    def advance(self, n: int = 1, *, info: str = "") -> None:
        """Count ``n`` more units done; ``info`` (e.g. the loss) is shown with the count."""
        self.done += n
        if info:
            self.info = info
        if self._shown:
            self._update(time.monotonic())

    def close(self) -> None:
        """End the task: the bar's final state, or a last plain line."""
        if not self._shown:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._tty:
            self._draw()
            _write("\n")
            if self in _bars:
                _bars.remove(self)
        elif self._lines or self._elapsed() >= _settings.interval:
            self._line(f"done, {self._count()}")  # short steps stay out of the log

    def _update(self, now: float) -> None:
        with self._lock:
            if self._stop.is_set() or self._finished():  # close() writes the end
                return
            if self._tty and now - self._last >= 0.1:
                self._last = now
                self._draw()
            elif not self._tty and now - self._last >= _settings.interval:
                self._last = now
                self._line(self._count())
                self._lines += 1

    def _heartbeat(self) -> None:
        wait = 0.5 if self._tty else max(0.5, _settings.interval)
        while not self._stop.wait(wait):
            self._update(time.monotonic())

    def _finished(self) -> bool:
        return self.total is not None and self.done >= self.total

    def _elapsed(self) -> float:
        return time.monotonic() - self._start

    def _count(self) -> str:
        units = _plural(self.unit)
        if self.total:
            text = f"{self.done}/{self.total} {units} ({100 * self.done // self.total}%)"
            left = self._eta()
        elif self.done:
            text, left = f"{self.done} {units}", ""
        else:
            return f"{self._elapsed():.1f} s" + (f", {self.info}" if self.info else "")
        text += f", {self._elapsed():.1f} s{left}"
        return f"{text}, {self.info}" if self.info else text

    def _eta(self) -> str:
        if not self.done or not self.total or self.done >= self.total:
            return ""
        rest = self._elapsed() / self.done * (self.total - self.done)
        return f", about {rest:.0f} s left"

    def _line(self, text: str) -> None:
        _write(f"onnxprune: {self.what}: {text}\n")

    def _draw(self) -> None:
        width = 24
        frac = min(1.0, self.done / self.total) if self.total else 0.0
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        _write(f"\r{self.what} [{bar}] {self._count()}\x1b[K")


def _plural(unit: str) -> str:
    if unit.endswith("s"):
        return unit
    return {"batch": "batches"}.get(unit, f"{unit}s")


class _TaskContext:
    def __init__(self, task: Task) -> None:
        self.task = task

    def __enter__(self) -> Task:
        return self.task

    def __exit__(self, *exc: object) -> None:
        self.task.close()


def task(what: str, *, total: int | None = None, unit: str = "step") -> _TaskContext:
    """Return a context manager around a :class:`Task` (closed on exit, also on errors)."""
    return _TaskContext(Task(what, total, unit))


def track(
    items: Iterable[T], *, what: str, total: int | None = None, unit: str = "step"
) -> Iterator[T]:
    """Yield ``items`` while showing how many were consumed (a one-line wrapper for loops)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with task(what, total=total, unit=unit) as t:
        for item in items:
            yield item
            t.advance()
