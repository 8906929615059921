#!/usr/bin/env python
"""The knob measurements of issue 7, reproduced: every number printed comes from `tunable profile` (run here
in-process with the arguments it prints) or from the same evaluation loop `tunable eval` uses
(tunable.evaluate.Evaluator), on the shared data:

  A  drowsy: conv MACs saved against top-1 for random and importance selection at each granularity, uniform
     and non-uniform (greedy on the calibration split), MLPerf ResNet-8 and the knob-trained ResNet-8;
  B  conv preview (<= 1 point) and exact sign-ordered termination (zero loss): MACs executed and wall time;
  C  aip on LeNet-5 (MNIST test): FC weight bytes fetched and accuracy at f = 1/4, 1/8, 1/16;
  D  lut: LeNet-5 at K_w = 8; ResNet-8 with mixed per-layer widths averaging <= 4.5 bits (greedy on calibration);
  E  real time: conv wall time with drowsy at 50 % per granularity, single-threaded;
  F  the combined front per model: best top-1 at 30 % and 50 % modeled energy saved, against each knob alone.

Modeled energy uses the horowitz45 profile (the paper constants of docs/energy.md; no time term, so it does not
depend on this machine's load). Schedules are fitted on the calibration split only (CIFAR-10 train_first4000,
MNIST train); accuracies are on the evaluation split (CIFAR-10 test_first1000, MNIST test).

Usage:  nice -n 10 python bench/knobs.py [--quick] [--out out/knobs] [--only A,C,...] [--models ...]
--quick: evaluation subsets (300 CIFAR / 1000-2000 MNIST images), 150 calibration images for the greedy fits,
fewer timing rounds. Full: the whole evaluation sets (1000 CIFAR-10, 10,000 MNIST), greedy fits scored on 300
calibration images. Every plan is calibrated on the first 512 images of the calibration split (as `tunable eval
--calib` does by default), so section C equals `tunable eval ... --knobs aip=1/8` and
`python models/lenet5/train.py knobs`. In full mode the combined walk is carried past the single knobs' stop
(COMBINED_LOSS) so that F can read the combined front at 30 % and 50 % energy saved. Knobs or models not available
yet are reported as such, never skipped silently.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shlex
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tunable  # noqa: E402
from tunable.cli import main as cli_main  # noqa: E402
from tunable.data import open_dataset  # noqa: E402
from tunable.energy import load_profile  # noqa: E402
from tunable.evaluate import Evaluator, load_model, prepare_inputs, preprocess_options_for, try_knobs  # noqa: E402
from tunable.knobs import Knobs  # noqa: E402
from tunable.paths import shared_dir  # noqa: E402
from tunable.profiling import LUT_CONFIGS, Ladder, ProfileData, greedy_schedule, read_profile  # noqa: E402

SHARED = shared_dir()
CIFAR_TEST = f"npz:{SHARED / 'data' / 'cifar10' / 'test_first1000.npz'}"
CIFAR_TRAIN = f"npz:{SHARED / 'data' / 'cifar10' / 'train_first4000.npz'}"
MNIST_TEST = f"mnist:{SHARED / 'data' / 'mnist'}:test"
MNIST_TRAIN = f"mnist:{SHARED / 'data' / 'mnist'}:train"
MODELS = {
    "resnet8-mlperf": (SHARED / "models" / "mlperf-tiny" / "pretrainedResnet_quant.tflite", CIFAR_TEST, CIFAR_TRAIN),
    "resnet8-knob": (REPO / "models" / "resnet8_cifar10_drowsy_int8.tflite", CIFAR_TEST, CIFAR_TRAIN),
    "lenet5": (REPO / "models" / "lenet5_mnist_int8.tflite", MNIST_TEST, MNIST_TRAIN),
}
PROFILE = "horowitz45"
CALIB_LIMIT = 512   # plans are calibrated on the first 512 calibration images: `tunable eval --calib`'s default
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def pct(v, digits=1) -> str:
    return "   -  " if v is None else f"{100 * v:{5 + digits}.{digits}f}%"


def pts(v) -> str:
    return "  -  " if v is None else f"{100 * v:+5.1f}"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    print(f"\n{title}")
    print("  " + "  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("  " + "  ".join("-" * w for w in widths))
    for r in rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


# ---------------------------------------------------------------------------------------------- helpers

class Ctx:
    def __init__(self, args):
        self.quick = args.quick
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.profile = load_profile(PROFILE)
        # sweeps (profiles) on subsets, the final numbers (C, D, E) on the full evaluation sets
        self.sweep_limits = {"cifar": 300 if args.quick else None, "mnist": 1000 if args.quick else None}
        self.limits = {"cifar": 300 if args.quick else None, "mnist": 2000 if args.quick else None}
        self.calib_eval = 150 if args.quick else 300
        self.verbose = args.verbose
        self.results: dict = {}
        self._cache: dict = {}
        self._calib: dict = {}

    def limit(self, data: str):
        return self.limits["mnist" if data.startswith("mnist") else "cifar"]

    def sweep_limit(self, data: str):
        return self.sweep_limits["mnist" if data.startswith("mnist") else "cifar"]

    def setup(self, key: str):
        """(model with calibration artefacts, evaluation Evaluator, calibration Evaluator) for a model key."""
        if key in self._cache:
            return self._cache[key]
        path, data, calib = MODELS[key]
        opts = preprocess_options_for(path)
        plain = tunable.load(path)
        xc, yc = prepare_inputs(plain, open_dataset(calib), opts, limit=max(CALIB_LIMIT, self.calib_eval))
        model = load_model(path, xc[:CALIB_LIMIT], lut=LUT_CONFIGS)
        x, y = prepare_inputs(model, open_dataset(data), opts, limit=self.limit(data))
        ev = Evaluator(model, x, y, profile=self.profile)
        cal = Evaluator(model, xc[:self.calib_eval], yc[:self.calib_eval], profile=self.profile)
        self._cache[key] = (model, ev, cal)
        self._calib[key] = xc[:CALIB_LIMIT]
        return self._cache[key]


def model_calib(ctx: Ctx, key: str) -> np.ndarray:
    """The calibration inputs the model's plan was compiled with (the first CALIB_LIMIT of its split)."""
    ctx.setup(key)
    return ctx._calib[key]


