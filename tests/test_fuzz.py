"""Fuzzing the loaders: mutated and truncated plans and .tflite files never crash the process and always
raise the library's own errors (or, when the mutation happens to be valid, load and run)."""
from __future__ import annotations

import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tunable
from tunable import planspec as ps
from tunable.errors import TunableError

_PLANS: dict[str, bytes] = {}


def _plan(path) -> bytes:
    key = str(path)
    if key not in _PLANS:
        _PLANS[key] = tunable.load(path).plan
    return _PLANS[key]


def _reseal(data: bytearray) -> bytes:
    """Fixes the size and checksum so the mutation reaches the validator behind them."""
    if len(data) >= 16:
        struct.pack_into("<I", data, 8, len(data))
        struct.pack_into("<I", data, 12, zlib.crc32(bytes(data[16:])) & 0xFFFFFFFF)
    return bytes(data)


def _try_plan(data: bytes) -> None:
    try:
        m = tunable.Model(data, "fuzz.plan")
    except TunableError:
        return
    s = m.session()
    for i, t in enumerate(m.inputs):
        s.set_input(np.zeros(t.shape, t.dtype), i)
    try:
        s.invoke()
    except TunableError:
        pass


mutation = st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(muts=mutation, model=st.sampled_from(["kws", "ad01"]), reseal=st.booleans())
def test_mutated_plans(mlperf, muts, model, reseal):
    data = bytearray(_plan(mlperf[model]))
    for pos, val in muts:
        data[pos % len(data)] = val
    _try_plan(_reseal(data) if reseal else bytes(data))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0), model=st.sampled_from(["kws", "ad01"]), reseal=st.booleans())
def test_truncated_plans(mlperf, cut, model, reseal):
    data = bytearray(_plan(mlperf[model]))
    data = data[: cut % len(data)]
    _try_plan(_reseal(data) if reseal else bytes(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.integers(0, ps.TENSOR_RECORD_BYTES // 4 - 1), rec=st.integers(0, 30),
       val=st.sampled_from([-1, 0, 1, 3, 255, 65536, 2**31 - 1, -2**31]))
def test_tensor_record_fields(mlperf, field, rec, val):
    """Every 32-bit field of a tensor record set to edge values, checksum fixed: a clean error or a valid run."""
    data = bytearray(_plan(mlperf["ad01"]))
    n_sec = struct.unpack_from("<I", data, 16)[0]
    for i in range(n_sec):
        sid, off, size, count = struct.unpack_from("<IIII", data, ps.HEADER_BYTES + 16 * i)
        if sid == ps.SECTIONS["TENSORS"]:
            r = off + (rec % count) * ps.TENSOR_RECORD_BYTES + 4 * field
            struct.pack_into("<i", data, r, val)
    _try_plan(_reseal(data))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(muts=mutation, reseal=st.booleans())
def test_mutated_tflite(mlperf, tmp_path_factory, muts, reseal):
    data = bytearray(mlperf["kws"].read_bytes())
    for pos, val in muts:
        data[pos % len(data)] = val
    p = tmp_path_factory.mktemp("fz") / "m.tflite"
    p.write_bytes(bytes(data))
    try:
        m = tunable.load(p, cache=False)
    except TunableError:
        return
    m.session().run(np.zeros(m.inputs[0].shape, m.inputs[0].dtype))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(min_value=0))
def test_truncated_tflite(mlperf, tmp_path_factory, cut):
    data = mlperf["kws"].read_bytes()
    p = tmp_path_factory.mktemp("fz") / "m.tflite"
    p.write_bytes(data[: cut % len(data)])
    try:
        tunable.load(p, cache=False)
    except TunableError:
        return
