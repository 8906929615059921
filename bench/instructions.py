"""Instructions per inference of each model and kernel variant, counted without boards.

    python bench/instructions.py                      # AArch64 and ARMv7 under qemu-user, all variants
    python bench/instructions.py --arch aarch64 --variants neon,neon-dotprod --json out.json
    python bench/instructions.py --arch host          # the native build under valgrind (callgrind)

How: the runtime and its C runner (tunable-run) are cross-built (runtime_c/Makefile), each model is compiled to
a plan, and the runner is executed under qemu-user with a small instruction-count plugin
(runtime_c/tests/qemu_icount.c; Debian's qemu-user loads plugins but ships none) once with --repeat 1 and
once with --repeat 1+N: the difference divided by N is the count per inference, without loading, compiling
and process start-up. The kernel variant is forced with --isa; the qemu CPU is the one the variant is meant
for (cortex-a72 for generic and neon, cortex-a76 for neon-dotprod, cortex-a7 for ARMv7). Instruction counts
are deterministic for a given binary and input, so kernel changes can be compared exactly; they are not
times (an sdot or a widening multiply counts as one instruction, like an add).

Where the qemu plugin cannot be loaded, --arch host counts the native build with valgrind's callgrind
(valgrind does not decode AVX-512, so host counts cover generic and avx2 only).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime_c"
sys.path.insert(0, str(ROOT))

MODELS = {"resnet8": "pretrainedResnet_quant.tflite", "vww": "vww_96_int8.tflite", "kws": "kws_ref_model.tflite",
          "ad01": "ad01_int8.tflite"}
ARCHES = {
    # arch: (make TARGET, qemu binary, {variant: qemu cpu})
    "aarch64": ("aarch64-linux-gnu", "qemu-aarch64",
                {"generic": "cortex-a72", "neon": "cortex-a72", "neon-dotprod": "cortex-a76"}),
    "armv7": ("arm-linux-gnueabihf", "qemu-arm", {"generic": "cortex-a7", "neon": "cortex-a7"}),
    "host": ("native", None, {"generic": None, "avx2": None}),
}


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def build(target: str, jobs: int = 2) -> Path:
    _run(["make", "-C", str(RUNTIME), f"-j{jobs}", f"TARGET={target}", f"build/{target}/tunable-run"])
    return RUNTIME / "build" / target / "tunable-run"


def build_plugin(out_dir: Path) -> Path:
    so = out_dir / "libqemu_icount.so"
    _run([os.environ.get("CC", "cc"), "-shared", "-fPIC", "-O2", "-o", str(so),
          str(RUNTIME / "tests" / "qemu_icount.c")])
    return so


def qemu_insns(qemu: str, cpu: str, plugin: Path, argv: list[str], log: Path) -> int:
    if log.exists():
        log.unlink()
    _run([qemu, "-cpu", cpu, "-plugin", str(plugin), "-d", "plugin", "-D", str(log)] + argv)
    m = re.search(r"insns (\d+)", log.read_text())
    if not m:
        raise RuntimeError(f"the qemu plugin wrote no count to {log}")
    return int(m.group(1))


def profile(qemu: str, cpu: str, plugin: Path, argv: list[str], work: Path, nm: str, top: int = 12) -> list[tuple]:
    """Instructions per function of one run (whole process), from the plugin's per-block records."""
    import bisect
    pcs = work / "pcs.txt"
    _run([qemu, "-cpu", cpu, "-plugin", f"{plugin},pcs={pcs}", "-d", "plugin", "-D", str(work / "p.log")] + argv)
    syms = []
    for line in _run([nm, "-n", argv[0]]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            syms.append((int(parts[0], 16), parts[2]))
    addrs = [a for a, _ in syms]
    per: dict[str, int] = {}
    total = 0
    for line in pcs.read_text().splitlines():
        pc, n, execs = line.split()
        k = bisect.bisect_right(addrs, int(pc, 16)) - 1
        name = syms[k][1] if k >= 0 else "?"
        per[name] = per.get(name, 0) + int(n) * int(execs)
        total += int(n) * int(execs)
    return [(name, c, c / total) for name, c in sorted(per.items(), key=lambda kv: -kv[1])[:top]]


def callgrind_insns(argv: list[str], out: Path, env: dict) -> int:
    _run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv, env=env)
    for line in out.read_text().splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def make_inputs(work: Path, models: list[str]) -> dict[str, tuple[Path, Path, int]]:
    """plan, one random input sample and the model's MACs, per model."""
    import tunable
    from tunable.paths import shared_dir
    src = shared_dir() / "models" / "mlperf-tiny"
    out = {}
    for name in models:
        m = tunable.load(src / MODELS[name])
        plan = work / f"{name}.plan"
        plan.write_bytes(m.plan)
        rng = np.random.default_rng(0)
        x = b"".join(rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, size=t.shape)
                     .astype(t.dtype).tobytes() for t in m.inputs)
        inp = work / f"{name}.in"
        inp.write_bytes(x)
        out[name] = (plan, inp, m.macs)
    return out