def available(key: str) -> bool:
    p = MODELS[key][0]
    if not p.exists():
        print(f"\n[{key}] {p} is not there yet: not measured")
        return False
    return True


def run_profile(ctx: Ctx, key: str, families: str, cost: str, max_loss: float, max_points: int,
                tag: str) -> ProfileData:
    """`tunable profile` in-process with the arguments printed (so the numbers are the command's)."""
    path, data, calib = MODELS[key]
    out = ctx.out / f"profile_{key}_{tag}.json"
    args = ["profile", str(path), "--data", data, "--calib", calib, "--profile", PROFILE, "--families", families,
            "--cost", cost, "--max-loss", str(max_loss), "--calib-limit", str(CALIB_LIMIT),
            "--calib-eval", str(ctx.calib_eval),
            "--max-points", str(max_points), "-o", str(out), "--no-progress", "--json"]
    lim = ctx.sweep_limit(data)
    if lim:
        args[4:4] = ["--limit", str(lim)]
    if tag == "all":
        args += ["--plot", str(ctx.out / f"front_{key}.png")]
    print(f"\n$ nice -n 10 tunable {shlex.join(args)}", flush=True)
    t0 = time.time()
    buf = io.StringIO()
    log = ctx.out / f"profile_{key}_{tag}.log"
    with contextlib.redirect_stdout(buf), open(log, "w") as err, contextlib.redirect_stderr(err):
        # -v: every point and greedy step goes to the log (tail -f it to follow a long run)
        cli_main.main(args + ["-v"], standalone_mode=False)
    print(f"  ({time.time() - t0:.0f} s; {out})", flush=True)
    return read_profile(out)


def family_points(prof: ProfileData, family: str):
    base = prof.baseline
    return [base] + [p for p in prof.points if p.family == family]


def max_saved_within(points, base_acc: float, loss: float, key: str = "conv_macs_saved"):
    """Largest saving among points within `loss` of base top-1 on the evaluation split (reading the curve)."""
    ok = [p.extra.get(key, 0.0) or 0.0 for p in points if base_acc - p.accuracy <= loss + 1e-9]
    return max(ok) if ok else None


def calib_selected(points, base_calib: float, loss: float, key: str = "conv_macs_saved"):
    """The point a user could pick without looking at the evaluation split: the largest saving whose
    calibration top-1 is within `loss`; returns (saving, evaluation top-1) or None."""
    ok = [p for p in points if p.extra.get("calib_accuracy") is not None
          and base_calib - p.extra["calib_accuracy"] <= loss + 1e-9]
    if not ok:
        return None
    best = max(ok, key=lambda p: p.extra.get(key, 0.0) or 0.0)
    return best.extra.get(key, 0.0), best.accuracy


