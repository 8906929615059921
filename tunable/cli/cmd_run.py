"""`tunable run`: frames from a source, classified under budgets by the governor, with a live view."""
from __future__ import annotations

import json
import math
import signal
import statistics
import sys
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import click
import numpy as np

from .. import models as registry
from ..errors import TunableError

TASK_OF_SOURCE = {"mnist": "mnist", "cifar10": "cifar10"}


@dataclass
class RunLog:
    """What the summary reports: per-inference records kept as running aggregates."""
    n: int = 0
    correct: int = 0
    labelled: int = 0
    violations: int = 0
    energy: list[float] = field(default_factory=list)
    measured: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    time_at: dict[str, int] = field(default_factory=dict)


def _pick_model(model: str | None, source: str):
    if model:
        path = registry.resolve(model)
        return path, registry.entry_for_file(path)
    task = TASK_OF_SOURCE.get(source.split(":", 1)[0])
    candidates = [e for e in registry.manifest() if registry.locate(e)[0] is not None]
    for e in candidates:
        if task and e.task == task and e.bundled:
            return registry.locate(e)[0], e
    for e in candidates:
        if task and e.task == task:
            return registry.locate(e)[0], e
    e = registry.default_model()
    return registry.locate(e)[0], e


def _open_sensor(name: str | None):
    """(sensor, why) where sensor is None when energy can only be modeled."""
    from ..energy import discover
    d = discover()
    if name == "none":
        return None, "no sensor requested"
    if name:
        return d.get(name), ""
    best = d.best()
    return best, "" if best is not None else d.why_none()


@click.command(context_settings={"show_default": True})
@click.argument("source", default="default")
@click.option("--budget", "budgets", multiple=True,
              help="Per-inference energy (50mJ), latency (30ms) or average power (2W); repeat for several.")
@click.option("--policy", type=click.Path(exists=True, dir_okay=False), help="A policy TOML (modes, rules).")
@click.option("--battery", help="Battery (power_supply name) for --until/--hours and the policy's rules.")
@click.option("--until", "until", help="Battery-life goal: last until HH:MM.")
@click.option("--hours", type=float, help="Battery-life goal: last this many hours.")
@click.option("--model", help="Model file or manifest name (default: the bundled model that fits the source).")
@click.option("--profile", "profile_path", type=click.Path(exists=True, dir_okay=False),
              help="Operating points from `tunable profile` (default: a ladder of knob settings, modeled costs).")
