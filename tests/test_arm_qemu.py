"""Cross builds for ARM boards, tested under qemu-user with the CPUs of real boards (docs/arm.md):
AArch64 under cortex-a53 (Pi 3, Zero 2 W), cortex-a72 (Pi 4) and cortex-a76 (Pi 5), ARMv7 under cortex-a7.

CI needs the cross toolchains and qemu-user (Debian packages):
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user
The binaries are linked statically, so qemu needs no -L sysroot."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import random_input

import tunable
from tunable.knobs import Knobs

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime_c"
sys.path.insert(0, str(RUNTIME / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
import gen_golden  # noqa: E402

# (make TARGET, qemu, cpu, the variant the runtime must pick on that CPU)
BOARDS = {
    "pi3-a53": ("aarch64-linux-gnu", "qemu-aarch64", "cortex-a53", "neon"),
    "pi4-a72": ("aarch64-linux-gnu", "qemu-aarch64", "cortex-a72", "neon"),
    "pi5-a76": ("aarch64-linux-gnu", "qemu-aarch64", "cortex-a76", "neon-dotprod"),
    "armv7-a7": ("arm-linux-gnueabihf", "qemu-arm", "cortex-a7", "neon"),
}


def make(*args: str) -> None:
    r = subprocess.run(["make", "-C", str(RUNTIME), "-j2", *args], capture_output=True, text=True)
    assert r.returncode == 0, f"make {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"


@pytest.fixture(scope="module")
def builds() -> dict[str, Path]:
    out = {}
    for target in ("aarch64-linux-gnu", "arm-linux-gnueabihf"):
        make(f"TARGET={target}", f"build/{target}/tunable-run", f"build/{target}/test_runtime")
        out[target] = RUNTIME / "build" / target
    return out


@pytest.fixture(scope="module")
def mlperf_goldens(tmp_path_factory, mlperf) -> Path:
    d = tmp_path_factory.mktemp("golden_mlperf")
    assert sorted(gen_golden.generate(d, mlperf=True, quiet=True)) == ["ad01", "kws", "resnet8", "vww"]
    return d


def qemu(board: str, builds, *argv: str) -> subprocess.CompletedProcess:
    target, emu, cpu, _ = BOARDS[board]
    return subprocess.run([emu, "-cpu", cpu, str(builds[target] / argv[0]), *argv[1:]], capture_output=True,
                          text=True, timeout=300)


def test_only_the_sdot_file_uses_dotprod(builds):
    """The library is baseline Armv8-A except neon_dotprod.o: a Pi 4 never meets an sdot it did not ask for."""
    obj = builds["aarch64-linux-gnu"] / "obj"
    for o in sorted(obj.rglob("*.o")):
        dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(o)], capture_output=True, text=True).stdout
        has_sdot = bool(re.search(r"\bsdot\b", dis))
        assert has_sdot == (o.name == "neon_dotprod.o"), o.name


@pytest.mark.parametrize("board", list(BOARDS))
def test_c_suite_under_qemu(board, builds, mlperf_goldens):
    """Kernel variants vs scalar sums, and the op-model and MLPerf golden vectors (TFLM's outputs), for the
    reference kernels and every variant the emulated CPU runs; the automatic choice is the board's best."""
    r = qemu(board, builds, "test_runtime", str(RUNTIME / "tests" / "golden"), str(mlperf_goldens))
    m = re.search(r"^(\d+) passed, (\d+) failed$", r.stdout, re.M)
    assert m and r.returncode == 0 and m.group(2) == "0", r.stdout[-4000:] + r.stderr[-2000:]
    want = BOARDS[board][3]
    assert f"auto-selected variant: {want}\n" in r.stdout
    assert f"variant {want}: kernel tests" in r.stdout
    if want != "neon-dotprod":  # forcing sdot on a CPU without it is refused, not a SIGILL
        assert "variant neon-dotprod: not in this build or not supported by this CPU" in r.stdout
    for name in ("resnet8", "vww", "kws", "ad01"):
        n_variants = 4 if want == "neon-dotprod" else 3  # reference, generic, neon (+ neon-dotprod)
        assert f"golden {mlperf_goldens}/{name}: 2 samples, {n_variants} variants" in r.stdout


@pytest.mark.parametrize("board", list(BOARDS))
def test_runner_under_qemu_equals_python(board, builds, tmp_path, mlperf):
    """The C-only deployment path: a plan compiled here, run by tunable-run on the emulated board with a
    drowsy knob, gives the same bytes as the Python session on this machine."""
    model = tunable.load(mlperf["vww"])
    (tmp_path / "m.plan").write_bytes(model.plan)
    x = random_input(model.inputs[0], np.random.default_rng(11))
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    r = qemu(board, builds, "tunable-run", str(tmp_path / "m.plan"), str(tmp_path / "in.bin"), "--knob",
             "drowsy=0.2", "--knob", "drowsy_granularity=row", "--seed", "9", "--output", str(tmp_path / "o.bin"))
    assert r.returncode == 0, r.stderr
    assert f"isa {BOARDS[board][3]}," in r.stdout
    s = model.session()
    s.set_knobs(Knobs(drowsy=0.2, drowsy_granularity="row", seed=9))
    assert (tmp_path / "o.bin").read_bytes() == s.run(x).tobytes()


def test_instruction_counts_under_qemu(mlperf):
    """bench/instructions.py's qemu plugin counts instructions; NEON beats the portable kernels and sdot
    beats NEON on the conv-heavy KWS (counts are deterministic, not timings)."""
    import instructions
    rows = instructions.measure(["aarch64"], None, ["kws"], repeat=1)
    per = {r["variant"]: r["insns_per_inference"] for r in rows}
    assert set(per) == {"generic", "neon", "neon-dotprod"}
    assert per["neon-dotprod"] < per["neon"] < 0.6 * per["generic"], per


def test_sources_build_with_uniform_flags_as_pip_does(tmp_path):
    """pip on a board compiles every runtime source with the same flags (tunable/_ffi_build.py, no per-file
    -march): the sdot file must still build, through its own target pragma, and the rest stay baseline."""
    from tunable import _ffi_build
    flags = [f for f in _ffi_build.ffibuilder._assigned_source[3].get("extra_compile_args", [])]
    assert "-O3" in flags
    objs = []
    for src in sorted((RUNTIME / "src").glob("*.c")) + sorted((RUNTIME / "src" / "arch").glob("*.c")):
        o = tmp_path / (src.stem + ".o")
        r = subprocess.run(["aarch64-linux-gnu-gcc", *flags, "-fPIC", "-I", str(RUNTIME / "include"), "-c",
                            str(src), "-o", str(o)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        objs.append(o)
    r = subprocess.run(["aarch64-linux-gnu-gcc", "-shared", "-o", str(tmp_path / "lib.so"), *map(str, objs), "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(tmp_path / "neon_dotprod.o")], capture_output=True,
                         text=True).stdout
    assert re.search(r"\bsdot\b", dis)
    syms = subprocess.run(["aarch64-linux-gnu-nm", "-D", str(tmp_path / "lib.so")], capture_output=True,
                          text=True).stdout
    for fn in ("tn_gemm_neon", "tn_gemm_neon_dotprod", "tn_model_load"):
        assert re.search(rf"\bT {fn}\b", syms), fn