def acc_at(points, saving: float, key: str = "conv_macs_saved"):
    """Top-1 at a given saving, linearly interpolated along the family's curve (None beyond its end)."""
    xs = sorted(((p.extra.get(key, 0.0) or 0.0), p.accuracy) for p in points)
    if not xs or saving > xs[-1][0] + 1e-9:
        return None
    for (x0, a0), (x1, a1) in zip(xs, xs[1:]):
        if x0 <= saving <= x1:
            return a0 if x1 == x0 else a0 + (a1 - a0) * (saving - x0) / (x1 - x0)
    return xs[0][1]


# ---------------------------------------------------------------------------------------------- A, F: profiles

# full mode: the combined greedy may lose this much calibration top-1 (the single knobs stop at 0.15), so that its
# front reaches 50 % modeled energy saved where the knobs allow it; F reads that front at 30 % and 50 %
COMBINED_LOSS = 0.6
FAMILIES = ("drowsy/cost=conv_macs,aip,lut,lut/greedy/cost=weight_bytes,prune,weight_lsb_drop,conv_preview/uniform,"
            f"conv_preview/greedy/cost=conv_macs,sign_exact,combined/loss={COMBINED_LOSS}")
RESCALED = ("resnet8-knob", "lenet5")   # knob-trained models: drowsy families also with drowsy_rescale
QUICK_FAMILIES = ("drowsy/row/cost=conv_macs,drowsy/channel/cost=conv_macs,drowsy/element/uniform,aip/uniform,"
                  "lut/uniform,prune/uniform,weight_lsb_drop/uniform,conv_preview/uniform,sign_exact,combined")


