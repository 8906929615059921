"""Accuracy and operating points: `tunable eval` and `tunable profile`.

    tunable eval MODEL --data npz:test.npz [--knobs "drowsy=0.3 aip=1/16"] [--calib npz:train.npz] [--json]
    tunable profile MODEL --data npz:test.npz --calib npz:train.npz -o points.json [--plot front.png]

MODEL is a .tflite/.plan path or a manifest name. Inputs are preprocessed as the model manifest says for that
file (its "preprocess" options), overridden by --preprocess. Energy is modeled with --profile (default: the
profile tunable.energy picks for this machine); every energy printed names its profile.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from .. import models as registry
from ..errors import TunableError

_DATA_HELP = "Labelled data: mnist:PATH, cifar10:PATH, folder:PATH or npz:PATH (optionally :train / :test)."


def _common(fn):
    opts = [
        click.argument("model"),
        click.option("--data", "data", required=True, metavar="SPEC", help=_DATA_HELP),
        click.option("--limit", type=click.IntRange(1), default=None, help="Use the first N images of --data."),
        click.option("--preprocess", "preprocess", default=None, metavar="OPTS",
                     help="Preprocessing options (key=value,... or JSON) over the manifest's, e.g. "
                          "'int8=pixel-128' or 'scale=1/255'."),
        click.option("--calib", default=None, metavar="SPEC",
                     help="Calibration split (same forms as --data): drowsy importance ranks, AIP column orders "
                          "(and, for profile, the greedy schedules) are fitted on it, never on --data."),
        click.option("--calib-limit", type=click.IntRange(1), default=512, show_default=True,
                     help="Calibration images used for ranks and column orders."),
        click.option("--lut-codebook", type=click.Choice(["layer", "channel"]), default="layer", show_default=True,
                     help="Weight codebooks of look-up tables: one per layer or one per output channel."),
        click.option("--profile", "energy_profile", default=None, metavar="NAME",
                     help="Energy profile for modeled energy (name or .toml path); default: this machine's."),
        click.option("--threads", type=click.IntRange(1, 64), default=1, show_default=True,
                     help="Worker threads of the session (latency only; outputs and counters do not change)."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr (default: when stderr is a terminal)."),
    ]
    for o in reversed(opts):
        fn = o(fn)
    return fn


def _parse_lut(text: str | None) -> list[tuple[int, int]] | str | None:
    """--lut: 'none', 'default' (the compiler's default set) or 'KWxKA,KWxKA,...'."""
    if text is None or text.strip().lower() in ("", "none"):
        return None
    if text.strip().lower() == "default":
        return "default"
    out = []
    for part in text.replace(" ", ",").split(","):
        if not part:
            continue
        try:
            kw, ka = part.lower().split("x")
            out.append((int(kw), int(ka)))
        except ValueError:
            raise TunableError(f"--lut {text!r}: expected 'default', 'none' or K_wxK_a pairs like 16x256,8x256"
                               ) from None
    return out


class _Setup:
    """Model, inputs and evaluators built from the common options."""

    def __init__(self, model: str, data: str, limit, preprocess, calib, calib_limit, energy_profile,
                 calib_eval: int | None = None, lut=None, lut_codebook: str = "layer", threads: int = 1):
        import tunable
        from ..data import open_dataset
        from ..energy import active_profile, load_profile
        from ..evaluate import Evaluator, load_model, prepare_inputs, preprocess_options_for
        from ..preprocess import parse_options
        self.path = registry.resolve(model)
        self.options = preprocess_options_for(self.path, parse_options(preprocess))
        plain = tunable.load(self.path)
        self.xc = self.yc = None
        if calib:
            cds = open_dataset(calib)
            n = max(calib_limit, calib_eval or 0)
            self.xc, self.yc = prepare_inputs(plain, cds, self.options, limit=n)
            self.calib_desc = cds.describe()
            self.model = load_model(self.path, self.xc[:calib_limit], lut=lut, lut_codebook=lut_codebook)
        else:
            self.calib_desc = None
            self.model = load_model(self.path, None, lut=lut, lut_codebook=lut_codebook) if lut else plain
        ds = open_dataset(data)
        self.data_desc = ds.describe()
        self.x, self.y = prepare_inputs(self.model, ds, self.options, limit=limit)
        self.profile = load_profile(energy_profile) if energy_profile else active_profile()
        self.ev = Evaluator(self.model, self.x, self.y, profile=self.profile, threads=threads)
        self.cal = None
        if self.xc is not None:
            n = len(self.xc) if calib_eval is None else min(calib_eval, len(self.xc))
            self.cal = Evaluator(self.model, self.xc[:n], self.yc[:n], profile=self.profile)


def _parse_knobs(text: str | None):
    from ..knobs import OFF, Knobs
    if not text:
        return OFF
    p = Path(text)
    if p.suffix in (".toml", ".json") and p.is_file():
        body = p.read_text()
        return Knobs.from_toml(body) if p.suffix == ".toml" else Knobs.from_json(body)
    return Knobs.parse(text)


def _progress_ctx(enabled: bool | None):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    console = Console(stderr=True)
    on = console.is_terminal if enabled is None else enabled
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not on, transient=True)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


