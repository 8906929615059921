"""Reads a .tflite flatbuffer into the compiler's graph.

The schema comes from the `tflite` package on PyPI (generated from TensorFlow's schema.fbs, kept in step
with TensorFlow releases, pure Python over `flatbuffers`): no TensorFlow or LiteRT at run time. The reader
never trusts the file: every index is checked, and anything malformed raises ModelFormatError naming the
file and the node or tensor.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import ModelFormatError, UnsupportedModelError
from .graph import Graph, Op, Tensor

_TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool",
                 7: "int16", 8: "complex64", 9: "int8", 10: "float64", 16: "uint32", 17: "uint16", 18: "int4"}


def _enum_names(enum_cls) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_OPTION_ENUMS = {"fused_activation_function": "ActivationFunctionType", "padding": "Padding"}


def _read_options(op_fb, tfl) -> dict:
    """All scalar fields of an op's builtin options table, snake_case; enums by name."""
    otype = op_fb.BuiltinOptionsType()
    if otype == 0:
        return {}
    names = _enum_names(tfl.BuiltinOptions)
    cls_name = names.get(otype)
    cls = getattr(tfl, cls_name, None) if cls_name else None
    table = op_fb.BuiltinOptions()
    if cls is None or table is None:
        return {}
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for attr in dir(cls):
        if not attr[0].isupper() or attr in ("Init",) or attr.startswith("GetRootAs") or attr.endswith(
                ("BufferHasIdentifier", "IsNone", "Length")):
            continue
        fn = getattr(opts, attr)
        try:
            if attr.endswith("AsNumpy"):
                val = fn()
                out[_snake(attr[: -len("AsNumpy")])] = np.asarray(val).tolist() if not isinstance(val, int) else []
                continue
            val = fn()
        except TypeError:
            continue  # vector accessors that need an index
        key = _snake(attr)
        if key in _OPTION_ENUMS:
            val = _enum_names(getattr(tfl, _OPTION_ENUMS[key])).get(val, val)
        out[key] = val
    return out


def read_tflite(source: str | Path | bytes, name: str | None = None) -> Graph:
    """Parse a .tflite file (path or bytes) into a Graph. Raises ModelFormatError / UnsupportedModelError."""
    import tflite as tfl

    if isinstance(source, (bytes, bytearray, memoryview)):
        buf = bytes(source)
        path = name or "<bytes>"
    else:
        path = str(source)
        try:
            buf = Path(source).read_bytes()
        except FileNotFoundError:
            raise ModelFormatError(f"{path}: no such file") from None
        except OSError as e:
            raise ModelFormatError(f"{path}: cannot read ({e.strerror})") from None
    if len(buf) < 8:
        raise ModelFormatError(f"{path}: {len(buf)} bytes is too short for a .tflite file")
    if buf[4:8] != b"TFL3":
        raise ModelFormatError(f"{path}: not a TFLite model (file identifier is {buf[4:8]!r}, expected b'TFL3')")
    try:
        return _parse(buf, path, tfl)
    except (ModelFormatError, UnsupportedModelError):
        raise
    except Exception as e:  # the flatbuffers runtime raises bare errors on corrupt offsets
        raise ModelFormatError(f"{path}: corrupt or truncated flatbuffer ({type(e).__name__}: {e})") from None


def _check_index(i: int, n: int, what: str, where: str) -> int:
    if not (0 <= i < n):
        raise ModelFormatError(f"{where}: {what} index {i} out of range (0..{n - 1})")
    return i


