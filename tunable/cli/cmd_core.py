"""Core commands: inspect, bench, diff, models."""
from __future__ import annotations

import json
import sys

import click
import numpy as np

from .. import models as registry


def _load(model: str):
    import tunable
    return tunable.load(registry.resolve(model))


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def inspect(model: str, as_json: bool) -> None:
    """Layers, MACs, parameters, quantization and arena size of MODEL (a .tflite, .plan or manifest name)."""
    from rich.console import Console
    from rich.table import Table

    from ..peers import tflm_arena_used
    path = registry.resolve(model)
    m = _load(model)
    tflm = tflm_arena_used(str(path)) if path.suffix == ".tflite" else None
    if as_json:
        click.echo(json.dumps({
            "model": str(path), "macs": m.macs, "arena_bytes": m.arena_bytes, "tflm_arena": tflm,
            "inputs": [dict(name=t.name, shape=t.shape, dtype=str(t.dtype), scale=t.scale, zero_point=t.zero_point)
                       for t in m.inputs],
            "outputs": [dict(name=t.name, shape=t.shape, dtype=str(t.dtype), scale=t.scale, zero_point=t.zero_point)
                        for t in m.outputs],
            "layers": [dict(name=l.name, op=l.op, inputs=l.input_shapes, output=l.output_shape, macs=l.macs,
                            param_bytes=l.param_bytes, output_scale=m.tensor_info(l.out_tensor).scale,
                            output_zero_point=m.tensor_info(l.out_tensor).zero_point) for l in m.layers]},
                           indent=1))
        return
    con = Console()
    con.print(f"[bold]{path}[/bold]")
    for kind, ts in (("input", m.inputs), ("output", m.outputs)):
        for t in ts:
            con.print(f"  {kind} {t.name}: {t.dtype} {list(t.shape)} scale {t.scale:.6g} zero point {t.zero_point}")
    table = Table("layer", "op", "input", "output", "output quantization", "MACs", "params (B)")
    for l in m.layers:
        q = m.tensor_info(l.out_tensor)
        qtext = f"{q.dtype} s={q.scale:.4g} zp={q.zero_point}" if q.dtype.kind in "iu" else str(q.dtype)
        if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            qtext += ", per-channel multipliers"
        table.add_row(l.name, l.op, " ".join(str(list(s)) for s in l.input_shapes), str(list(l.output_shape)),
                      qtext, f"{l.macs:,}", f"{l.param_bytes:,}")
    con.print(table)
    con.print(f"total MACs {m.macs:,}; parameters {sum(l.param_bytes for l in m.layers):,} B")
    line = f"arena {m.arena_bytes:,} B (activations and scratch)"
    if tflm:
        line += f"; TFLite Micro needs {tflm.get('total', 0):,} B ({tflm.get('head', 0):,} B for activations)"
    elif path.suffix == ".tflite":
        line += "; install tflite-micro to compare with its arena"
    con.print(line)


@click.command()
@click.argument("model")
@click.option("--window", default=0.3, show_default=True, help="Seconds per timing window.")
@click.option("--repeats", default=5, show_default=True, help="Timing windows; the median is reported.")
@click.option("--peers/--no-peers", default=True, help="Also time LiteRT and TFLite Micro when installed.")
def bench(model: str, window: float, repeats: int, peers: bool) -> None:
    """Single-thread latency of MODEL on this engine and, in the same run, on the peer runtimes."""
    from ..benchmark import fmt_us, measure, pin_to_one_core
    from ..peers import PEERS, Peer, PeerUnavailable
    from .._tunable_c import ffi, lib
    path = registry.resolve(model)
    cpu = pin_to_one_core()
    m = _load(model)
    s = m.session()
    t = m.inputs[0]
    rng = np.random.default_rng(0)
    x = rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, t.shape).astype(t.dtype) \
        if t.dtype.kind in "iu" else rng.standard_normal(t.shape).astype(t.dtype)
    s.set_input(x)
    ours = measure(s.invoke, window, repeats)
    isa = ffi.string(lib.tn_isa()).decode()
    click.echo(f"{path.name}: {m.macs:,} MACs, pinned to CPU {cpu}, kernels '{isa}'")
    click.echo(f"  tunable          {fmt_us(ours):>12}  {m.macs / ours / 1e9:6.1f} GMAC/s")
    if not peers or path.suffix != ".tflite":
        return
    for kind in PEERS:
        try:
            p = Peer(kind, path)
        except PeerUnavailable as e:
            click.echo(f"  {kind:<16} unavailable: {e}")
            continue
        except Exception as e:  # a peer that cannot run the model is reported, not fatal
            click.echo(f"  {kind:<16} failed: {e}")
            continue
        p.run(x)
        tp = measure(p.invoke, window, repeats)
        click.echo(f"  {kind:<16} {fmt_us(tp):>12}  {m.macs / tp / 1e9:6.1f} GMAC/s   tunable/peer latency ratio "
                   f"{ours / tp:5.2f}")


@click.command()
@click.argument("model")
@click.option("--against", type=click.Choice(["tflm"]), default="tflm", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--input", "input_file", type=click.Path(exists=True, dir_okay=False),
              help="An .npy input (default: seeded random).")
def diff(model: str, against: str, seed: int, input_file: str | None) -> None:
    """Layer-by-layer comparison with TFLite Micro's preserved tensors: the first tensor that differs."""
    from ..diff import compare_layers
    path = registry.resolve(model)
    x = np.load(input_file) if input_file else None
    report = compare_layers(path, x, seed)
    for row in report.rows:
        mark = "ok " if row.differing == 0 else "DIFF"
        click.echo(f"  {mark} {row.layer:<18} {row.op:<20} tensor {row.tensor:<4} {row.name[:40]:<40} "
                   f"{row.differing:>7} of {row.size:<7} max|d| {row.max_abs}")
    if report.first is None:
        click.echo(f"all {len(report.rows)} layer outputs equal TFLite Micro's (seed {seed})")
    else:
        r = report.first
        click.echo(f"first difference: layer {r.layer} ({r.op}), tensor {r.tensor} '{r.name}': {r.differing} of "
                   f"{r.size} elements, max |diff| {r.max_abs}")
        sys.exit(1)


@click.group()
def models() -> None:
    """The model manifest: bundled and external models."""


@models.command("list")
def models_list() -> None:
    """Models in the manifest and where each is available."""
    for e in registry.manifest():
        path, where = registry.locate(e)
        acc = e.accuracy.get("top1")
        accs = f" top-1 {acc:.1%} on {e.accuracy.get('dataset')}" if acc else ""
        click.echo(f"{e.name:<22} {e.task:<9} {where:<20} {path or e.url}{accs}")


@models.command("pull")
@click.argument("names", nargs=-1, required=True)
def models_pull(names: tuple[str, ...]) -> None:
    """Download manifest models into the cache (checked against their sha256)."""
    for n in names:
        p = registry.pull(n)
        click.echo(f"{n}: {p} (sha256 ok)")


commands = [inspect, bench, diff, models]