# ---------------------------------------------------------------------------------------------- eval

@click.command("eval")
@_common
@click.option("--knobs", "knobs_text", default=None, metavar="KNOBS",
              help="Knob setting: 'drowsy=0.3 drowsy_granularity=channel aip=1/16 ...' or a .toml/.json file.")
@click.option("--agreement/--no-agreement", default=True, show_default=True,
              help="Also run with knobs off and report how often the top-1 class is the same.")
@click.option("--fixed-seed", is_flag=True,
              help="Use the knobs' seed for every input (default: seed + input index, so random drowsy "
                   "results average over masks).")
@click.option("--layers", "per_layer", is_flag=True, help="Also print the counters of every layer.")
def eval_cmd(model, data, limit, preprocess, calib, calib_limit, lut_codebook, energy_profile, threads, as_json,
             progress, knobs_text, agreement, fixed_seed, per_layer) -> None:
    """Accuracy, agreement with knobs off, counters, modeled energy and latency of MODEL on labelled data."""
    from ..evaluate import lut_configs_of
    from ..units import format_energy, format_time
    knobs = _parse_knobs(knobs_text)
    st = _Setup(model, data, limit, preprocess, calib, calib_limit, energy_profile, lut=lut_configs_of(knobs),
                lut_codebook=lut_codebook, threads=threads)
    st.ev.per_input_seed = not fixed_seed
    n = len(st.ev)
    with _progress_ctx(progress) as bar:
        ref = None
        if agreement and not knobs.is_off:
            t = bar.add_task("knobs off", total=n)
            ref = st.ev.reference(progress=lambda k: bar.advance(t, k))
        t = bar.add_task(str(knobs), total=n)
        r = st.ev.evaluate(knobs, agreement=agreement, progress=lambda k: bar.advance(t, k))
    if ref is None and agreement:
        ref = st.ev.reference()
    out = r.to_dict(per_layer=per_layer)
    out.update({"model": str(st.path), "dataset": data, "dataset_description": st.data_desc,
                "calibration": calib, "preprocess": st.options})
    if ref is not None and ref is not r:
        out["off"] = {"top1": ref.top1, "top5": ref.top5, "counters": ref.totals, "energy_j": ref.energy_j,
                      "latency_s": ref.latency_s}
    if as_json:
        click.echo(json.dumps(out, indent=1, default=float))
        return
    from rich.console import Console
    from rich.table import Table
    con = Console(soft_wrap=True)
    con.print(f"[bold]{st.path}[/bold] on {st.data_desc}" + (f" (first {n})" if limit else ""))
    if calib:
        con.print(f"calibration: {st.calib_desc} (first {min(calib_limit, len(st.xc))})")
    con.print(f"knobs: {knobs}")
    agree = f", agreement with knobs off {_pct(r.agreement)}" if r.agreement is not None else ""
    line = f"top-1 {_pct(r.top1)}, top-5 {_pct(r.top5)}{agree}"
    if ref is not None and ref is not r:
        line += f"  (knobs off: top-1 {_pct(ref.top1)})"
    con.print(line)
    e = f"modeled energy {format_energy(r.energy_j)} per inference ({r.profile_label})"
    if ref is not None and ref is not r and ref.energy_j:
        e += f", {100 * (1 - r.energy_j / ref.energy_j):.1f} % saved"
    con.print(e)
    con.print(f"latency {format_time(r.latency_s)} mean, {format_time(r.latency_median_s)} median per inference "
              f"(measured, {threads} thread{'s' if threads > 1 else ''}); {n} inferences in {r.wall_s:.2f} s")
    tab = Table("counter", "per inference", *(["knobs off", "saved"] if ref is not None and ref is not r else []))
    for c, v in r.totals.items():
        row = [c, f"{v:,.1f}"]
        if ref is not None and ref is not r:
            o = ref.totals[c]
            saved = "-" if not o or c in ("outputs_skipped", "lut_hits", "lut_misses") else f"{100 * (1 - v / o):.1f} %"
            row += [f"{o:,.1f}", saved]
        tab.add_row(*row)
    con.print(tab)
    con.print(f"conv MACs saved {_pct(r.conv_macs_saved)}"
              + (f"; FC weight bytes saved {_pct(r.fc_weight_bytes_saved)}" if r.fc_weight_bytes_off else ""))
    if per_layer:
        names = ["macs", "weight_bytes", "outputs_skipped", "lut_lookups"]
        lt = Table("layer", *names)
        for layer, cs in r.layers.items():
            lt.add_row(layer, *(f"{cs[c]:,.1f}" for c in names))
        con.print(lt)