def _parse(buf: bytes, path: str, tfl) -> Graph:
    model = tfl.Model.GetRootAsModel(buf, 0)
    if model.SubgraphsLength() < 1:
        raise ModelFormatError(f"{path}: model has no subgraph")
    if model.SubgraphsLength() > 1:
        raise UnsupportedModelError(f"{path}: {model.SubgraphsLength()} subgraphs (control flow) are not supported")
    sg = model.Subgraphs(0)
    op_names = _enum_names(tfl.BuiltinOperator)
    n_buffers = model.BuffersLength()
    tensors: list[Tensor] = []
    for ti in range(sg.TensorsLength()):
        t = sg.Tensors(ti)
        tname = (t.Name() or b"").decode("utf-8", "replace")
        where = f"{path}: tensor {ti} '{tname}'"
        dtype = _TENSOR_TYPES.get(t.Type())
        if dtype is None:
            raise UnsupportedModelError(f"{where}: tensor type {t.Type()} is not supported")
        shape = tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else []))
        if t.ShapeSignatureLength() and any(int(d) < 0 for d in t.ShapeSignatureAsNumpy()):
            sig = [int(d) for d in t.ShapeSignatureAsNumpy()]
            if any(d < 0 for d in sig[1:]) or len(sig) == 0:
                raise UnsupportedModelError(f"{where}: dynamic shape {sig}; re-export the model with fixed shapes")
        if any(d < 0 for d in shape):
            raise UnsupportedModelError(f"{where}: dynamic shape {list(shape)}")
        scale = zp = None
        axis = 0
        q = t.Quantization()
        if q is not None and q.ScaleLength() > 0:
            scale = np.asarray(q.ScaleAsNumpy(), dtype=np.float32).astype(np.float64)
            zp = (np.asarray(q.ZeroPointAsNumpy(), dtype=np.int64) if q.ZeroPointLength() else
                  np.zeros(len(scale), dtype=np.int64))
            axis = int(q.QuantizedDimension())
        data = None
        bi = t.Buffer()
        if bi != 0:
            _check_index(bi, n_buffers, "buffer", where)
            b = model.Buffers(bi)
            if b is not None and b.DataLength() > 0:
                raw = b.DataAsNumpy().tobytes()
                if dtype == "int4":
                    raise UnsupportedModelError(f"{where}: int4 weights are not supported")
                npdt = np.dtype(dtype).newbyteorder("<")
                count = int(np.prod(shape, dtype=np.int64)) if shape else 1
                if len(raw) != count * npdt.itemsize:
                    raise ModelFormatError(f"{where}: buffer {bi} holds {len(raw)} bytes, shape {list(shape)} "
                                           f"of {dtype} needs {count * npdt.itemsize}")
                data = np.frombuffer(raw, dtype=npdt).astype(np.dtype(dtype)).reshape(shape)
            elif b is not None and b.Offset() > 1:
                raise UnsupportedModelError(f"{where}: buffers stored outside the flatbuffer (>2 GB models)")
        tensors.append(Tensor(ti, tname, shape, dtype, scale, zp, axis, data))
    n_t = len(tensors)
    ops: list[Op] = []
    for oi in range(sg.OperatorsLength()):
        o = sg.Operators(oi)
        ci = _check_index(o.OpcodeIndex(), model.OperatorCodesLength(), "opcode", f"{path}: node {oi}")
        code = model.OperatorCodes(ci)
        bc = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        opname = op_names.get(bc, f"BUILTIN_{bc}")
        if opname == "CUSTOM":
            cname = (code.CustomCode() or b"?").decode("utf-8", "replace")
            raise UnsupportedModelError(f"{path}: node {oi}: custom op '{cname}' is not supported")
        ins = [int(i) for i in (o.InputsAsNumpy() if o.InputsLength() else [])]
        outs = [int(i) for i in (o.OutputsAsNumpy() if o.OutputsLength() else [])]
        for i in ins:
            if i != -1:
                _check_index(i, n_t, "input tensor", f"{path}: node {oi} ({opname})")
        for i in outs:
            _check_index(i, n_t, "output tensor", f"{path}: node {oi} ({opname})")
        ops.append(Op(oi, opname, ins, outs, _read_options(o, tfl)))
    ins = [int(i) for i in (sg.InputsAsNumpy() if sg.InputsLength() else [])]
    outs = [int(i) for i in (sg.OutputsAsNumpy() if sg.OutputsLength() else [])]
    for i in ins + outs:
        _check_index(i, n_t, "graph input/output tensor", path)
    if not ins or not outs:
        raise ModelFormatError(f"{path}: the subgraph declares no inputs or no outputs")
    desc = (model.Description() or b"").decode("utf-8", "replace")
    return Graph(tensors, ops, ins, outs, path, desc)
