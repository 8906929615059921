"""The compiler's intermediate representation: tensors and ops of one subgraph, as read from .tflite."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                      # numpy dtype name: int8, uint8, int16, int32, float32, ...
    scale: np.ndarray | None = None  # float64 per tensor (len 1) or per axis
    zero_point: np.ndarray | None = None
    quant_axis: int = 0
    data: np.ndarray | None = None  # constant contents, shaped

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and len(self.scale) > 1

    @property
    def s(self) -> float:
        """The per-tensor scale (the first one for per-axis tensors)."""
        if self.scale is None or len(self.scale) == 0:
            raise ValueError(f"tensor {self.index} '{self.name}' has no quantization scale")
        return float(self.scale[0])

    @property
    def zp(self) -> int:
        if self.zero_point is None or len(self.zero_point) == 0:
            return 0
        return int(self.zero_point[0])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Op:
    index: int
    opname: str                     # TFLite builtin name, e.g. CONV_2D
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)  # builtin options, snake_case keys

    def where(self, path: str = "") -> str:
        at = f"{path}: " if path else ""
        return f"{at}node {self.index} ({self.opname})"


@dataclass
class Graph:
    tensors: list[Tensor]
    ops: list[Op]
    inputs: list[int]
    outputs: list[int]
    path: str = ""
    description: str = ""