def measure(arches: list[str], variants: list[str] | None, models: list[str], repeat: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="tn_insns_") as tmp:
        work = Path(tmp)
        cases = make_inputs(work, models)
        plugin = None
        for arch in arches:
            target, qemu, cpus = ARCHES[arch]
            runner = build(target)
            if qemu and plugin is None:
                plugin = build_plugin(work)
            for variant, cpu in cpus.items():
                if variants and variant not in variants:
                    continue
                for name, (plan, inp, macs) in cases.items():
                    counts = []
                    for n in (1, 1 + repeat):
                        argv = [str(runner), str(plan), str(inp), "--isa", variant, "--repeat", str(n), "--quiet"]
                        if qemu:
                            counts.append(qemu_insns(qemu, cpu, plugin, argv, work / "icount.log"))
                        else:
                            env = dict(os.environ, TUNABLE_ISA=variant)
                            counts.append(callgrind_insns(argv, work / "callgrind.out", env))
                    per = (counts[1] - counts[0]) / repeat
                    rows.append(dict(arch=arch, cpu=cpu or "host", variant=variant, model=name, macs=macs,
                                     insns_per_inference=int(round(per)), macs_per_insn=round(macs / per, 3),
                                     tool="qemu-plugin" if qemu else "callgrind"))
                    print(f"{arch:8s} {variant:13s} {name:8s} {int(per):>12,d} insns/inference "
                          f"({macs / per:.2f} MAC/insn)", flush=True)
    return rows


def run_profiles(arches: list[str], variants: list[str] | None, models: list[str], repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="tn_prof_") as tmp:
        work = Path(tmp)
        cases = make_inputs(work, models)
        plugin = build_plugin(work)
        for arch in arches:
            target, qemu, cpus = ARCHES[arch]
            if not qemu:
                raise SystemExit("--profile needs a qemu arch (use callgrind_annotate for the host)")
            runner = build(target)
            for variant, cpu in cpus.items():
                if variants and variant not in variants:
                    continue
                for name, (plan, inp, _) in cases.items():
                    argv = [str(runner), str(plan), str(inp), "--isa", variant, "--repeat", str(repeat), "--quiet"]
                    print(f"{arch} {variant} {name} ({repeat} inferences + start-up):")
                    for fn, c, frac in profile(qemu, cpu, plugin, argv, work, f"{target}-nm"):
                        print(f"  {frac * 100:5.1f} %  {c:>12,d}  {fn}")


def table(rows: list[dict]) -> str:
    models = list(dict.fromkeys(r["model"] for r in rows))
    keys = list(dict.fromkeys((r["arch"], r["variant"]) for r in rows))
    by = {(r["arch"], r["variant"], r["model"]): r for r in rows}
    lines = ["| arch | variant | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
    for arch, variant in keys:
        cells = []
        for m in models:
            r = by.get((arch, variant, m))
            cells.append(f"{r['insns_per_inference'] / 1e6:.2f} M ({r['macs_per_insn']:.2f})" if r else "")
        lines.append(f"| {arch} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nmillions of instructions per inference (MACs per instruction)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="instructions per inference under qemu-user (or callgrind)")
    ap.add_argument("--arch", default="aarch64,armv7", help="comma list of aarch64, armv7, host")
    ap.add_argument("--variants", default=None, help="comma list (default: every variant of each arch)")
    ap.add_argument("--models", default=",".join(MODELS), help="comma list of " + ", ".join(MODELS))
    ap.add_argument("--repeat", type=int, default=4, help="extra inferences whose count is averaged")
    ap.add_argument("--json", type=Path, default=None, help="write the rows as JSON")
    ap.add_argument("--profile", action="store_true",
                    help="instead: instructions per function (qemu arches; --repeat runs in one process)")
    a = ap.parse_args(argv)
    arches = [x for x in a.arch.split(",") if x]
    for arch in arches:
        if arch not in ARCHES:
            ap.error(f"--arch {arch}: one of {', '.join(ARCHES)}")
        tool = ARCHES[arch][1] or "valgrind"
        if shutil.which(tool) is None:
            ap.error(f"{tool} is not installed (see docs/arm.md for the apt packages)")
    variants = a.variants.split(",") if a.variants else None
    models = [m for m in a.models.split(",") if m]
    if a.profile:
        run_profiles(arches, variants, models, a.repeat)
        return 0
    rows = measure(arches, variants, models, a.repeat)
    print()
    print(table(rows))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
