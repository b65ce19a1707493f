"""The one exception family of onnxprune and the CLI exit code of each member."""

from __future__ import annotations


class OnnxPruneError(Exception):
    """Root of every error onnxprune raises on purpose.

    ``exit_code`` is what the CLI exits with: 2 for bad user input, 3 when the model cannot be
    pruned as asked, 1 for internal errors.
    """

    exit_code = 1


class InputError(OnnxPruneError):
    """The user's input (file, option, data) is wrong; the message says how to fix it."""

    exit_code = 2


class CannotPruneError(OnnxPruneError):
    """The model is valid but cannot be pruned as asked (target unreachable, all barriers)."""

    exit_code = 3


class VerificationError(OnnxPruneError):
    """A pruned model failed verification; nothing was written."""

    exit_code = 1


class UnsupportedOpError(OnnxPruneError):
    """The torch shim has no kernel for an op (names op, domain and opset)."""

    exit_code = 3
