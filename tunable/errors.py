"""Typed exceptions. Every message says what is wrong and where (file, node, op, tensor)."""
from __future__ import annotations


class TunableError(Exception):
    """Base class of every error this library raises on purpose."""


class ModelFormatError(TunableError):
    """The file is not a readable .tflite model (not a flatbuffer, truncated, corrupt)."""


class UnsupportedModelError(TunableError):
    """A readable model that this engine cannot run (float model, unsupported op or quantization)."""


class PlanError(TunableError):
    """The C runtime rejected a compiled plan; carries the runtime's error code."""

    def __init__(self, message: str, code: int = 0, code_name: str = ""):
        super().__init__(message)
        self.code = code
        self.code_name = code_name


class RuntimeRunError(TunableError):
    """An inference failed inside the runtime."""


class KnobError(TunableError, ValueError):
    """A knob setting names an unknown layer or has an out-of-range value."""


class InputError(TunableError, ValueError):
    """Input data of the wrong shape, dtype or range."""
