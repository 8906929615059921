"""C-only deployment to ARM boards: `tunable compile` (a .tflite to a plan, on the workstation) and
`tunable build-runtime` (the C runtime and the tunable-run runner, cross-built for a board). See docs/arm.md."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import click
import numpy as np

from ..errors import TunableError

# --target -> (make TARGET, the apt packages of its toolchain)
TARGETS = {
    "aarch64": ("aarch64-linux-gnu", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"),
    "armv7": ("arm-linux-gnueabihf", "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross"),
    "native": ("native", "gcc"),
}
# boards -> --cpu values, for the help text and the checks below (docs/arm.md has the table)
CPUS = {"aarch64": ("cortex-a53", "cortex-a72", "cortex-a76", "cortex-a55"),
        "armv7": ("cortex-a7", "cortex-a53", "cortex-a72")}
RUNNER_KNOBS = ("drowsy", "drowsy_granularity", "drowsy_rescale", "seed")


def runtime_dir() -> Path:
    """runtime_c/ of the source checkout this package runs from."""
    from ..paths import repo_root
    root = repo_root()
    if root is None or not (root / "runtime_c" / "Makefile").exists():
        raise TunableError("build-runtime needs the source checkout (runtime_c/ beside the tunable package); "
                           "clone the repository and run it from there")
    return root / "runtime_c"


def runner_args(knobs) -> list[str]:
    """The tunable-run arguments that set the same knobs; raises for knobs the C runner does not parse."""
    active = knobs.active()
    unsupported = sorted(k for k in active if k not in RUNNER_KNOBS)
    if unsupported:
        raise TunableError(f"knobs {', '.join(unsupported)}: tunable-run sets drowsy (random selection) only; "
                           "use the Python API for the others")
    if knobs.drowsy_select != "random":
        raise TunableError("drowsy_select=importance: tunable-run sets random selection only")
    args = []
    d = knobs.drowsy
    if isinstance(d, tuple):
        args += [f"drowsy.{layer}={p:g}" for layer, p in d]
    elif d:
        args.append(f"drowsy={d:g}")
    if knobs.drowsy_granularity != "element":
        args.append(f"drowsy_granularity={knobs.drowsy_granularity}")
    if knobs.drowsy_rescale:
        args.append("drowsy_rescale=1")
    if knobs.seed:
        args.append(f"seed={knobs.seed}")
    return [x for a in args for x in ("--knob", a)]


@click.command("compile")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The plan file to write (copy it to the board).")
@click.option("--knobs", "knob_text", default="", help='Knob settings to check against the plan and print as '
              'tunable-run arguments, e.g. "drowsy=0.3 drowsy.conv_2=0.1".')
@click.option("--sample-input", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write one random input sample (raw bytes, the layout tunable-run reads).")
def compile_cmd(model: Path, output: Path, knob_text: str, sample_input: Path | None) -> None:
    """Compiles MODEL (.tflite) to a plan that the C runtime and tunable-run load without Python."""
    import tunable
    from ..knobs import Knobs
    plan = tunable.compile_model(model.read_bytes())
    m = tunable.Model(plan, str(model))  # the C loader validates the plan before it leaves this machine
    knobs = Knobs.parse(knob_text) if knob_text.strip() else Knobs()
    if not knobs.is_off:
        m.session().set_knobs(knobs)  # raises KnobError naming the layer when a knob does not fit the model
    output.write_bytes(plan)
    click.echo(f"{output}: {len(plan):,} bytes; {len(m.layers)} layers, {m.macs:,} MACs, arena {m.arena_bytes:,} B")
    for kind, ts in (("input", m.inputs), ("output", m.outputs)):
        for t in ts:
            click.echo(f"  {kind} '{t.name}': {t.dtype} {list(t.shape)} ({int(np.prod(t.shape)) * t.dtype.itemsize} "
                       f"bytes; scale {t.scale:.6g}, zero point {t.zero_point})")
    if sample_input is not None:
        rng = np.random.default_rng(0)
        raw = b"".join((rng.normal(0, 1, t.shape).astype(t.dtype) if t.dtype.kind == "f" else
                        rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, t.shape).astype(t.dtype))
                       .tobytes() for t in m.inputs)
        sample_input.write_bytes(raw)
        click.echo(f"{sample_input}: one random input sample ({len(raw)} bytes)")
    args = runner_args(knobs) if not knobs.is_off else []
    inp = sample_input.name if sample_input else "input.bin"
    click.echo("on the board: " + shlex.join(["./tunable-run", output.name, inp] + args))


@click.command("build-runtime")
@click.option("--target", type=click.Choice(list(TARGETS)), required=True,
              help="aarch64: 64-bit Pi OS (Pi 3/4/5, Zero 2 W); armv7: 32-bit Pi OS; native: this machine.")
@click.option("--cpu", default=None, help="Tune for one core: cortex-a53 (Pi 3, Zero 2 W), cortex-a72 (Pi 4), "
              "cortex-a76 (Pi 5), cortex-a7 (armv7). Default: runs on every board of the target.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to put the library, headers and runner in.")
@click.option("-j", "--jobs", default=2, show_default=True, help="Parallel compile jobs.")
def build_runtime(target: str, cpu: str | None, out_dir: Path, jobs: int) -> None:
    """Builds the C runtime (libtunable.a, libtunable.so) and the tunable-run runner for a board."""
    make_target, packages = TARGETS[target]
    cc = "cc" if target == "native" else f"{make_target}-gcc"
    if shutil.which(cc) is None:
        raise TunableError(f"{cc} not found: install the cross toolchain (Debian/Ubuntu: apt-get install {packages})")
    if cpu and target in CPUS and cpu not in CPUS[target]:
        click.echo(f"note: --cpu {cpu} is not one of the tested {', '.join(CPUS[target])}", err=True)
    if cpu == "cortex-a76" and target == "aarch64":
        click.echo("note: -mcpu=cortex-a76 lets the compiler use Armv8.2 instructions everywhere: this build runs "
                   "on a Pi 5 only (the default build runs on every Pi and picks sdot at run time)", err=True)
    rt = runtime_dir()
    build = rt / "build" / (make_target + (f"-{cpu}" if cpu else ""))
    cmd = ["make", "-C", str(rt), f"-j{jobs}", f"TARGET={make_target}", f"BUILD={build}"]
    if cpu:
        cmd.append(f"CPU={cpu}")
    click.echo("$ " + shlex.join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise TunableError(f"the runtime build failed:\n{r.stdout[-3000:]}{r.stderr[-3000:]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "include").mkdir(exist_ok=True)
    copied = []
    for name in ("tunable-run", "libtunable.a", "libtunable.so"):
        shutil.copy2(build / name, out_dir / name)
        copied.append(out_dir / name)
    for h in sorted((rt / "include").glob("*.h")):
        shutil.copy2(h, out_dir / "include" / h.name)
        copied.append(out_dir / "include" / h.name)
    click.echo(f"built for {target}{' (' + cpu + ')' if cpu else ''} into {out_dir}:")
    for p in copied:
        click.echo(f"  {p.relative_to(out_dir)}  ({p.stat().st_size:,} bytes)")
    click.echo("copy to the board: tunable-run (statically linked, needs nothing else) and your .plan files,")
    click.echo(f"  e.g. scp {out_dir / 'tunable-run'} model.plan input.bin pi@raspberrypi.local:")
    click.echo("to link your own C program: include/ + libtunable.a (static) or libtunable.so, -lm -lpthread")
    if target != "native":
        emu = {"aarch64": "qemu-aarch64 -cpu cortex-a72", "armv7": "qemu-arm -cpu cortex-a7"}[target]
        click.echo(f"try it here first: {emu} {out_dir / 'tunable-run'} model.plan input.bin")


commands = [compile_cmd, build_runtime]