@click.option("--energy-profile", help="Device energy profile for modeled energy (default: detected board).")
@click.option("--sensor", help="Energy sensor to measure with ('none': model only; default: the best found).")
@click.option("--preprocess", "preprocess_opts", help="Preprocessing options (k=v,... or JSON).")
@click.option("--fps", type=float, help="Pace frames to at most this rate.")
@click.option("--frames", "max_frames", type=int, help="Stop after this many frames.")
@click.option("--json-log", type=click.Path(dir_okay=False, writable=True), help="One JSON line per inference.")
@click.option("--quiet", is_flag=True, help="No live view; the summary only.")
def run(source, budgets, policy, battery, until, hours, model, profile_path, energy_profile, sensor,
        preprocess_opts, fps, max_frames, json_log, quiet):
    """Classify frames from SOURCE under budgets, with the governor choosing knob settings.

    SOURCE: camN, /dev/videoN, a video file, an image folder, mnist:PATH, cifar10:PATH, npz:PATH, synthetic,
    or default (the embedded sample of generated digits)."""
    import tunable
    from governor.budgets import ENERGY, LATENCY, BatteryGoal, parse_budgets
    from governor.controller import GovernorWarning
    from governor.engine import Governor, SystemKnobs
    from governor.points import default_front, load_profile
    from governor.policy import load_policy

    from ..energy import EnergyModel, active_profile
    from ..oppoints import ladder_points
    from ..preprocess import Preprocessor, parse_options
    from ..sources import open_source

    if (until or hours) and not battery:
        raise click.UsageError("--until and --hours need --battery NAME")
    if until and hours:
        raise click.UsageError("give --until or --hours, not both")
    parsed = parse_budgets(list(budgets)) if budgets else []
    path, entry = _pick_model(model, source)
    m = tunable.load(path)
    in_info = m.inputs[0]
    opts = dict(entry.preprocess) if entry else {}
    opts.update(parse_options(preprocess_opts) if preprocess_opts else {})
    pre = Preprocessor.from_model(m, opts or None)
    h, w = in_info.shape[1], in_info.shape[2]
    src = open_source(source, fps=fps, max_frames=max_frames, resolution=(w, h))
    classes = list(entry.classes) if entry and entry.classes else None
    eprof = active_profile(energy_profile)
    emodel = EnergyModel(eprof, m)
    sens, why_no_sensor = _open_sensor(sensor)

    # operating points
    if profile_path:
        prof = load_profile(profile_path)
        front, points = list(prof.front), list(prof.points)
        origin = f"profile {profile_path}"
    else:
        sample = pre(np.zeros((h, w, in_info.shape[3] if len(in_info.shape) > 3 else 1), np.uint8))
        points = ladder_points(m, emodel, sample)
        front = default_front(points)
        origin = "default ladder (modeled costs, accuracy unmeasured: order stands for it)"
    goal = None
    if hours is not None:
        goal = BatteryGoal.for_hours(battery, hours, time.monotonic())
    elif until:
        goal = BatteryGoal.until(battery, until, time.monotonic())
    # the governor's warnings reach the user through this command's own lines and the live view's reason
    warnings.simplefilter("ignore", GovernorWarning)
    pol = load_policy(policy) if policy else None
    gov = Governor(front, policy=pol, budgets=parsed, goal=goal, points=points, battery=battery,
                   system=SystemKnobs() if pol is not None else None)
    cheapest = min(front, key=lambda p: p.energy_j)
    for b in parsed:
        if b.kind == ENERGY and b.limit < cheapest.energy_j:
            click.echo(f"warning: budget {b.describe()} is below the cheapest operating point "
                       f"'{cheapest.name}' ({cheapest.energy_j * 1e3:.3g} mJ modeled): running the cheapest point",
                       err=True)

    sampler = None
    if sens is not None:
        from ..energy import Sampler
        sampler = Sampler(sens).start()
    energy_note = (f"measured by {sens.name} over windows of >= {max(1.0, sens.min_window_s):g} s, modeled by "
                   f"{eprof.label()}" if sens is not None else
                   f"modeled by {eprof.label()}; no measured energy: {why_no_sensor}")
    header = [f"model   {path} ({m.macs:,} MACs)", f"source  {src.describe()}",
              f"energy  {energy_note}", f"points  {len(front)} on the front, from {origin}",
              f"budgets {', '.join(b.describe() for b in parsed) or 'none (most accurate point)'}"
              + (f"; goal {goal.describe()}" if goal else "")]
    log = RunLog()
    sess = m.session()
    jl = open(json_log, "w") if json_log else None
    stop = {"now": False}

    def _sigint(*_):
        stop["now"] = True
    old = signal.signal(signal.SIGINT, _sigint)
    lat_win: deque[float] = deque(maxlen=200)
    t_start = time.monotonic()
    state = {"label": "", "conf": 0.0, "point": "", "why": "", "measured_mj": None}
    win = {"t0": time.monotonic(), "j0": sampler.mark().joules if sampler else 0.0, "modeled": 0.0, "n": 0}
    ratio = None  # measured / modeled over the last completed window

    def view():
        from rich.table import Table
        t = Table.grid(padding=(0, 2))
        for line in header:
            t.add_row(line)
        n = max(log.n, 1)
        elapsed = max(time.monotonic() - t_start, 1e-9)
        p50 = statistics.median(lat_win) if lat_win else 0.0
        p95 = float(np.percentile(list(lat_win), 95)) if lat_win else 0.0
        mean_e = sum(log.energy) / n
        t.add_row(f"frames  {log.n}  {log.n / elapsed:.1f} fps   latency p50 {p50 * 1e3:.2f} ms  p95 {p95 * 1e3:.2f} ms")
        meas = f"  measured {state['measured_mj']:.4g} mJ" if state["measured_mj"] is not None else ""
        t.add_row(f"energy  modeled {mean_e * 1e3:.4g} mJ/inference{meas}   budget violations {log.violations}")
        t.add_row(f"point   {state['point']}: {state['why']}")
        acc = f"   accuracy {log.correct / log.labelled:.1%} ({log.labelled} labelled)" if log.labelled else ""
        t.add_row(f"top     {state['label']} ({state['conf']:.0%}){acc}")
        return t

    live = None
    if not quiet:
        from rich.live import Live
        live = Live(view(), refresh_per_second=4, transient=False)
        live.start()
    else:
        for line in header:
            click.echo(line)
    knobs_cache: dict[str, object] = {}
    try:
        from ..knobs import Knobs
        for frame in src:
            if stop["now"]:
                break
            p = gov.choose()
            k = knobs_cache.get(p.name)
            if k is None:
                k = knobs_cache[p.name] = Knobs.from_dict(dict(p.knobs))
            sess.set_knobs(k)
            x = pre(frame.image)
            y = sess.run(x)
            lat = sess.last_latency_s
            modeled = emodel.joules(sess.totals(), lat)
            energy, esrc = modeled, "modeled"
            if sampler is not None:
                win["modeled"] += modeled
                win["n"] += 1
                if time.monotonic() - win["t0"] >= max(1.0, sens.min_window_s):
                    mk = sampler.mark()
                    ratio = (mk.joules - win["j0"]) / win["modeled"] if win["modeled"] > 0 else None
                    state["measured_mj"] = (mk.joules - win["j0"]) / win["n"] * 1e3
                    win.update(t0=time.monotonic(), j0=mk.joules, modeled=0.0, n=0)
                if ratio is not None:
                    energy, esrc = modeled * ratio, "measured"
            gov.observe(p, lat, energy, esrc)
            out = m.dequantize_output(y).reshape(-1)
            top = int(np.argmax(out))
            log.n += 1
            log.energy.append(energy)
            log.latency.append(lat)
            lat_win.append(lat)
            log.time_at[p.name] = log.time_at.get(p.name, 0) + 1
            if any((b.kind == ENERGY and energy > b.limit) or (b.kind == LATENCY and lat > b.limit)
                   for b in parsed):
                log.violations += 1
            if frame.label is not None:
                log.labelled += 1
                log.correct += int(top == frame.label)
            state.update(label=classes[top] if classes and top < len(classes) else str(top),
                         conf=float(out[top]) if out.max() <= 1.0 else 0.0, point=p.name, why=gov.explain())
            if jl:
                jl.write(json.dumps({"t": time.time(), "frame": frame.index, "point": p.name,
                                     "knobs": dict(p.knobs), "latency_s": lat, "energy_j": energy,
                                     "energy_source": esrc, "modeled_j": modeled, "label": top,
                                     "truth": frame.label, "confidence": state["conf"]}) + "\n")
            if live is not None and log.n % 5 == 0:
                live.update(view())
    finally:
        signal.signal(signal.SIGINT, old)
        if live is not None:
            live.update(view())
            live.stop()
        if sampler is not None:
            sampler.stop()
        if jl:
            jl.close()
        src.close()
        gov.close()
    _summary(log, parsed, gov, esrc_note=f"measured by {sens.name}" if sens is not None else
             f"modeled, {eprof.label()}")


def _summary(log: RunLog, budgets, gov, esrc_note: str) -> None:
    click.echo("")
    click.echo(f"summary: {log.n} inferences")
    if not log.n:
        return
    mean_e = sum(log.energy) / log.n
    click.echo(f"  energy per inference: mean {mean_e * 1e3:.4g} mJ, max {max(log.energy) * 1e3:.4g} mJ ({esrc_note})")
    click.echo(f"  latency: median {statistics.median(log.latency) * 1e3:.3f} ms, "
               f"p95 {float(np.percentile(log.latency, 95)) * 1e3:.3f} ms")
    if budgets:
        click.echo(f"  budget violations: {log.violations} of {log.n} ({log.violations / log.n:.1%})")
    if log.labelled:
        click.echo(f"  accuracy: {log.correct / log.labelled:.1%} on {log.labelled} labelled frames")
    shares = ", ".join(f"{k} {v / log.n:.0%}" for k, v in sorted(log.time_at.items(), key=lambda kv: -kv[1]))
    click.echo(f"  time at each point: {shares}")


commands = [run]