def section_profiles(ctx: Ctx, keys: list[str]) -> None:
    for key in keys:
        if not available(key):
            continue
        fams = QUICK_FAMILIES if ctx.quick else FAMILIES
        if key in RESCALED:   # trained with inverted dropout: measure drowsy with 1/(1-p) rescale as well
            fams += ",drowsy/element/rescale/uniform,drowsy/element/rescale/greedy/cost=conv_macs" if ctx.quick \
                else ",drowsy/rescale/cost=conv_macs"
        prof = run_profile(ctx, key, fams, "energy", 0.15, 10 if ctx.quick else 15, "all")
        ctx.results.setdefault("profiles", {})[key] = prof
        base = prof.baseline
        unavailable = prof.meta.get("unavailable", {})
        for fam, why in unavailable.items():
            print(f"  not measured: {fam}: {why.splitlines()[0][:140]}")
        # A: drowsy
        rows = []
        drowsy = sorted({p.family for p in prof.points if p.family.startswith("drowsy/")})
        summary = {}
        for fam in drowsy:
            fp = family_points(prof, fam)
            sel = calib_selected(fp, base.extra.get("calib_accuracy", base.accuracy), 0.02)
            s1, s2 = max_saved_within(fp, base.accuracy, 0.01), max_saved_within(fp, base.accuracy, 0.02)
            summary[fam] = {"saved_at_1pt": s1, "saved_at_2pt": s2, "calib_selected_2pt": sel,
                            "acc_at_5pct": acc_at(fp, 0.05), "acc_at_10pct": acc_at(fp, 0.10),
                            "acc_at_50pct": acc_at(fp, 0.50)}
            rows.append([fam.replace("/cost=conv_macs", ""), pct(s1), pct(s2),
                         "-" if sel is None else f"{pct(sel[0])} -> {pts(sel[1] - base.accuracy)} pt",
                         pct(acc_at(fp, 0.05)), pct(acc_at(fp, 0.10)), pct(acc_at(fp, 0.25)), pct(acc_at(fp, 0.5))])
        ctx.results.setdefault("drowsy", {})[key] = summary
        table(f"A [{key}] drowsy: conv MACs saved (eval top-1 off {pct(base.accuracy)}, calib "
              f"{pct(base.extra.get('calib_accuracy'))}; n_eval {prof.meta.get('n_eval')})",
              ["family", "saved <=1pt", "saved <=2pt", "calib-picked <=2pt -> eval", "top1@5%", "top1@10%",
               "top1@25%", "top1@50%"], rows)
        # B: conv preview (curve) and sign_exact
        rows = []
        for fam in sorted({p.family for p in prof.points if p.family.startswith(("conv_preview", "sign_exact"))}):
            fp = family_points(prof, fam)
            for p in fp[1:]:
                # wall time: the whole inference, single-threaded (the preview and sign_exact run the scalar row
                # engine of approx.c, the off point the SIMD kernels)
                rows.append([p.name, pct(p.accuracy), pts(p.accuracy - base.accuracy), pct(p.extra.get("agreement")),
                             f"{p.macs:,}", pct(p.extra.get("conv_macs_saved")), f"{p.latency_s * 1e3:.2f}"])
        if rows:
            table(f"B [{key}] conv preview / sign_exact (off: {base.macs:,} MACs, {base.latency_s * 1e3:.2f} ms)",
                  ["point", "top-1", "delta pt", "agreement", "MACs", "conv MACs saved", "ms/inference"], rows)
            fp = [p for p in prof.points if p.family.startswith("conv_preview")]
            ctx.results.setdefault("preview", {})[key] = max_saved_within([base] + fp, base.accuracy, 0.01)
            # the point a user picks on the calibration split alone (<= 1 point there), and its evaluation top-1
            ctx.results.setdefault("preview_calib", {})[key] = calib_selected(
                [base] + fp, base.extra.get("calib_accuracy", base.accuracy), 0.01)
        # F: fronts. Each knob alone = every point of its families (uniform sweeps and greedy walks); combined =
        # the combined greedy walk (fitted on calibration); front = all points. Accuracy on the evaluation split.
        kinds = ["drowsy", "aip", "lut", "prune", "weight_lsb_drop", "conv_preview", "sign_exact", "combined"]
        rows, fsum = [], {}
        for kind in kinds + ["front (all points)"]:
            if kind.startswith("front"):
                cand = prof.points
            else:
                cand = [p for p in prof.points if p.family.split("/")[0] == kind]
            if not cand:
                why = next((w for f, w in unavailable.items() if f.split("/")[0] == kind), "no points")
                rows.append([kind, "not measured", why.splitlines()[0][:60], ""])
                fsum[kind] = None
                continue
            best = {}
            for lvl in (0.3, 0.5):
                ok = [p for p in cand if (p.extra.get("energy_saved") or 0) >= lvl - 1e-9]
                best[lvl] = max(ok, key=lambda p: p.accuracy) if ok else None
            most = max((p.extra.get("energy_saved") or 0) for p in cand)
            fsum[kind] = {"max_saved": most, **{
                str(l): (None if b is None else {"name": b.name, "accuracy": b.accuracy,
                                                 "delta": b.accuracy - base.accuracy,
                                                 "energy_saved": b.extra.get("energy_saved")})
                for l, b in best.items()}}
            rows.append([kind, pct(most)] + [
                "none reaches it" if best[l] is None else
                f"{pct(best[l].accuracy)} ({pts(best[l].accuracy - base.accuracy)} pt; {best[l].name}, "
                f"{pct(best[l].extra.get('energy_saved'))})" for l in (0.3, 0.5)])
        ctx.results.setdefault("fronts", {})[key] = fsum
        comb_loss = prof.meta.get("greedy", {}).get("combined", {}).get("max_loss")
        table(f"F [{key}] best top-1 at >= 30 % / >= 50 % modeled energy saved ({prof.profile}; off "
              f"{pct(base.accuracy)}, {base.energy_j * 1e6:.2f} uJ; n_eval {prof.meta.get('n_eval')}; combined walk "
              f"stops at {comb_loss} calibration loss)",
              ["knob", "max saved", "top-1 @30% saved (delta; point, saved)", "top-1 @50% saved"], rows)


# ---------------------------------------------------------------------------------------------- C: aip