# ---------------------------------------------------------------------------------------------- profile

@click.command("profile")
@_common
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Operating points (JSON).")
@click.option("--plot", default=None, type=click.Path(dir_okay=False),
              help="Also plot accuracy against modeled energy (needs matplotlib).")
@click.option("--families", default="all", show_default=True,
              help="Which curves: comma-separated, e.g. 'drowsy/channel/importance,aip,combined' (see "
                   "tunable.profiling.parse_families).")
@click.option("--cost", type=click.Choice(["energy", "macs", "conv_macs", "weight_bytes"]), default="energy",
              show_default=True, help="What the greedy schedules save per accuracy lost.")
@click.option("--max-loss", type=click.FloatRange(0, 1), default=0.05, show_default=True,
              help="Greedy schedules stop before losing more calibration top-1 than this (fraction).")
@click.option("--calib-eval", type=click.IntRange(10), default=500, show_default=True,
              help="Calibration images the greedy schedules are scored on.")
@click.option("--max-points", type=click.IntRange(2), default=12, show_default=True,
              help="Points kept per greedy trajectory (evenly spread).")
@click.option("--lut", "lut_text", default=None, metavar="CONFIGS",
              help="Look-up tables compiled into the plan: 'KWxKA,...', 'default' or 'none' (default: the lut "
                   "families' widths 64, 32, 16, 8, 4 with K_a = 256 when lut is profiled).")
@click.option("--quick", is_flag=True, help="A fast subset: drowsy channel/importance, aip, combined.")
@click.option("-v", "--verbose", is_flag=True, help="Log every point and greedy step on stderr.")
def profile_cmd(model, data, limit, preprocess, calib, calib_limit, lut_codebook, energy_profile, threads, as_json,
                progress, output, plot, families, cost, max_loss, calib_eval, max_points, lut_text, quick, verbose) -> None:
    """Sweep knobs on MODEL, fit non-uniform schedules on --calib, write operating points and their Pareto
    front (the governor's input)."""
    from ..profiling import LUT_CONFIGS, parse_families, plot_profile, profile_model, write_profile
    fams = parse_families("drowsy/channel/importance,aip,combined" if quick and families == "all" else families)
    lut = _parse_lut(lut_text) if lut_text is not None else (
        LUT_CONFIGS if any(f.kind in ("lut", "combined") for f in fams) else None)
    st = _Setup(model, data, limit, preprocess, calib, calib_limit, energy_profile, calib_eval=calib_eval, lut=lut,
                lut_codebook=lut_codebook, threads=threads)
    log = (lambda s: click.echo(s, err=True)) if verbose else None
    with _progress_ctx(progress) as bar:
        task = bar.add_task("knobs off", total=len(fams) + 1)
        st.ev.reference()
        bar.advance(task)

        def step(name: str) -> None:
            bar.update(task, description=name, advance=1)
        data_meta = {"model": str(st.path), "dataset": data, "calibration": calib,
                     "dataset_description": st.data_desc, "calibration_description": st.calib_desc,
                     "preprocess": st.options, "lut_compiled": lut, "lut_codebook": lut_codebook}
        prof = profile_model(st.model, st.ev, st.cal, families=fams, cost=cost, max_loss=max_loss,
                             max_points=max_points, log=log, meta=data_meta, progress=step)
    write_profile(prof, output)
    plotted = None
    if plot:
        try:
            plot_profile(prof, plot)
            plotted = plot
        except TunableError as e:
            click.echo(f"no plot: {e}", err=True)
    if as_json:
        click.echo(json.dumps({"output": output, "plot": plotted, "points": len(prof.points),
                               "front": prof.front, "unavailable": prof.meta.get("unavailable", {})}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table
    con = Console(soft_wrap=True)
    base = prof.baseline
    con.print(f"[bold]{st.path}[/bold]: {len(prof.points)} operating points on {st.data_desc}"
              + (f", schedules fitted on {st.calib_desc}" if calib else "") + f"; energy: {st.profile.label()}")
    tab = Table("Pareto front", "top-1", "energy saved", "MACs saved", "latency")
    for p in prof.front_points:
        tab.add_row(p.name, _pct(p.accuracy), _pct(p.extra.get("energy_saved")), _pct(p.extra.get("macs_saved")),
                    f"{p.latency_s * 1e3:.3f} ms")
    con.print(tab)
    con.print("[dim]knob settings of every point are in the JSON (points[].knobs)[/dim]")
    for fam, why in prof.meta.get("unavailable", {}).items():
        con.print(f"[dim]{fam}: not measured ({why})[/dim]")
    con.print(f"wrote {output}" + (f" and {plotted}" if plotted else ""))


commands = [eval_cmd, profile_cmd]
