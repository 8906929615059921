"""Shared test fixtures: the ../shared folder (through $TUNABLE_SHARED) and the MLPerf Tiny models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tunable.paths import shared_dir

SHARED = shared_dir()
MLPERF_DIR = SHARED / "models" / "mlperf-tiny"
MLPERF = {
    "resnet8": MLPERF_DIR / "pretrainedResnet_quant.tflite",
    "vww": MLPERF_DIR / "vww_96_int8.tflite",
    "kws": MLPERF_DIR / "kws_ref_model.tflite",
    "ad01": MLPERF_DIR / "ad01_int8.tflite",
}


@pytest.fixture(scope="session")
def shared() -> Path:
    assert SHARED.is_dir(), f"the shared folder {SHARED} is missing: set TUNABLE_SHARED"
    return SHARED


@pytest.fixture(scope="session")
def mlperf(shared) -> dict[str, Path]:
    for name, p in MLPERF.items():
        assert p.exists(), f"MLPerf Tiny model {name} missing at {p}"
    return MLPERF


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # plans compiled by tests go to a per-session cache, not the user's
    monkeypatch.setenv("TUNABLE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def reference_kernels():
    """Runs the test body with the portable reference kernels, then restores the automatic choice."""
    from tunable._tunable_c import lib
    assert lib.tn_force_isa(b"reference") == 0
    yield
    assert lib.tn_force_isa(b"auto") == 0


def random_input(info, rng: np.random.Generator) -> np.ndarray:
    """Uniform random values over the full range of the input tensor's integer type."""
    ii = np.iinfo(info.dtype)
    return rng.integers(ii.min, ii.max + 1, size=info.shape).astype(info.dtype)
