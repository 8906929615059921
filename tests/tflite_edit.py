"""Helpers that rewrite .tflite files through the flatbuffers object API (the schema module tflite-micro
ships), to make malformed and unsupported models for tests."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import flatbuffers
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S


def edit(path: Path, fn: Callable[[S.ModelT], None]) -> bytes:
    model = S.ModelT.InitFromObj(S.Model.GetRootAsModel(Path(path).read_bytes(), 0))
    fn(model)
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


BuiltinOperator = S.BuiltinOperator
TensorType = S.TensorType
