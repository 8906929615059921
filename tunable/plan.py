"""The plan writer: serialises compiled tensors and ops in the format tunable/planspec.py defines.
The C loader is the reader (runtime_c/src/plan.c)."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import planspec as ps


@dataclass
class PlanTensor:
    name: str
    dtype: str                    # numpy name: int8, uint8, int16, int32, float32
    shape: tuple[int, ...]
    scale: float = 0.0
    zero_point: int = 0
    data: np.ndarray | None = None  # constants only
    offset: int = 0               # arena offset, set by the planner

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class PlanOp:
    opname: str                   # a key of planspec.OPS
    inputs: list[int]
    outputs: list[int]
    params: dict[str, int] = field(default_factory=dict)
    name: str = ""                # stable layer name (conv_1, fc_2, ...)
    node: int = -1                # the .tflite node it came from


_DT = {"int8": "INT8", "uint8": "UINT8", "int16": "INT16", "int32": "INT32", "float32": "FLOAT32"}


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def serialize(tensors: list[PlanTensor], ops: list[PlanOp], inputs: list[int], outputs: list[int]) -> bytes:
    strings = bytearray(b"\0")
    str_off: dict[str, int] = {}

    def sref(s: str) -> int:
        if s not in str_off:
            str_off[s] = len(strings)
            strings.extend(s.encode("utf-8") + b"\0")
        return str_off[s]

    const = bytearray()
    trecs = bytearray()
    for t in tensors:
        if len(t.shape) > ps.MAX_DIMS:
            raise ValueError(f"tensor '{t.name}' has rank {len(t.shape)} > {ps.MAX_DIMS}")
        if t.is_const:
            off = _align(len(const), ps.CONST_ALIGN)
            const.extend(b"\0" * (off - len(const)))
            arr = np.ascontiguousarray(t.data, dtype=np.dtype(t.dtype).newbyteorder("<"))
            const.extend(arr.tobytes())
            storage = ps.STORAGE["CONST"]
        else:
            off = t.offset
            storage = ps.STORAGE["ARENA"]
        dims = list(t.shape) + [0] * (ps.MAX_DIMS - len(t.shape))
        trecs += struct.pack("<BBBB6iifIII", ps.DTYPES[_DT[t.dtype]], len(t.shape), storage, 0, *dims,
                             int(t.zero_point), float(t.scale), off, t.nbytes, sref(t.name))
    orecs = bytearray()
    for op in ops:
        spec = ps.OPS[op.opname]
        if len(op.inputs) > ps.MAX_OP_INPUTS or len(op.outputs) > ps.MAX_OP_OUTPUTS:
            raise ValueError(f"op '{op.name}' has too many inputs or outputs")
        unknown = set(op.params) - set(spec["params"])
        if unknown:
            raise ValueError(f"op '{op.name}' ({op.opname}): unknown params {sorted(unknown)}")
        ins = list(op.inputs) + [-1] * (ps.MAX_OP_INPUTS - len(op.inputs))
        outs = list(op.outputs) + [-1] * (ps.MAX_OP_OUTPUTS - len(op.outputs))
        params = [int(op.params.get(p, 0)) for p in spec["params"]]
        params += [0] * (ps.OP_PARAMS - len(params))
        orecs += struct.pack(f"<HBBI{ps.MAX_OP_INPUTS}i{ps.MAX_OP_OUTPUTS}i{ps.OP_PARAMS}i", spec["code"],
                             len(op.inputs), len(op.outputs), sref(op.name), *ins, *outs, *params)
    io = struct.pack(f"<II{len(inputs) + len(outputs)}i", len(inputs), len(outputs), *inputs, *outputs)
    sections = [(ps.SECTIONS["TENSORS"], bytes(trecs), len(tensors)), (ps.SECTIONS["OPS"], bytes(orecs), len(ops)),
                (ps.SECTIONS["CONST"], bytes(const), 0), (ps.SECTIONS["STRINGS"], bytes(strings), 0),
                (ps.SECTIONS["IO"], io, 0)]
    body = bytearray()
    table = bytearray()
    start = _align(ps.HEADER_BYTES + ps.SECTION_RECORD_BYTES * len(sections), ps.CONST_ALIGN)
    for sid, data, count in sections:
        off = start + _align(len(body), ps.CONST_ALIGN)
        body.extend(b"\0" * (off - start - len(body)))
        table += struct.pack("<IIII", sid, off, len(data), count)
        body.extend(data)
    pre = bytes(table) + b"\0" * (start - ps.HEADER_BYTES - len(table))
    total = start + len(body)
    tail = struct.pack("<II8x", len(sections), 0) + pre + bytes(body)  # from byte 16 on
    crc = zlib.crc32(tail) & 0xFFFFFFFF
    return ps.MAGIC + struct.pack("<III", ps.VERSION, total, crc) + tail


def plan_arena(tensors: list[PlanTensor], ops: list[PlanOp], inputs: list[int], outputs: list[int]) -> int:
    """Assigns arena offsets from tensor lifetimes (greedy by size, first fit, as TFLM's planner does).
    Returns the activation bytes. Graph inputs live from the start, outputs to the end."""
    n_ops = len(ops)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i in inputs:
        first[i] = -1
    for k, op in enumerate(ops):
        for t in op.outputs:
            first.setdefault(t, k)
            last[t] = max(last.get(t, k), k)
        for t in op.inputs:
            if t >= 0 and not tensors[t].is_const:
                first.setdefault(t, k)
                last[t] = k
    for o in outputs:
        last[o] = n_ops
    live = [t for t in first if not tensors[t].is_const]
    live.sort(key=lambda t: (-_align(tensors[t].nbytes, ps.ARENA_ALIGN), first[t]))
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    top = 0
    for t in live:
        size = _align(tensors[t].nbytes, ps.ARENA_ALIGN)
        f, l = first[t], last.get(t, first[t])
        clashes = sorted((o, s) for o, s, pf, pl in placed if not (pl < f or l < pf))
        off = 0
        for o, s in clashes:
            if off + size <= o:
                break
            off = max(off, o + s)
        tensors[t].offset = off
        placed.append((off, size, f, l))
        top = max(top, off + size)
    return top