def section_aip(ctx: Ctx, keys: list[str]) -> None:
    if "lenet5" not in keys or not available("lenet5"):
        return
    model, ev, cal = ctx.setup("lenet5")
    why = try_knobs(model, Knobs(aip=1 / 8))
    if why:
        print(f"\nC aip: not available ({why})")
        return
    off = ev.reference()
    # a larger calibration split for picking the margin: LeNet is cheap, and 0.5 pt must be resolvable
    path, _, calib = MODELS["lenet5"]
    xc, yc = prepare_inputs(model, open_dataset(calib), preprocess_options_for(path), limit=2000)
    cal = Evaluator(model, xc, yc, profile=ctx.profile)
    coff = cal.reference()
    rows, res = [], {}
    for f in (1 / 4, 1 / 8, 1 / 16):
        # the ReLU-skip margin and the classifier's exact rows are picked on the calibration split: the largest
        # FC weight saving within 0.5 pt of knobs off there
        cands = []
        for margin in (0, -2, -4, -8):
            for topm in (0, 3):
                k = Knobs(aip=f, aip_margin=margin, aip_topm=topm)
                c = cal.evaluate(k, agreement=False)
                cands.append((k, c))
                if ctx.verbose:
                    print(f"  calib {k}: top-1 {c.top1:.4f}, FC bytes {c.fc_weight_bytes:,.0f}")
        ok = [(k, c) for k, c in cands if coff.top1 - c.top1 <= 0.005] or cands[:1]
        k, c = min(ok, key=lambda kc: kc[1].fc_weight_bytes)
        for kk in ([Knobs(aip=f)] + ([k] if k != Knobs(aip=f) else [])):
            r = ev.evaluate(kk)
            saved = 1 - r.fc_weight_bytes / off.fc_weight_bytes
            rows.append([f"1/{round(1 / f)}", str(kk), f"{r.fc_weight_bytes:,.0f}", pct(saved),
                         pct(r.top1, 2), pts(r.top1 - off.top1), pct(r.agreement)])
            res[str(kk)] = {"fc_weight_bytes": r.fc_weight_bytes, "saved": saved, "top1": r.top1,
                            "delta": r.top1 - off.top1}
    ctx.results["aip"] = res
    table(f"C aip on LeNet-5, MNIST test (n={len(ev)}; off: top-1 {pct(off.top1, 2)}, FC weight bytes "
          f"{off.fc_weight_bytes:,.0f}; plan calibrated on the first {len(model_calib(ctx, 'lenet5'))} MNIST train "
          f"images); second row per f (if any): margin/top-m picked on 2000 MNIST train images",
          ["f", "knobs", "FC weight B", "saved", "top-1", "delta pt", "agreement"], rows)
    lim = ctx.limit(MODELS["lenet5"][1])
    print(f"  the same numbers: tunable eval {path} --data {MODELS['lenet5'][1]} --calib {calib} --calib-limit "
          f"{len(model_calib(ctx, 'lenet5'))} {'' if lim is None else f'--limit {lim} '}--knobs 'aip=1/8'\n"
          f"                    python models/lenet5/train.py knobs --calib {len(model_calib(ctx, 'lenet5'))}"
          f"{'' if lim is None else f' --n {lim}'}")


# ---------------------------------------------------------------------------------------------- D: lut

def weight_counts(model) -> dict[str, int]:
    """Weights per conv/FC layer: MACs per output position."""
    out = {}
    for l in model.layers:
        if l.op in CONV_OPS + ("FULLY_CONNECTED",):
            out[l.name] = l.macs // max(1, math.prod(l.output_shape[:-1]))
    return out


def avg_bits(knobs: Knobs, counts: dict[str, int]) -> float:
    lut = dict(knobs.lut) if knobs.lut else {}
    tot = sum(counts.values())
    return sum(n * (math.log2(lut[l][0]) if l in lut else 8.0) for l, n in counts.items()) / tot


