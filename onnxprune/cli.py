"""Command line: parse into options, call the public API, map errors to exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from onnxprune import progress
from onnxprune.errors import OnnxPruneError

# Each command module exposes ``register(subparsers)``, which adds its parser and sets ``run``.
COMMANDS = ("inspect", "prune", "apply", "analyze", "bench")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        if "arguments are required: model" in message:
            # --input-shapes/--preprocess take several values and swallow a model after them
            message += (" (give the model before options that take several values: "
                        "'onnxprune COMMAND MODEL --input-shapes x:1,3,224,224')")
        self.exit(2, f"onnxprune: error: {message}; see 'onnxprune --help'\n")


DESCRIPTION = """\
Structured pruning of ONNX models, directly in the ONNX graph: no training code needed.
The usual order is inspect (what can be pruned), analyze (how much, on your data), prune
(to a target, verified) and bench (latency and fidelity against the original).
"""
EPILOG = """\
examples:
  onnxprune inspect model.onnx
  onnxprune prune model.onnx -o pruned.onnx --target-macs 0.5 --data calib.npz
  onnxprune prune model.onnx -o pruned.onnx --target-macs 0.5 --data images/ --preprocess imagenet
  onnxprune bench model.onnx pruned.onnx --data calib.npz

'onnxprune COMMAND --help' for the options of a command; -v/-q work before or after it.
"""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``onnxprune`` parser from the command modules."""
    parser = _Parser(prog="onnxprune", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    _add_verbosity(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser,
                                metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"onnxprune.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"onnxprune.commands.{name}":
                raise
            continue
        module.register(sub)
    for command in sub.choices.values():
        # SUPPRESS: a flag after the command sets the value, its absence keeps the global one
        _add_verbosity(command, default=argparse.SUPPRESS)
    return parser


def _add_verbosity(p: argparse.ArgumentParser, *, default: object) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", default=default,
                       help="more detail: debug log, per-step lines and tracebacks")
    group.add_argument("-q", "--quiet", action="store_true", default=default,
                       help="no progress or notes, errors only")


def _version() -> str:
    from importlib import metadata

    from onnxprune import __version__

    parts = []
    for dist in ("onnx", "onnxruntime"):
        try:
            parts.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{dist} missing")
    py = ".".join(map(str, sys.version_info[:3]))
    return f"onnxprune {__version__} ({', '.join(parts)}, python {py})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return its exit code (2 bad input, 3 cannot prune, 1 internal)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Also covers Ctrl-C while the command modules (torch, onnxruntime) are imported.
        return _interrupted()
    except ImportError as e:
        # A Ctrl-C inside a C extension's initialisation surfaces as an ImportError caused by
        # the KeyboardInterrupt (onnxruntime: "initialization failed").
        if _caused_by_interrupt(e):
            return _interrupted()
        raise


def _interrupted() -> int:
    sys.stderr.write(
        "onnxprune: interrupted; no partial output was left behind - run the command again\n"
    )
    return 130


def _caused_by_interrupt(e: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _one_line(text: str) -> str:
    """Messages are one line on stderr, whatever a library put in them."""
    return " ".join(text.split())


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose and args.quiet:
        parser.error("-v/--verbose and -q/--quiet contradict each other; give one")
    level = logging.DEBUG if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logging.basicConfig(level=level, format="onnxprune: %(levelname)s: %(message)s")
    progress.configure(
        progress.VERBOSE if args.verbose else progress.QUIET if args.quiet else progress.NORMAL
    )
    try:
        return int(args.run(args) or 0)
    except OnnxPruneError as e:
        if args.verbose:
            logging.exception("details")
        sys.stderr.write(f"onnxprune: error: {_one_line(str(e))}\n")
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (`onnxprune inspect m.onnx | head`): stop quietly, like `cat`.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as e:  # noqa: BLE001 - last line of defence: one line, not a traceback
        if args.verbose:
            logging.exception("internal error")
        sys.stderr.write(
            f"onnxprune: internal error: {type(e).__name__}: {_one_line(str(e))}; rerun with "
            "--verbose and "
            "report it with the traceback\n"
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
