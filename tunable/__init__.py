"""tunable: a runtime power-tunable int8 CNN inference engine."""
from .errors import (InputError, KnobError, ModelFormatError, PlanError, RuntimeRunError, TunableError,
                     UnsupportedModelError)
from .session import LayerInfo, Model, RunStats, Session, TensorInfo, compile_model, load

__version__ = "0.1.0"
__all__ = ["load", "compile_model", "Model", "Session", "TensorInfo", "LayerInfo", "RunStats", "TunableError",
           "ModelFormatError", "UnsupportedModelError", "PlanError", "RuntimeRunError", "KnobError", "InputError"]
