"""Elementwise arithmetic, math, comparison, logic and cast kernels."""

from __future__ import annotations

import functools

import torch

from onnxprune.shim.dtypes import torch_dtype
from onnxprune.shim.registry import op

Tensor = torch.Tensor


def _is_int(t: Tensor) -> bool:
    return not (t.is_floating_point() or t.is_complex() or t.dtype is torch.bool)


@op("Add", 7)
def Add(A: Tensor, B: Tensor) -> Tensor:
    """Add with numpy broadcasting."""
    return A + B


@op("Sub", 7)
def Sub(A: Tensor, B: Tensor) -> Tensor:
    """Subtract B from A."""
    return A - B


@op("Mul", 7)
def Mul(A: Tensor, B: Tensor) -> Tensor:
    """Multiply A by B."""
    return A * B


@op("Div", 7)
def Div(A: Tensor, B: Tensor) -> Tensor:
    """Divide A by B; integer division truncates toward zero like onnxruntime."""
    if _is_int(A) and _is_int(B):
        return torch.div(A, B, rounding_mode="trunc")
    return A / B


@op("Pow", 7)
def Pow(X: Tensor, Y: Tensor) -> Tensor:
    """X ** Y, result in X's dtype."""
    return torch.pow(X, Y).to(X.dtype)


@op("Mod", 10)
def Mod(A: Tensor, B: Tensor, *, fmod: int = 0) -> Tensor:
    """Remainder: sign of the divisor (fmod=0) or of the dividend (fmod=1)."""
    return torch.fmod(A, B) if fmod else torch.remainder(A, B)


@op("Max", 6)
def Max(*data: Tensor) -> Tensor:
    """Elementwise maximum of all inputs."""
    return functools.reduce(torch.maximum, data)


@op("Min", 6)
def Min(*data: Tensor) -> Tensor:
    """Elementwise minimum of all inputs."""
    return functools.reduce(torch.minimum, data)


@op("Sum", 6)
def Sum(*data: Tensor) -> Tensor:
    """Elementwise sum of all inputs."""
    return functools.reduce(torch.add, data)


@op("Mean", 6)
def Mean(*data: Tensor) -> Tensor:
    """Elementwise mean of all inputs."""
    return functools.reduce(torch.add, data) / len(data)


@op("Neg", 6)
def Neg(X: Tensor) -> Tensor:
    """-X."""
    return -X


@op("Abs", 6)
def Abs(X: Tensor) -> Tensor:
    """|X|."""
    return torch.abs(X)


@op("Reciprocal", 6)
def Reciprocal(X: Tensor) -> Tensor:
    """1 / X."""
    return torch.reciprocal(X)


@op("Floor", 6)
def Floor(X: Tensor) -> Tensor:
    """floor(X)."""
    return torch.floor(X)


@op("Ceil", 6)
def Ceil(X: Tensor) -> Tensor:
    """ceil(X)."""
    return torch.ceil(X)


@op("Round", 11)
def Round(X: Tensor) -> Tensor:
    """Round half to even."""
    return torch.round(X)


@op("Sign", 9)
def Sign(X: Tensor) -> Tensor:
    """sign(X)."""
    return torch.sign(X)


@op("Sqrt", 6)
def Sqrt(X: Tensor) -> Tensor:
    """sqrt(X)."""
    return torch.sqrt(X)


@op("Exp", 6)
def Exp(X: Tensor) -> Tensor:
    """exp(X)."""
    return torch.exp(X)


@op("Log", 6)
def Log(X: Tensor) -> Tensor:
    """Natural log."""
    return torch.log(X)


@op("Erf", 9)
def Erf(X: Tensor) -> Tensor:
    """Gauss error function."""
    return torch.erf(X)


@op("Sin", 7)
def Sin(X: Tensor) -> Tensor:
    """sin(X)."""
    return torch.sin(X)


@op("Cos", 7)
def Cos(X: Tensor) -> Tensor:
    """cos(X)."""
    return torch.cos(X)


@op("IsNaN", 9)
def IsNaN(X: Tensor) -> Tensor:
    """Mask of NaN elements."""
    return torch.isnan(X)


@op("IsInf", 10)
def IsInf(X: Tensor, *, detect_negative: int = 1, detect_positive: int = 1) -> Tensor:
    """Mask of infinite elements of the selected signs."""
    pos = torch.isposinf(X) if detect_positive else torch.zeros_like(X, dtype=torch.bool)
    neg = torch.isneginf(X) if detect_negative else torch.zeros_like(X, dtype=torch.bool)
    return pos | neg


@op("Equal", 7)
def Equal(A: Tensor, B: Tensor) -> Tensor:
    """Compare A == B."""
    return torch.eq(A, B)


@op("Less", 7)
def Less(A: Tensor, B: Tensor) -> Tensor:
    """Compare A < B."""
    return torch.lt(A, B)


@op("Greater", 7)
def Greater(A: Tensor, B: Tensor) -> Tensor:
    """Compare A > B."""
    return torch.gt(A, B)


@op("LessOrEqual", 12)
def LessOrEqual(A: Tensor, B: Tensor) -> Tensor:
    """Compare A <= B."""
    return torch.le(A, B)


@op("GreaterOrEqual", 12)
def GreaterOrEqual(A: Tensor, B: Tensor) -> Tensor:
    """Compare A >= B."""
    return torch.ge(A, B)


@op("Not", 1)
def Not(X: Tensor) -> Tensor:
    """Logical not."""
    return torch.logical_not(X)


@op("And", 7)
def And(A: Tensor, B: Tensor) -> Tensor:
    """Logical and."""
    return torch.logical_and(A, B)


@op("Or", 7)
def Or(A: Tensor, B: Tensor) -> Tensor:
    """Logical or."""
    return torch.logical_or(A, B)


@op("Xor", 7)
def Xor(A: Tensor, B: Tensor) -> Tensor:
    """Logical xor."""
    return torch.logical_xor(A, B)


@op("Where", 9)
def Where(condition: Tensor, X: Tensor, Y: Tensor) -> Tensor:
    """X where condition else Y."""
    return torch.where(condition.to(torch.bool), X, Y)


@op("Cast", 6)
def Cast(input: Tensor, *, to: int, saturate: int = 1, round_mode: str = "up") -> Tensor:
    """Convert to the ONNX element type ``to`` (float -> int truncates toward zero)."""
    return input.to(torch_dtype(to))


@op("CastLike", 15)
def CastLike(
    input: Tensor, target_type: Tensor, *, saturate: int = 1, round_mode: str = "up"
) -> Tensor:
    """Convert to the dtype of ``target_type``."""
    return input.to(target_type.dtype)
