"""The standalone C build on this machine: `make test` (kernel variants vs scalar, golden vectors vs TFLM), the
C runner against the Python session (outputs and knobs), and `tunable compile` / `tunable build-runtime`."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_input

import tunable
from tunable.cli import main as cli
from tunable.knobs import Knobs

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime_c"
sys.path.insert(0, str(RUNTIME / "tests"))
import gen_golden  # noqa: E402


def make(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(["make", "-C", str(RUNTIME), "-j2", *args], capture_output=True, text=True)
    assert r.returncode == 0, f"make {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def native() -> Path:
    make("TARGET=native", "build/native/tunable-run", "build/native/test_runtime")
    return RUNTIME / "build" / "native"


def summary(out: str) -> tuple[int, int]:
    m = re.search(r"^(\d+) passed, (\d+) failed$", out, re.M)
    assert m, f"no summary line in:\n{out[-2000:]}"
    return int(m.group(1)), int(m.group(2))


def test_c_suite_committed_goldens(native):
    """Every variant this CPU runs equals the scalar kernels and TFLM's outputs of the committed vectors."""
    r = subprocess.run([str(native / "test_runtime"), str(RUNTIME / "tests" / "golden")], capture_output=True,
                       text=True)
    passed, failed = summary(r.stdout)
    assert r.returncode == 0 and failed == 0, r.stdout[-3000:]
    # 18 op models x (reference + generic at least) + the kernel checks of generic
    assert passed >= 18 * 2 + 4
    assert "variant generic: kernel tests" in r.stdout


def test_committed_goldens_match_the_generator(tmp_path):
    """The committed vectors are what gen_golden.py makes now (inputs and TFLM outputs, byte for byte), so
    they were made by the oracle and not edited; a compiler change that alters plans needs a regeneration."""
    names = gen_golden.generate(tmp_path, quiet=True)
    committed = sorted(p.stem for p in (RUNTIME / "tests" / "golden").glob("*.plan"))
    hint = "regenerate with: python runtime_c/tests/gen_golden.py"
    assert sorted(names) == committed, hint
    for n in names:
        for ext in (".in", ".out"):
            fresh, kept = tmp_path / (n + ext), RUNTIME / "tests" / "golden" / (n + ext)
            assert fresh.read_bytes() == kept.read_bytes(), f"{kept} is stale: {hint}"


def test_c_suite_mlperf_goldens(native, tmp_path, mlperf):
    gen_golden.generate(tmp_path, mlperf=True, quiet=True)
    r = subprocess.run([str(native / "test_runtime"), str(tmp_path)], capture_output=True, text=True)
    passed, failed = summary(r.stdout)
    assert r.returncode == 0 and failed == 0, r.stdout[-3000:]
    for name in ("resnet8", "vww", "kws", "ad01"):
        assert f"golden {tmp_path}/{name}: 2 samples" in r.stdout


@pytest.mark.parametrize("name", ["resnet8", "kws"])
@pytest.mark.parametrize("knob_text", ["", "drowsy=0.3", "drowsy=0.2 drowsy_granularity=row seed=7",
                                       "drowsy=0.5 drowsy_granularity=channel drowsy_rescale=true seed=3"])