def section_lut(ctx: Ctx, keys: list[str]) -> None:
    rows, res = [], {}
    if "lenet5" in keys and available("lenet5"):
        model, ev, cal = ctx.setup("lenet5")
        counts = weight_counts(model)
        probe = Knobs(lut={next(iter(counts)): (8, 256)})
        why = try_knobs(model, probe)
        if why:
            print(f"\nD lut: not available ({why})")
            return
        off = ev.reference()
        for kw in (16, 8, 4):
            k = Knobs(lut={l: (kw, 256) for l in counts})
            r = ev.evaluate(k)
            rows.append(["lenet5", f"all layers K_w={kw}", f"{avg_bits(k, counts):.2f}", pct(r.top1, 2),
                         pts(r.top1 - off.top1), pct(1 - r.energy_j / off.energy_j)])
            res[f"lenet5 K_w={kw}"] = {"top1": r.top1, "delta": r.top1 - off.top1}
    for key in ("resnet8-mlperf", "resnet8-knob"):
        if key not in keys or not available(key):
            continue
        model, ev, cal = ctx.setup(key)
        counts = weight_counts(model)
        why = try_knobs(model, Knobs(lut={next(iter(counts)): (16, 256)}))
        if why:
            print(f"\nD lut [{key}]: not available ({why})")
            continue
        off = ev.reference()
        k16 = Knobs(lut={l: (16, 256) for l in counts})
        r = ev.evaluate(k16)
        rows.append([key, "all layers K_w=16", f"{avg_bits(k16, counts):.2f}", pct(r.top1, 2), pts(r.top1 - off.top1),
                     pct(1 - r.energy_j / off.energy_j)])
        ladder = [Ladder("lut", tuple(counts), (None,) + tuple(LUT_CONFIGS))]
        t0 = time.time()
        # greedy on calibration (weight bytes saved per accuracy lost) until the weighted mean width is <= 4.5 bits
        traj = greedy_schedule(cal, Knobs(), ladder, cost="weight_bytes", max_loss=0.03,
                               until=lambda k: avg_bits(k, counts) <= 4.5,
                               log=print if ctx.verbose else None)
        pick = traj[-1]
        r = ev.evaluate(pick.knobs)
        widths = {l: v[0] for l, v in pick.knobs.lut}
        (ctx.out / f"lut_{key}.toml").write_text(pick.knobs.to_toml())
        rows.append([key, f"greedy mixed ({len(traj) - 1} steps, {time.time() - t0:.0f} s)",
                     f"{avg_bits(pick.knobs, counts):.2f}", pct(r.top1, 2), pts(r.top1 - off.top1),
                     pct(1 - r.energy_j / off.energy_j)])
        print(f"  {key} mixed widths: {widths}  (knobs: {ctx.out / f'lut_{key}.toml'}; reproduce: tunable eval "
              f"{MODELS[key][0]} --data {MODELS[key][1]} --calib {MODELS[key][2]} --profile {PROFILE} "
              f"--knobs {ctx.out / f'lut_{key}.toml'})")
        res[f"{key} mixed"] = {"avg_bits": avg_bits(pick.knobs, counts), "top1": r.top1, "delta": r.top1 - off.top1,
                               "widths": widths}
    ctx.results["lut"] = res
    if rows:
        table("D lut (K_a = 256: activations as they are; bits = weight-count-weighted mean of log2 K_w)",
              ["model", "setting", "mean bits", "top-1", "delta pt", "energy saved"], rows)


# ---------------------------------------------------------------------------------------------- E: time

