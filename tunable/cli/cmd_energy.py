"""Energy commands: sensors, energy, calibrate.

Every number printed says whether it is measured, estimated or modeled, and by which sensor or profile.
Where this machine has no sensor, measured energy is reported unavailable with the reason; nothing is
made up in its place.
"""
from __future__ import annotations

import functools
import importlib
import json
import math
import time

import click
import numpy as np

from .. import models as registry
from ..errors import TunableError
from ..units import format_energy, format_power, format_time

_ROOT_OPT = click.option("--sysfs-root", type=click.Path(file_okay=False), default=None,
                         help="Read /sys and /proc under this directory (a fake tree); default "
                              "$TUNABLE_SYSFS_ROOT or /.")


def _with_root(fn):
    """Runs the command with --sysfs-root in force, and only for its duration."""
    @functools.wraps(fn)
    def wrapper(*args, sysfs_root: str | None = None, **kw):
        from ..energy import sysfs_root_override
        with sysfs_root_override(sysfs_root):
            return fn(*args, **kw)
    return _ROOT_OPT(wrapper)


def _apply_knobs(session, text: str | None) -> str:
    """Applies a knob setting; returns how to describe it."""
    if text is None:
        return "off (none given)"
    try:
        from ..knobs import Knobs  # written by another engineer; imported only when knobs are asked for
    except ImportError as e:
        raise click.ClickException(f"--knobs {text!r}: knobs are not available in this build "
                                   f"(tunable.knobs cannot be imported: {e})") from None
    knobs = Knobs.parse("" if text.strip().lower() == "off" else text)
    session.set_knobs(knobs)
    return str(knobs)


def _input_for(model, seed: int) -> np.ndarray:
    t = model.inputs[0]
    rng = np.random.default_rng(seed)
    if t.dtype.kind in "iu":
        info = np.iinfo(t.dtype)
        return rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype)
    return rng.standard_normal(t.shape).astype(t.dtype)


def _counters_and_latency(session, n: int) -> tuple[dict[str, float], float]:
    """Mean counter totals and mean latency over n inferences (counters may vary with random knobs)."""
    sums: dict[str, float] = {}
    lat = 0.0
    for _ in range(n):
        session.invoke()
        st = session.stats
        for k, v in st.totals.items():
            sums[k] = sums.get(k, 0) + v
        lat += st.latency_s
    return {k: v / n for k, v in sums.items()}, lat / n