def test_runner_equals_python_session(native, tmp_path, mlperf, name, knob_text):
    """tunable-run's outputs and counters equal the Python session's, with the same knobs set both ways."""
    from tunable.cli.cmd_arm import runner_args
    model = tunable.load(mlperf[name])
    plan = tmp_path / "m.plan"
    plan.write_bytes(model.plan)
    rng = np.random.default_rng(5)
    xs = [random_input(model.inputs[0], rng) for _ in range(3)]
    (tmp_path / "in.bin").write_bytes(b"".join(x.tobytes() for x in xs))
    knobs = Knobs.parse(knob_text) if knob_text else Knobs()
    r = subprocess.run([str(native / "tunable-run"), str(plan), str(tmp_path / "in.bin"), "--output",
                        str(tmp_path / "out.bin"), *runner_args(knobs)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    s = model.session()
    s.set_knobs(knobs)
    want = b"".join(s.run(x).tobytes() for x in xs)
    assert (tmp_path / "out.bin").read_bytes() == want
    totals = dict(re.findall(r"(\w+)=(\d+)", r.stdout.split("counters:")[1]))
    assert {k: int(v) for k, v in totals.items()} == s.stats.totals  # counters of the last sample
    if knob_text:
        assert s.stats.totals["outputs_skipped"] > 0
    assert re.search(r"latency: median [\d.]+ us", r.stdout)


def test_runner_rejects_bad_arguments(native, tmp_path, mlperf):
    model = tunable.load(mlperf["ad01"])
    plan = tmp_path / "m.plan"
    plan.write_bytes(model.plan)
    (tmp_path / "short.bin").write_bytes(b"\0" * 5)
    run = lambda *a: subprocess.run([str(native / "tunable-run"), *map(str, a)], capture_output=True, text=True)
    r = run(plan, tmp_path / "short.bin")
    assert r.returncode == 1 and "640 bytes per sample" in r.stderr and "'input_1'" in r.stderr
    (tmp_path / "in.bin").write_bytes(b"\0" * 640)
    r = run(plan, tmp_path / "in.bin", "--knob", "drowsy=1.5")
    assert r.returncode == 1 and "rate in [0, 1)" in r.stderr
    r = run(plan, tmp_path / "in.bin", "--knob", "drowsy.fc_1=0.2")
    assert r.returncode == 1 and "conv and depthwise layers only" in r.stderr
    r = run(plan, tmp_path / "in.bin", "--knob", "drowsy.conv_9=0.2")
    assert r.returncode == 1 and "no layer of that name" in r.stderr
    r = run(plan, tmp_path / "in.bin", "--isa", "sparc")
    assert r.returncode == 1 and "not in this build" in r.stderr
    (tmp_path / "bad.plan").write_bytes(b"TNPL" + b"\0" * 60)
    r = run(tmp_path / "bad.plan", tmp_path / "in.bin")
    assert r.returncode == 2 and "bad.plan" in r.stderr


def test_cli_compile_writes_a_plan_and_runner_command(tmp_path, mlperf):
    out = tmp_path / "kws.plan"
    r = CliRunner().invoke(cli, ["compile", str(mlperf["kws"]), "-o", str(out), "--knobs",
                                 "drowsy=0.25 drowsy_granularity=row", "--sample-input", str(tmp_path / "x.bin")])
    assert r.exit_code == 0, r.output
    assert tunable.load(out).macs == tunable.load(mlperf["kws"]).macs
    assert (tmp_path / "x.bin").stat().st_size == 49 * 10
    assert ("on the board: ./tunable-run kws.plan x.bin --knob drowsy=0.25 --knob drowsy_granularity=row"
            in r.output)
    r = CliRunner().invoke(cli, ["compile", str(mlperf["kws"]), "-o", str(out), "--knobs", "drowsy.fc_1=0.2"])
    assert r.exit_code != 0 and "fc_1" in r.output


def test_cli_compile_refuses_knobs_the_runner_cannot_set(tmp_path, mlperf):
    r = CliRunner().invoke(cli, ["compile", str(mlperf["kws"]), "-o", str(tmp_path / "k.plan"), "--knobs",
                                 "prune=3"])
    assert r.exit_code != 0 and "tunable-run sets drowsy" in r.output


def test_cli_build_runtime_native(tmp_path):
    r = CliRunner().invoke(cli, ["build-runtime", "--target", "native", "-o", str(tmp_path / "rt")])
    assert r.exit_code == 0, r.output
    for f in ("tunable-run", "libtunable.a", "libtunable.so", "include/tunable.h", "include/tunable_format.h"):
        assert (tmp_path / "rt" / f).is_file(), f
        assert f in r.output