def section_time(ctx: Ctx, keys: list[str]) -> None:
    """Conv wall time (the runtime's per-op clock, conv layers summed) under drowsy at 50 % per granularity and
    selection, for each kernel set this CPU runs. Random selection is timed twice: with the seed changing per
    inference (a new mask every time, as `tunable eval` and the paper do) and with one fixed seed (a mask that
    stays, so a kernel may keep work prepared for it); a new seed's own cost (set_seed, outside the per-op
    clock) is reported beside. conv MACs saved counts the input channels a conv skips where its producer
    dropped them (channel granularity), so it exceeds the drop rate there."""
    from tunable._tunable_c import ffi, lib
    key = "resnet8-mlperf"
    if key not in keys:
        return
    model, ev, cal = ctx.setup(key)
    n = 100 if ctx.quick else 300
    rounds = 3 if ctx.quick else 7
    idx = np.arange(min(n, len(ev)))
    fixed = Evaluator(model, ev.x[idx], ev.y[idx], profile=ctx.profile, per_input_seed=False)
    configs = [("off", Knobs(), ev)]
    for gran in ("channel", "row", "element"):
        for sel in ("random", "importance"):
            if gran == "element" and sel == "importance":
                continue
            k = Knobs(drowsy=0.5, drowsy_granularity=gran, drowsy_select=sel)
            if sel == "random":
                configs.append((f"drowsy 0.5 {gran} random, seed per inference", k, ev))
                configs.append((f"drowsy 0.5 {gran} random, fixed seed", k, fixed))
            else:
                configs.append((f"drowsy 0.5 {gran} importance", k, ev))
    for name, k in (("sign_exact", Knobs(sign_exact=True)), ("conv_preview 1/4", Knobs(conv_preview=0.25))):
        if try_knobs(model, k) is None:
            configs.append((name, k, ev))
        else:
            print(f"  E: {name} not available yet")
    isas = ["auto"] + [i for i in ("avx2", "generic") if lib.tn_force_isa(i.encode()) == 0]
    lib.tn_force_isa(b"auto")
    res = {}
    try:
        for isa in isas:
            lib.tn_force_isa(isa.encode())
            isa_name = ffi.string(lib.tn_isa()).decode()
            if isa != "auto" and isa_name == res.get("auto", {}).get("isa"):
                continue
            conv_t = {name: [] for name, _, _ in configs}
            lat_t = {name: [] for name, _, _ in configs}
            macs = {}
            for _ in range(rounds):   # interleaved rounds: load on the shared machine hits every config alike
                for name, k, e in configs:
                    r = e.evaluate(k, indices=idx if e is ev else None, agreement=False)
                    conv_t[name].append(r.conv_times_s if r.conv_times_s is not None else np.full(r.n, np.nan))
                    lat_t[name].append(r.latencies_s)
                    macs[name] = r.conv_macs_saved
            # the median over every inference of every round: robust to the preemptions of a shared machine
            med = {name: float(np.median(np.concatenate(v))) for name, v in conv_t.items()}
            lmed = {name: float(np.median(np.concatenate(v))) for name, v in lat_t.items()}
            # a new seed rebuilds what the kernels derive from the mask (packed subsets, skipped inputs, element
            # masks) outside the per-op clock: its cost per inference, timed apart
            seed_t = {}
            for name, k, e in configs:
                if "seed per inference" in name:
                    s = model.session()
                    s.set_knobs(k)
                    ts = []
                    for i in range(200):
                        t0 = time.perf_counter()
                        s.set_seed(k.seed + 1 + i)
                        ts.append(time.perf_counter() - t0)
                    seed_t[name] = float(np.median(ts))
            rows, rr = [], {"isa": isa_name}
            for name, _, _ in configs:
                cut = 1 - med[name] / med["off"]
                rows.append([name, pct(macs[name]), f"{med[name] * 1e6:8.1f}", pct(cut), f"{lmed[name] * 1e6:8.1f}",
                             pct(1 - lmed[name] / lmed["off"]),
                             f"{seed_t[name] * 1e6:8.1f}" if name in seed_t else ""])
                rr[name] = {"conv_time_s": med[name], "cut": cut, "latency_s": lmed[name],
                            "conv_macs_saved": macs[name], "set_seed_s": seed_t.get(name)}
            res[isa] = rr
            table(f"E wall time, {key}, one thread, kernels {isa_name} (runtime's per-op clock), median per "
                  f"inference over {rounds} interleaved rounds x {len(idx)} inferences",
                  ["setting", "conv MACs saved", "conv us", "conv time cut", "total us", "total cut",
                   "set_seed us"], rows)
    finally:
        lib.tn_force_isa(b"auto")
    ctx.results["time"] = res


# ---------------------------------------------------------------------------------------------- bars

