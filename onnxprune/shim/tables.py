"""Name-keyed views of the shim's parameters and buffers.

ONNX tensor names contain dots, which ``nn.Module`` attribute names may not, so tensors are
registered under generated keys and exposed through these mappings by their ONNX names.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import torch
from torch import nn

from onnxprune.errors import InputError


class ParamTable(MutableMapping[str, nn.Parameter]):
    """ONNX name -> ``nn.Parameter`` held by a store module; assignment re-registers.

    Names in ``frozen`` (statistics such as BatchNormalization's running mean and variance)
    stay non-trainable when replaced: the new parameter gets ``requires_grad=False``.
    """

    def __init__(
        self, store: nn.Module, keys: dict[str, str], frozen: frozenset[str] = frozenset()
    ) -> None:
        self._store = store
        self._keys = keys
        self.frozen = frozen

    def on(self, store: nn.Module) -> ParamTable:
        """Return the same names over another store with the same keys (a copied shim's)."""
        return ParamTable(store, dict(self._keys), self.frozen)

    def __getitem__(self, name: str) -> nn.Parameter:
        return getattr(self._store, self._keys[name])

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        if name not in self._keys:
            raise InputError(
                f"'{name}' is not a float initializer or Constant of the model; only existing "
                "parameters can be replaced"
            )
        param = value if isinstance(value, nn.Parameter) else nn.Parameter(value)
        if name in self.frozen:
            param.requires_grad_(False)
        self._store.register_parameter(self._keys[name], param)

    def __delitem__(self, name: str) -> None:
        raise InputError(f"parameter '{name}' cannot be removed from the shim; replace it instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class BufferTable(MutableMapping[str, torch.Tensor]):
    """ONNX name -> buffer (non-float constant) held by a store module."""

    def __init__(self, store: nn.Module, keys: dict[str, str]) -> None:
        self._store = store
        self._keys = keys

    def on(self, store: nn.Module) -> BufferTable:
        """Return the same names over another store with the same keys (a copied shim's)."""
        return BufferTable(store, dict(self._keys))

    def __getitem__(self, name: str) -> torch.Tensor:
        return getattr(self._store, self._keys[name])

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        if name not in self._keys:
            raise InputError(f"'{name}' is not a non-float constant of the model")
        self._store.register_buffer(self._keys[name], value)

    def __delitem__(self, name: str) -> None:
        raise InputError(f"constant '{name}' cannot be removed from the shim; replace it instead")

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
