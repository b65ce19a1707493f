"""The torch shim: an ONNX graph executed node by node with PyTorch ops."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from onnxprune import ir
from onnxprune.errors import InputError, OnnxPruneError
from onnxprune.shim.dtypes import FLOAT_DTYPES, exact_fp32, to_torch
from onnxprune.shim.ops._util import axis_of
from onnxprune.shim.plan import Plan, Step, build_plan
from onnxprune.shim.tables import BufferTable, ParamTable
from onnxprune.shim.writeback import write_back

log = logging.getLogger(__name__)

__all__ = ["Shim"]

Feeds = Mapping[str, "torch.Tensor | np.ndarray"]


class Shim(nn.Module):
    """An ONNX model run with torch ops, weights as ``nn.Parameter``s.

    Float initializers and float ``Constant``-node values become parameters (``params``, by
    ONNX name). Trainable are exactly those with ``requires_grad=True``; not trainable are
    single-element values (epsilons, exponents, scalar factors) and the ``frozen`` ones:
    statistics and shape values such as BatchNormalization's running mean and variance or
    Resize's scales (see ``Kernel.frozen``), which stay frozen even when replaced. Every
    parameter is written back by ``to_onnx``, so a fine-tuning loop is::

        opt = torch.optim.Adam(p for p in shim.parameters() if p.requires_grad)
        ...  # forward, loss, backward, opt.step()
        tuned = shim.to_onnx(model)

    Other constants are buffers (``consts``). Gates multiply channel vectors into any
    tensor; ``watch`` keeps intermediate tensors and their gradients.

    Args:
        model: the ONNX model.
        device: where parameters live and where feeds are moved.

    Raises:
        UnsupportedOpError: the model has an op (or attribute) the shim has no kernel for.
        InputError: the graph is malformed.

    """

    def __init__(self, model: ir.ModelProto, *, device: str | torch.device = "cpu") -> None:
        super().__init__()
        plan = build_plan(model)
        self._names = plan.tensor_names()
        # The constants move into parameters/buffers; the plan keeps no second copy.
        self.plan: Plan = dataclasses.replace(plan, constants=MappingProxyType({}))
        self._store = nn.Module()
        param_keys: dict[str, str] = {}
        buffer_keys: dict[str, str] = {}
        for i, (name, value) in enumerate(plan.constants.items()):
            if value.dtype in FLOAT_DTYPES:
                param_keys[name] = f"p{i}"
                grad = value.numel() > 1 and name not in plan.frozen
                self._store.register_parameter(f"p{i}", nn.Parameter(value, requires_grad=grad))
            else:
                buffer_keys[name] = f"b{i}"
                self._store.register_buffer(f"b{i}", value)
        self.params = ParamTable(self._store, param_keys, plan.frozen & set(param_keys))
        self.consts = BufferTable(self._store, buffer_keys)
        self._fresh(torch.device(device))
        self.to(self._device)

    def _fresh(self, device: torch.device) -> None:
        """Start without gates and watching nothing."""
        self.watched: dict[str, torch.Tensor] = {}
        self._gates: dict[str, tuple[int, torch.Tensor]] = {}
        self._watching: frozenset[str] = frozenset()
        self._retain = True
        self._device = device

    def copy(self) -> Shim:
        """Return an independent shim of the same model holding copies of the current values.

        What ``Shim(model)`` builds, without reading the model again (the plan is shared).
        """
        twin = Shim.__new__(Shim)
        nn.Module.__init__(twin)
        twin._names, twin.plan = self._names, self.plan
        twin._store = copy.deepcopy(self._store)  # the parameters' and buffers' values
        twin.params = self.params.on(twin._store)
        twin.consts = self.consts.on(twin._store)
        for name, param in twin.params.items():
            param.requires_grad_(param.numel() > 1 and name not in self.plan.frozen)
        twin._fresh(self._device)
        return twin

    @property
    def device(self) -> torch.device:
        """The device the shim's tensors live on."""
        first = next(itertools.chain(self._store.parameters(), self._store.buffers()), None)
        return first.device if first is not None else self._device

    @property
    def frozen(self) -> frozenset[str]:
        """Names of the parameters that are never trained (statistics and shape values)."""
        return self.params.frozen

    @property
    def gates(self) -> Mapping[str, tuple[int, torch.Tensor]]:
        """The gates set: tensor name -> (axis, gate vector)."""
        return dict(self._gates)

    def set_gate(self, tensor: str, axis: int, gate: torch.Tensor | None) -> None:
        """Multiply ``gate`` into ``tensor`` along ``axis`` as soon as it is produced.

        Args:
            tensor: name of a tensor of the graph (node output, graph input or constant).
            axis: the axis the gate runs along (negative counts from the end).
            gate: a 1-D tensor as long as that axis, or ``None`` to remove the gate.

        Raises:
            InputError: unknown tensor, or a gate that is not 1-D.

        """
        self._check_name(tensor)
        if gate is None:
            self._gates.pop(tensor, None)
            return
        if not isinstance(gate, torch.Tensor) or gate.dim() != 1:
            raise InputError(f"gate for '{tensor}' must be a 1-D torch tensor")
        self._gates[tensor] = (int(axis), gate)

    @contextlib.contextmanager
    def watch(
        self, tensors: Iterable[str], *, retain_grad: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Keep the named tensors of every forward pass run inside the block.

        Each kept tensor (after its gate, i.e. what consumers read) is stored in
        ``self.watched[name]``. With ``retain_grad`` (the default) it calls
        ``retain_grad()``, so its ``.grad`` is available after backward (also after the
        block ends; the next ``watch`` clears ``watched``). Without it the tensors are only
        kept (for hooks, ``torch.autograd.grad`` or reading activations), and a backward
        pass stores no gradient on them, which saves memory.

        Args:
            tensors: tensor names.
            retain_grad: make the kept tensors keep their gradient in ``.grad``.

        Yields:
            ``self.watched``.

        Raises:
            InputError: a name is not a tensor of the graph.

        """
        names = frozenset(tensors)
        for name in names:
            self._check_name(name)
        self.watched = {}
        self._watching = names
        self._retain = retain_grad
        try:
            yield self.watched
        finally:
            self._watching = frozenset()

    def to_onnx(self, model: ir.ModelProto) -> ir.ModelProto:
        """Return a copy of ``model`` with its float initializers and Constant values updated.

        Every parameter is written, trained or not; frozen ones (statistics) come back
        bit for bit unless they were replaced.

        Args:
            model: the model the shim was built from (or one with the same tensor names).

        Returns:
            The copy; tensors keep their names and dtypes.

        """
        values = {name: p.detach() for name, p in self.params.items()}
        return write_back(model, values)

    def forward(self, feeds: Feeds) -> list[torch.Tensor]:
        """Run the graph.

        Args:
            feeds: graph input name -> tensor or array.

        Returns:
            The graph outputs, in graph order.

        Raises:
            InputError: a required input is missing, a name is unknown, a dtype cannot be
                used, or a gate does not fit its tensor.
            OnnxPruneError: a node failed (the message names it).

        """
        env = self._initial_env(feeds)
        with exact_fp32(self.device):
            for step, frees in zip(self.plan.steps, self.plan.frees, strict=True):
                results = self._run_step(step, env)
                for name, value in zip(step.outputs, results, strict=False):
                    if name:
                        self._publish(env, name, value)
                for name in frees:
                    env.pop(name, None)
        return [env[name] for name in self.plan.outputs]

    def _initial_env(self, feeds: Feeds) -> dict[str, torch.Tensor]:
        known = set(self.plan.inputs) | self.plan.defaults
        unknown = sorted(set(feeds) - known)
        missing = sorted(set(self.plan.inputs) - set(feeds))
        if unknown or missing:
            raise InputError(
                f"feeds do not match the model inputs (missing {missing}, unknown {unknown}); "
                f"the model's inputs are {sorted(self.plan.inputs)}"
            )
        env: dict[str, torch.Tensor] = {}
        for name in self.params:
            self._publish(env, name, self.params[name])
        for name in self.consts:
            self._publish(env, name, self.consts[name])
        for name, value in feeds.items():
            self._publish(env, name, self._feed(name, value))
        return env

    def _feed(self, name: str, value: Any) -> torch.Tensor:
        t = to_torch(value, device=self.device)
        want = self.plan.inputs.get(name)
        if want is None or t.dtype == want:
            return t
        if t.is_floating_point() == (want in FLOAT_DTYPES):
            log.debug("casting feed %s from %s to %s", name, t.dtype, want)
            return t.to(want)
        raise InputError(f"input '{name}' expects {want}, got {t.dtype}; convert the data")

    def _publish(self, env: dict[str, torch.Tensor], name: str, value: torch.Tensor) -> None:
        if name in self._gates:
            value = self._gated(name, value)
        env[name] = value
        if name in self._watching:
            if self._retain and value.requires_grad and not value.is_leaf:
                value.retain_grad()
            self.watched[name] = value

    def _gated(self, name: str, value: torch.Tensor) -> torch.Tensor:
        axis, gate = self._gates[name]
        if not value.is_floating_point() or not -value.dim() <= axis < value.dim():
            raise InputError(
                f"gate on '{name}': tensor is {value.dtype} with shape {list(value.shape)}; "
                f"a gate needs a float tensor with an axis {axis}"
            )
        ax = axis_of(axis, value.dim())
        if gate.numel() != value.shape[ax]:
            raise InputError(
                f"gate on '{name}' has {gate.numel()} entries but axis {axis} of the tensor "
                f"has {value.shape[ax]}; pass a gate of that length"
            )
        shape = [1] * value.dim()
        shape[ax] = -1
        return value * gate.to(device=value.device, dtype=value.dtype).reshape(shape)

    def _run_step(self, step: Step, env: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        args = [env[n] if n else None for n in step.inputs]
        while args and args[-1] is None:
            args.pop()
        for i in step.kernel.frozen:  # statistics take no gradient (F.batch_norm refuses it)
            arg = args[i] if i < len(args) else None
            if arg is not None:
                args[i] = arg.detach()
        attrs = dict(step.attrs)
        if step.kernel.n_out:
            attrs["n_out"] = max(i + 1 for i, n in enumerate(step.outputs) if n)
        where = f"node '{step.name}' ({step.op_type}, opset {step.opset})"
        try:
            out = step.kernel.fn(*args, **attrs)
        except OnnxPruneError as e:
            raise type(e)(f"{where}: {e}") from e
        except Exception as e:
            raise OnnxPruneError(f"{where} failed in the torch shim: {e}") from e
        results = (out,) if isinstance(out, torch.Tensor) else tuple(out)
        if len(results) < sum(1 for n in step.outputs if n):
            raise OnnxPruneError(f"{where}: kernel returned {len(results)} outputs, too few")
        return results

    def _check_name(self, name: str) -> None:
        if name not in self._names:
            raise InputError(f"'{name}' is not a tensor of the model; check the tensor name")