def _json_safe(v):
    """NaN and infinities are not JSON: they become null."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


# ---------------------------------------------------------------- sensors

@click.command()
@click.option("--profile", default=None, help="Profile of the modeled sensor (default: this device's).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_with_root
def sensors(profile: str | None, as_json: bool) -> None:
    """Energy sensors on this machine: what each covers, its units, and whether it can be read (and why
    not). The modeled sensor (counters x profile) is always listed."""
    from ..energy import ModeledSensor, active_profile, discover, sysfs_root as root_now
    d = discover()
    try:
        rows = [(s, d.probe(s)) for s in d.sensors]
        modeled = ModeledSensor(active_profile(profile))
        rows.append((modeled, modeled.probe()))
        best = d.best()
        if as_json:
            click.echo(json.dumps(_json_safe({
                "sysfs_root": str(root_now()),
                "sensors": [dict(name=s.name, kind=s.kind, quantity=s.quantity, unit=s.unit, scope=s.scope,
                                 source=s.source, resolution=s.resolution, refresh_interval_s=s.refresh_interval_s,
                                 min_window_s=s.min_window_s if s.kind != "modeled" else None,
                                 readable=p.readable, reason=p.reason, reading=p.reading) for s, p in rows],
                "default": best.name if best else None, "not_found": d.notes}), indent=1))
            return
        click.echo(f"Energy sensors (sysfs root {root_now()}):")
        head = ("NAME", "KIND", "QUANTITY", "UNIT", "RESOLUTION", "REFRESH", "READABLE", "READING")
        table = [head]
        for s, p in rows:
            if s.resolution is None:
                res = "-"
            else:
                res = format_energy(s.resolution) if s.quantity == "energy" else format_power(s.resolution)
            refresh = "per inference" if s.kind == "modeled" else format_time(s.refresh_interval_s)
            table.append((s.name, s.kind, s.quantity, s.unit or "-", res, refresh, "yes" if p.readable else "no",
                          p.reading or "-"))
        widths = [max(len(r[i]) for r in table) for i in range(len(head))]
        for r in table:
            click.echo("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        click.echo("")
        for s, p in rows:
            click.echo(f"  {s.name}: {s.scope}; read from {s.source}")
            if not p.readable:
                click.echo(f"    not readable: {p.reason}")
            elif p.reason:
                click.echo(f"    note: {p.reason}")
        if d.notes:
            click.echo("\nNot found:")
            for note in d.notes:
                click.echo(f"  - {note}")
        click.echo("")
        if best:
            click.echo(f"`tunable energy` will use {best.name} ({best.kind}) unless --sensor says otherwise.")
        else:
            click.echo("No readable energy sensor: measured energy is unavailable on this machine; "
                       "`tunable energy` shows modeled energy only.")
    finally:
        d.close()


# ---------------------------------------------------------------- energy

def _pick_sensor(d, name: str | None):
    """(sensor, None) or (None, why measured energy is unavailable)."""
    from ..energy import SensorError
    if name == "none":
        return None, "not requested (--sensor none)"
    if name:
        try:
            s = d.get(name)
        except SensorError as e:
            raise click.ClickException(str(e)) from None
        p = d.probe(s)
        if not p.readable:
            raise click.ClickException(f"sensor {s.name} cannot be read: {p.reason}")
        return s, None
    best = d.best()
    if best is None:
        return None, f"no readable energy sensor on this machine ({d.why_none()})"
    return best, None


def _breakdown_lines(b, top: int = 5) -> list[str]:
    shares = sorted(((k, v) for k, v in b.shares().items() if v > 0), key=lambda kv: -kv[1])
    out = []
    for k, v in shares[:top]:
        note = ""
        if k == "weight_bytes" and b.weights_in:
            note = " (weights from DRAM)" if b.weights_in == "dram" else " (weights from cache)"
        out.append(f"{k} {100 * v:.1f} %{note}")
    return out


@click.command()
@click.argument("model")
@click.option("--knobs", "knobs_text", default=None, help="Knob setting (tunable.knobs syntax).")
@click.option("--sensor", default=None,
              help="Sensor name from `tunable sensors` (default: the best readable one; 'none': modeled only).")
@click.option("-n", "n", default=100, show_default=True, type=click.IntRange(1), help="Inferences to run.")
@click.option("--profile", default=None, help="Profile for modeled energy (default: $TUNABLE_PROFILE or this "
                                              "device's board profile).")
@click.option("--window-s", type=click.FloatRange(0, min_open=True), default=None,
              help="Attribution window (default: several times the sensor's refresh time, at least 1 s).")
@click.option("--idle-s", type=click.FloatRange(0, min_open=True), default=None,
              help="Idle measurement before the run (default: as long as one window).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random input.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_with_root
def energy(model: str, knobs_text: str | None, sensor: str | None, n: int, profile: str | None,
           window_s: float | None, idle_s: float | None, seed: int, as_json: bool) -> None:
    """Energy per inference of MODEL: measured (gross, and dynamic after subtracting the idle power measured
    just before), modeled from the counters and a device profile, and their ratio."""
    import tunable
    from ..energy import EnergyModel, active_profile, discover, measure_inferences, model_weight_bytes
    prof = active_profile(profile)
    path = registry.resolve(model)
    m = tunable.load(path)
    s = m.session()
    knobs_desc = _apply_knobs(s, knobs_text)
    s.set_input(_input_for(m, seed))
    for _ in range(3):  # warm caches and page in the arena before anything is timed or counted
        s.invoke()
    totals, latency = _counters_and_latency(s, n)
    em = EnergyModel(prof, m)
    mod = em.breakdown(totals, latency)

    d = discover()
    try:
        sens, why = _pick_sensor(d, sensor)
        meas = None
        if sens is not None:
            if not as_json:
                click.echo(f"measuring with {sens.name}: idle first, then inferences in windows...", err=True)
            # Plan windows on the wall time of a Python-driven inference (call overhead included), which is
            # what fills a window, not on the runtime's own latency.
            t0 = time.perf_counter()
            for _ in range(20):
                s.invoke()
            wall = (time.perf_counter() - t0) / 20
            meas = measure_inferences(s.invoke, sens, n, wall, window_s=window_s, idle_s=idle_s)
    finally:
        d.close()

    ratio = {}
    if meas is not None and meas.inferences:
        ratio = {"gross": meas.gross_joules / mod.total_joules if mod.total_joules else math.nan,
                 "dynamic": meas.dynamic_joules / mod.dynamic_joules if mod.dynamic_joules else math.nan}
    if as_json:
        out = {
            "model": str(path), "knobs": knobs_text, "inferences_counted": n, "latency_s": latency,
            "modeled": {"kind": "modeled", "profile": prof.name, "fitted": prof.fitted,
                        "fitted_on": prof.fitted_on, "source": prof.source, "gross_joules": mod.total_joules,
                        "dynamic_joules": mod.dynamic_joules, "terms_joules": mod.terms_joules,
                        "weights_in": mod.weights_in},
            "measured": None if meas is None else {
                "kind": meas.kind, "sensor": meas.sensor, "label": meas.label, "idle_watts": meas.idle_watts,
                "idle_s": meas.idle_s, "inferences": meas.inferences, "windows": len(meas.windows),
                "inferences_per_window": meas.plan.per_window, "batching": meas.plan.note,
                "gross_joules": meas.gross_joules, "dynamic_joules": meas.dynamic_joules,
                "mean_watts": meas.mean_watts, "spread_joules": meas.spread_joules, "complete": meas.complete,
                "error": meas.error},
            "measured_unavailable": why, "ratio_measured_over_modeled": ratio or None}
        click.echo(json.dumps(_json_safe(out), indent=1))
        return

    wb = model_weight_bytes(m)
    click.echo(f"model     {path.name}: {len(m.layers)} layers, {m.macs:,} MACs, weights {wb:,} B")
    click.echo(f"knobs     {knobs_desc}")
    click.echo(f"counted   {n} inferences, mean latency {format_time(latency)} (the runtime's timing of each run)")
    click.echo("")
    click.echo(f"modeled   {format_energy(mod.total_joules)} per inference (gross): base "
               f"{format_energy(mod.base_joules)} + dynamic {format_energy(mod.dynamic_joules)}")
    click.echo(f"          {prof.label()}")
    click.echo(f"          source: {prof.source}")
    click.echo(f"          where it goes: {', '.join(_breakdown_lines(mod))}")
    if meas is None:
        click.echo(f"measured  unavailable: {why}.")
        click.echo("          Only modeled energy is shown; no measured number exists for this run.")
        return
    verb, how = meas.label.split(" ", 1)
    click.echo(f"{verb:9s} {how}")
    if meas.idle_watts is not None:
        click.echo(f"          idle {format_power(meas.idle_watts)} over {format_time(meas.idle_s)} just before")
    click.echo(f"          batching: {meas.plan.note}")
    if meas.inferences:
        wall = sum(w.seconds for w in meas.windows) / meas.inferences
        click.echo(f"          gross   {format_energy(meas.gross_joules)} per inference (mean "
                   f"{format_power(meas.mean_watts)}, {len(meas.windows)} window(s) of {meas.plan.per_window}, "
                   f"{format_time(wall)} wall time per inference, spread {format_energy(meas.spread_joules)})")
        click.echo(f"          dynamic {format_energy(meas.dynamic_joules)} per inference (idle power x time "
                   "subtracted)")
    if not meas.complete:
        click.echo(f"          INCOMPLETE: {meas.error}")
    if ratio:
        click.echo(f"ratio     {verb} / modeled: gross {ratio['gross']:.3g}x, dynamic {ratio['dynamic']:.3g}x")


# ---------------------------------------------------------------- calibrate

# Knob settings swept by default when tunable.knobs is available: each moves different counters (aip the FC
# weight bytes, drowsy the conv MACs), which is what lets the regression tell the counters apart.
DEFAULT_SWEEP = ("off", "aip=0.5", "aip=0.125", "drowsy=0.3", "drowsy=0.6")


def _sweep_settings(given: tuple[str, ...]) -> list[str | None]:
    if given:
        return list(given)
    try:
        importlib.import_module("tunable.knobs")
    except ImportError:
        return [None]
    return list(DEFAULT_SWEEP)


@click.command()
@click.argument("models", nargs=-1, required=True)
@click.option("--sensor", required=True, help="The measured sensor to fit against (see `tunable sensors`).")
@click.option("--name", default=None, help="Name of the fitted profile (default: fitted-<base profile>).")
@click.option("--base", "base_name", default=None, help="Profile to start from (cache size; default: this "
                                                        "device's).")
@click.option("--knobs", "knob_settings", multiple=True, help="A knob setting to include in the sweep "
                                                              "(repeatable).")
@click.option("--window-s", type=click.FloatRange(0, min_open=True), default=None,
              help="Seconds per window (default: several times the sensor's refresh time, at least 1 s).")
@click.option("--repeats", default=2, show_default=True, type=click.IntRange(1), help="Passes over the sweep.")
@click.option("--out-dir", type=click.Path(file_okay=False), default=None,
              help="Where to save the profile (default: the user profile directory).")
@_with_root
def calibrate(models: tuple[str, ...], sensor: str, name: str | None, base_name: str | None,
              knob_settings: tuple[str, ...], window_s: float | None, repeats: int, out_dir: str | None) -> None:
    """Fit a device profile: regress energy measured by SENSOR on time and counters over a sweep of MODELS,
    knob settings and duty cycles; save it and print each coefficient and the fit error."""
    import tunable
    from ..energy import (Sampler, SweepPoint, active_profile, discover, fit_windows, run_sweep, save_profile)
    from ..energy.measure import default_window_s
    base = active_profile(base_name)
    d = discover()
    try:
        sens, _ = _pick_sensor(d, sensor)
        window_s = window_s or default_window_s(sens)
        points = []
        for spec in models:
            path = registry.resolve(spec)
            m = tunable.load(path)
            seen: list[dict] = []
            for setting in _sweep_settings(knob_settings):
                s = m.session()
                try:
                    desc = _apply_knobs(s, setting) if setting is not None else "off"
                    s.set_input(_input_for(m, 0))
                    counters, _ = _counters_and_latency(s, 5)
                except TunableError as e:
                    if knob_settings:  # asked for explicitly: an error; from the default sweep: skipped
                        raise
                    click.echo(f"  {path.name}: skipping knobs {setting}: {e}", err=True)
                    continue
                if not knob_settings and counters in seen:
                    continue  # the knob does not apply to this model's layers: nothing new to fit
                seen.append(counters)

                def run_one(s=s) -> float:
                    s.invoke()
                    return s.last_latency_s
                points.append(SweepPoint(f"{path.name} knobs {desc}", run_one, counters))
        total = len(points) * 2 * repeats
        click.echo(f"calibrating against {sens.label()}: {total} windows of {format_time(window_s)} "
                   f"(about {format_time(total * window_s + window_s)} with the idle measurement)", err=True)
        with Sampler(sens) as sampler:
            with sampler.window() as idle:
                time.sleep(window_s)
            windows = run_sweep(points, sampler, window_s, repeats=repeats,
                                progress=lambda msg: click.echo(f"  {msg}", err=True))
    finally:
        d.close()
    try:
        fit = fit_windows(windows)
    except ValueError as e:
        raise click.ClickException(f"fit failed: {e}") from None
    prof = fit.to_profile(name or f"fitted-{base.name}", base, sens.name, [p.label for p in points])
    where = save_profile(prof, out_dir)
    click.echo(f"fitted {prof.name} on {prof.fitted_on} ({fit.windows} windows, {sens.kind} by {sens.name}; "
               f"idle before the sweep {format_power(idle.mean_watts) if idle.complete else 'unknown'})")
    for line in fit.describe():
        click.echo(f"  {line}")
    click.echo(f"fit error: {100 * fit.rms_relative_error:.2f} % rms, {100 * fit.max_relative_error:.2f} % max "
               f"(relative, per window); R^2 {fit.r2:.4f}")
    click.echo(f"saved {where}; use it with --profile {prof.name} or TUNABLE_PROFILE={prof.name}")


commands = [sensors, energy, calibrate]