def bars(ctx: Ctx) -> None:
    R = ctx.results
    lines = []

    def bar(text, ok, detail):
        lines.append([("PASS" if ok else "FAIL") if ok is not None else "n/a", text, detail])

    d = R.get("drowsy", {})
    if "resnet8-knob" in d:
        best = max(((v["saved_at_2pt"] or 0), f) for f, v in d["resnet8-knob"].items())
        bar("knob-trained ResNet-8 saves >= 50 % conv MACs for <= 2 pt", best[0] >= 0.5, f"{pct(best[0])} ({best[1]})")
    else:
        bar("knob-trained ResNet-8 saves >= 50 % conv MACs for <= 2 pt", None, "not measured (section A not run on "
            "resnet8-knob, or the model is missing)")
    if "resnet8-mlperf" in d:
        m = d["resnet8-mlperf"]
        for gran in ("row", "channel"):
            # the better schedule (uniform or greedy) of each selection: conv MACs saved within 2 points, and
            # top-1 at 5 % conv MACs saved on the curve
            best = {}
            for sel in ("importance", "random"):
                fams = [v for f, v in m.items() if f.startswith(f"drowsy/{gran}/{sel}/")]
                if fams:
                    best[sel] = (max((v["saved_at_2pt"] or 0) for v in fams),
                                 max((v["acc_at_5pct"] or 0) for v in fams))
            if len(best) == 2:
                (si, ai), (sr, ar) = best["importance"], best["random"]
                bar(f"MLPerf: importance beats random ({gran}): saved <= 2 pt; top-1 at 5 % saved",
                    si >= sr and ai > ar, f"{pct(si)} vs {pct(sr)}; {pct(ai)} vs {pct(ar)}")
    pv = R.get("preview", {}).get("resnet8-mlperf")
    sel = R.get("preview_calib", {}).get("resnet8-mlperf")
    bar("MLPerf ResNet-8: conv preview saves >= 25 % conv MACs at <= 1 pt", None if pv is None else pv >= 0.25,
        "not measured" if pv is None else f"{pct(pv)} (eval curve)" + (
            "" if sel is None else f"; calib-picked {pct(sel[0])} at {pct(sel[1])} eval top-1"))
    aip = R.get("aip", {})
    if aip:
        best = max(((v["saved"], k) for k, v in aip.items() if v["delta"] >= -0.01), default=(0, "-"))
        bar("LeNet-5 aip: >= 65 % FC weight bytes saved for <= 1 pt", best[0] >= 0.65, f"{pct(best[0])} ({best[1]})")
    else:
        bar("LeNet-5 aip: >= 65 % FC weight bytes saved for <= 1 pt", None, "not measured")
    lut = R.get("lut", {})
    v = lut.get("lenet5 K_w=8")
    bar("lut: LeNet-5 K_w=8 within 1 pt", None if v is None else v["delta"] >= -0.01,
        "not measured" if v is None else pts(v["delta"]) + " pt")
    v = lut.get("resnet8-mlperf mixed")
    bar("lut: ResNet-8 mixed <= 4.5 bits within 1 pt", None if v is None else (v["delta"] >= -0.01 and
                                                                              v["avg_bits"] <= 4.5),
        "not measured" if v is None else f"{v['avg_bits']:.2f} bits, {pts(v['delta'])} pt")
    for isa, t in R.get("time", {}).items():
        for name, v in t.items():
            if not name.startswith("drowsy 0.5"):
                continue
            ok = v["cut"] >= 0.4 if " channel " in name else None
            bar(f"{name} [{t['isa']}]: conv wall time cut" + (" >= 40 %" if ok is not None else " (reported)"),
                ok, pct(v["cut"]))
    # F: no numeric bar in the issue; the cross-layer claim (combining beats every knob alone) as measured
    for key, fs in R.get("fronts", {}).items():
        for lvl in ("0.3", "0.5"):
            comb = (fs.get("combined") or {}).get(lvl)
            singles = [(v[lvl]["accuracy"], k) for k, v in fs.items()
                       if k not in ("combined", "front (all points)") and v and v.get(lvl)]
            single = max(singles) if singles else None
            text = f"F [{key}] combined beats every knob alone at >= {round(100 * float(lvl))} % energy saved"
            if comb is None:
                bar(text, None if single is None else False,
                    "combined does not reach it" + ("" if single is None else
                                                    f"; best alone {pct(single[0])} ({single[1]})"))
            else:
                bar(text, True if single is None else comb["accuracy"] >= single[0],
                    f"{pct(comb['accuracy'])} vs " + ("no knob alone reaches it" if single is None
                                                      else f"{pct(single[0])} ({single[1]})"))
    table("Bars", ["", "claim", "measured"], lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="subsets and fewer families: a few minutes")
    ap.add_argument("--out", default=str(REPO / "out" / "knobs"), help="where JSON profiles and plots go")
    ap.add_argument("--only", default="A,C,D,E", help="sections: A (profiles: A, B, F), C, D, E")
    ap.add_argument("--models", default="resnet8-mlperf,resnet8-knob,lenet5")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--model", action="append", default=[], metavar="KEY=PATH",
                    help="use another file for a model key (e.g. a candidate lenet5=/tmp/lenet.tflite)")
    args = ap.parse_args()
    for item in args.model:
        key, _, path = item.partition("=")
        if key not in MODELS or not path:
            ap.error(f"--model {item!r}: expected KEY=PATH with KEY in {', '.join(MODELS)}")
        MODELS[key] = (Path(path),) + MODELS[key][1:]
    ctx = Ctx(args)
    only = set(args.only.upper().split(","))
    keys = [k for k in args.models.split(",") if k]
    for k in keys:
        if k not in MODELS:
            ap.error(f"unknown model {k!r} (known: {', '.join(MODELS)})")
    t0 = time.time()
    print(f"bench/knobs.py {'--quick ' if args.quick else ''}: energy profile {PROFILE} "
          f"({ctx.profile.label()}); output {ctx.out}")
    if "A" in only or "B" in only or "F" in only:
        section_profiles(ctx, keys)
    if "C" in only:
        section_aip(ctx, keys)
    if "D" in only:
        section_lut(ctx, keys)
    if "E" in only:
        section_time(ctx, keys)
    bars(ctx)
    summary = {k: v for k, v in ctx.results.items() if k != "profiles"}
    (ctx.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"\n{time.time() - t0:.0f} s; summary in {ctx.out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
