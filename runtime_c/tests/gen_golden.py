"""Golden vectors for the C tests (runtime_c/tests/test_runtime.c): plans compiled by the Python compiler,
random inputs, and the outputs of the oracle, TFLite Micro, on them.

    python runtime_c/tests/gen_golden.py                  # per-op models -> runtime_c/tests/golden (committed)
    python runtime_c/tests/gen_golden.py --out DIR        # the same into DIR
    python runtime_c/tests/gen_golden.py --mlperf --out DIR   # the four MLPerf Tiny models (from $TUNABLE_SHARED)

Each case is NAME.plan, NAME.in (SAMPLES samples of the inputs, raw bytes, inputs in order) and NAME.out (TFLM's
outputs, raw bytes). A case whose outputs from this engine (native build) differ from TFLM's is reported and
left out: the C tests check that the kernel variants agree with the oracle, not the compiler.

The committed set is small (the conv, depthwise and fully connected models of tests/models/ops, whose shapes
cover the edge cases of the GEMM, dot and depthwise kernels, 3 samples each). The MLPerf set is made at test
time (tests/test_arm_qemu.py) since its plans are larger and the models live in the shared folder. Needs
tflite-micro (the test extra).
"""
from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OPS_DIR = ROOT / "tests" / "models" / "ops"
# the op models that exercise the kernels with ISA variants (GEMM, dot, depthwise, requantization row)
OP_PREFIXES = ("conv_", "dw_", "fc_")
MLPERF = {"resnet8": "pretrainedResnet_quant.tflite", "vww": "vww_96_int8.tflite", "kws": "kws_ref_model.tflite",
          "ad01": "ad01_int8.tflite"}


def _random_input(shape, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    if dtype.kind == "f":
        return rng.normal(0.0, 1.0, size=shape).astype(dtype)
    ii = np.iinfo(dtype)
    return rng.integers(ii.min, ii.max + 1, size=shape).astype(dtype)


def _tflm(model_bytes: bytes):
    from tflite_micro import runtime
    return runtime.Interpreter.from_bytes(model_bytes, arena_size=max(1 << 20, 4 * len(model_bytes)))


def make_case(tflite_path: Path, out_dir: Path, name: str, samples: int) -> str | None:
    """Writes NAME.plan/.in/.out; returns why the case was left out, or None."""
    import tunable
    data = tflite_path.read_bytes()
    model = tunable.Model(tunable.compile_model(data), str(tflite_path))
    session = model.session()
    tflm = _tflm(data)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    ins, outs = [], []
    for s in range(samples):
        xs = [_random_input(t.shape, t.dtype, rng) for t in model.inputs]
        for i, x in enumerate(xs):
            tflm.set_input(x, i)
        tflm.invoke()
        want = [np.asarray(tflm.get_output(i)) for i in range(len(model.outputs))]
        got = session.run(*xs)
        got = got if isinstance(got, list) else [got]
        for i, (g, w) in enumerate(zip(got, want)):
            if g.dtype != w.dtype or g.size != w.size:
                return f"output {i}: this engine gives {g.dtype}{list(g.shape)}, TFLM {w.dtype}{list(w.shape)}"
            if not np.array_equal(g.reshape(-1), w.reshape(-1)):
                n = int(np.count_nonzero(g.reshape(-1) != w.reshape(-1)))
                return f"sample {s} output {i}: {n} values differ from TFLM"
        ins.append(b"".join(np.ascontiguousarray(x).tobytes() for x in xs))
        outs.append(b"".join(np.ascontiguousarray(w).tobytes() for w in want))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.plan").write_bytes(model.plan)
    (out_dir / f"{name}.in").write_bytes(b"".join(ins))
    (out_dir / f"{name}.out").write_bytes(b"".join(outs))
    return None


def generate(out_dir: Path, mlperf: bool = False, samples: int | None = None, quiet: bool = False) -> list[str]:
    """Makes the golden set; returns the names written. Cases that disagree with TFLM are printed."""
    if mlperf:
        from tunable.paths import shared_dir
        src = shared_dir() / "models" / "mlperf-tiny"
        cases = [(name, src / fn) for name, fn in MLPERF.items()]
        samples = samples or 2
    else:
        cases = [(p.stem, p) for p in sorted(OPS_DIR.glob("*.tflite")) if p.stem.startswith(OP_PREFIXES)]
        samples = samples or 3
    if not cases:
        raise SystemExit(f"gen_golden: no models found ({OPS_DIR if not mlperf else 'shared folder'})")
    written = []
    for name, path in cases:
        if not path.exists():
            raise SystemExit(f"gen_golden: {path}: no such model")
        why = make_case(path, out_dir, name, samples)
        if why:
            print(f"gen_golden: {name}: left out ({why})", file=sys.stderr)
        else:
            written.append(name)
            if not quiet:
                print(f"gen_golden: {name}: {samples} samples")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "golden", help="output folder (default: tests/golden)")
    ap.add_argument("--mlperf", action="store_true", help="the four MLPerf Tiny models instead of the op models")
    ap.add_argument("--samples", type=int, default=None, help="samples per case (3 for ops, 2 for MLPerf)")
    a = ap.parse_args(argv)
    written = generate(a.out, a.mlperf, a.samples)
    print(f"gen_golden: {len(written)} cases in {a.out}")
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
