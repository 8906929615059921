"""Single-thread latency of this engine against its peers, and latency against knob level, in one run.

    python bench/peers.py                      # the four MLPerf Tiny models and the bundled one, all tables
    python bench/peers.py --models resnet8 --rounds 5 --window 0.2
    python bench/peers.py --no-knobs           # the peer table only
    python bench/peers.py --json out.json
    python bench/peers.py --no-peers --no-knobs --threads 1,2   # the threads option (not pinned)

Table 1: per-inference latency of tunable (the kernel variant the CPU gets, 1 thread) and its ratio to LiteRT
builtin (ruy, no delegate), LiteRT default (XNNPACK) and TFLite Micro. Tables 2-3: latency against knob level
for drowsy (element, row and channel granularity, random selection) and aip, normalised to knobs off, for the
whole inference and for the layers the knob acts on (the sum of the C runtime's per-op wall times); lut
(look-up tables on every conv, depthwise and FC layer, from a plan compiled with their artefacts) against
that plan with knobs off, with a plain note where a knob is slower than off.

How: the process is pinned to one core; every engine runs the same random input. The machine is shared and
noisy, so the engines (or knob settings) are interleaved: each round measures every one of them for a window
of calls (median call time), and the result is the median over rounds. Compare ratios from one run only.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

# numpy's OpenBLAS threads spin beside the measured thread on a small machine: keep them off
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import tunable  # noqa: E402
from tunable.benchmark import pin_to_one_core, window_median  # noqa: E402
from tunable.knobs import Knobs  # noqa: E402
from tunable.paths import shared_dir  # noqa: E402

MLPERF = {"resnet8": "pretrainedResnet_quant.tflite", "vww": "vww_96_int8.tflite", "kws": "kws_ref_model.tflite",
          "ad01": "ad01_int8.tflite"}
PEERS = {"litert-builtin": "LiteRT builtin (ruy)", "litert-default": "LiteRT default (XNNPACK)",
         "tflm": "TFLite Micro"}
DROWSY_LEVELS = (0.1, 0.25, 0.5, 0.75)
AIP_LEVELS = (1 / 2, 1 / 4, 1 / 8, 1 / 16)
LUT_CONFIGS = ((4, 256), (16, 256))  # (K_w, K_a) on every conv, depthwise and FC layer
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")


def model_paths(names: list[str] | None) -> dict[str, Path]:
    out = {}
    base = shared_dir() / "models" / "mlperf-tiny"
    for name, fn in MLPERF.items():
        if names is None or name in names:
            if not (base / fn).exists():
                raise SystemExit(f"{base / fn}: missing (set TUNABLE_SHARED to the shared folder)")
            out[name] = base / fn
    if names is None or "bundled" in names:
        from tunable.models import ModelNotFoundError, default_model, locate
        try:
            path, _ = locate(default_model())
            out["bundled:" + path.stem] = path
        except ModelNotFoundError as e:
            print(f"note: no bundled model ({e})", file=sys.stderr)
    return out


def random_input(info, seed: int = 0) -> np.ndarray:
    ii = np.iinfo(info.dtype)
    return np.random.default_rng(seed).integers(ii.min, ii.max + 1, size=info.shape).astype(info.dtype)


class TunableRunner:
    """A session with its input set, timing whole inferences and the sum of chosen layers' C wall times."""

    def __init__(self, model, x: np.ndarray, threads: int = 1, knobs: Knobs | None = None):
        try:
            self.s = model.session(threads=threads)
        except TypeError:  # a session without the threads option
            if threads != 1:
                raise
            self.s = model.session()
        self.s.set_input(x)
        if knobs is not None:
            self.s.set_knobs(knobs)
        self.invoke = self.s.invoke

    def window(self, window_s: float, layers: list[int]) -> tuple[float, float]:
        """(median inference time, median time of `layers`) over a window of calls"""
        lib, s = self.s._lib, self.s._s
        tot, part = [], []
        end = time.perf_counter() + window_s
        while True:
            t0 = time.perf_counter()
            self.invoke()
            t1 = time.perf_counter()
            ns = lib.tn_session_op_ns(s)
            tot.append(t1 - t0)
            part.append(sum(ns[i] for i in layers) * 1e-9)
            if t1 >= end:
                return statistics.median(tot), statistics.median(part)


def peer_table(paths: dict[str, Path], rounds: int, window_s: float, peers: list[str]) -> list[dict]:
    from tunable.peers import Peer, PeerUnavailable
    rows = []
    for name, path in paths.items():
        m = tunable.load(path)
        x = random_input(m.inputs[0])
        runners = {"tunable": TunableRunner(m, x).invoke}
        notes = {}
        for kind in peers:
            try:
                p = Peer(kind, path, threads=1)
                p.run(x)
                runners[kind] = p.invoke
            except (PeerUnavailable, RuntimeError, ValueError) as e:
                notes[kind] = str(e)
        for fn in runners.values():
            for _ in range(5):
                fn()
        samples: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(rounds):
            for k, fn in runners.items():
                samples[k].append(window_median(fn, window_s))
        med = {k: statistics.median(v) for k, v in samples.items()}
        row = {"model": name, "macs": m.macs, "latency_s": med, "notes": notes,
               "ratio": {k: med["tunable"] / med[k] for k in med if k != "tunable"}}
        rows.append(row)
        print(format_peer_row(row, peers), flush=True)
    return rows


def format_peer_header(peers: list[str]) -> str:
    cols = ["model (MACs)", "tunable µs"] + [f"{PEERS[p]} µs (ratio)" for p in peers]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols)


def format_peer_row(row: dict, peers: list[str]) -> str:
    lat = row["latency_s"]
    cells = [f"{row['model']} ({row['macs'] / 1e6:.2f} M)", f"{lat['tunable'] * 1e6:,.1f}"]
    for p in peers:
        cells.append(f"{lat[p] * 1e6:,.1f} ({row['ratio'][p]:.2f})" if p in lat else "n/a")
    return "| " + " | ".join(cells) + " |"


def knob_curves(paths: dict[str, Path], rounds: int, window_s: float) -> list[dict]:
    """Latency against knob level, normalised to knobs off, settings interleaved per round."""
    out = []
    for name, path in paths.items():
        m = tunable.load(path)
        x = random_input(m.inputs[0])
        conv = [i for i, layer in enumerate(m.layers) if layer.op in CONV_OPS]
        fc = [i for i, layer in enumerate(m.layers) if layer.op == "FULLY_CONNECTED"]
        settings: dict[str, tuple[Knobs, list[int]]] = {"off": (Knobs(), conv + fc)}
        if conv:
            for gran in ("element", "row", "channel"):
                for p in DROWSY_LEVELS:
                    settings[f"drowsy {gran} {p:g}"] = (Knobs(drowsy=p, drowsy_granularity=gran), conv)
        if fc:
            for f in AIP_LEVELS:
                settings[f"aip {f:g}"] = (Knobs(aip=f), fc)
        runners = {}
        for k, (kn, _) in settings.items():
            runners[k] = TunableRunner(m, x, knobs=kn)
        # look-up tables need their artefacts in the plan: a second plan of the same model, its own "off"
        from tunable.compiler import CompileOptions
        mlut = tunable.load(path, compile_options=CompileOptions(lut=list(LUT_CONFIGS)))
        approx = [i for i, layer in enumerate(mlut.layers) if layer.op in CONV_OPS + ("FULLY_CONNECTED",)]
        settings["lut plan, off"] = (Knobs(), approx)
        runners["lut plan, off"] = TunableRunner(mlut, x)
        for kw, ka in LUT_CONFIGS:
            kn = Knobs(lut={mlut.layers[i].name: (kw, ka) for i in approx})
            settings[f"lut {kw}x{ka}"] = (kn, approx)
            runners[f"lut {kw}x{ka}"] = TunableRunner(mlut, x, knobs=kn)
        for r in runners.values():
            for _ in range(5):
                r.invoke()
        tot: dict[str, list[float]] = {k: [] for k in settings}
        part: dict[str, list[float]] = {k: [] for k in settings}
        off_conv, off_fc = [], []
        for _ in range(rounds):
            for k, r in runners.items():
                layers = settings[k][1]
                if k == "off":
                    t, _p = r.window(window_s, conv)
                    t2, pf = r.window(window_s, fc)
                    off_conv.append(_p)
                    off_fc.append(pf)
                    tot[k].append(min(t, t2))
                else:
                    t, p = r.window(window_s, layers)
                    tot[k].append(t)
                    part[k].append(p)
        off_t = statistics.median(tot["off"])
        base = {"conv": statistics.median(off_conv) if conv else 0.0, "fc": statistics.median(off_fc) if fc else 0.0}
        lut_off_t = statistics.median(tot["lut plan, off"])
        lut_off_p = statistics.median(part["lut plan, off"])
        rows = []
        for k, (kn, layers) in settings.items():
            if k in ("off", "lut plan, off"):
                continue
            lut = k.startswith("lut")
            t = statistics.median(tot[k])
            pt = statistics.median(part[k])
            b = lut_off_p if lut else base["conv"] if layers is conv else base["fc"]
            mm = mlut if lut else m
            s = mm.session()
            s.set_knobs(kn)
            s.run(x)
            macs = sum(s.stats.layers[i].counters["macs"] for i in layers)
            looks = sum(s.stats.layers[i].counters["lut_lookups"] for i in layers)
            s.set_knobs(Knobs())
            s.run(x)
            macs0 = sum(s.stats.layers[i].counters["macs"] for i in layers)
            rows.append({"setting": k, "latency": t / (lut_off_t if lut else off_t), "layers": pt / b if b else float("nan"),
                         "macs": (macs + looks) / macs0 if macs0 else float("nan"), "layers_us": pt * 1e6})
        out.append({"model": name, "off_latency_s": off_t, "off_conv_s": base["conv"], "off_fc_s": base["fc"],
                    "rows": rows})
        print(format_knob_block(out[-1]), flush=True)
    return out


def format_knob_block(b: dict) -> str:
    lines = [f"\n{b['model']}: knobs off {b['off_latency_s'] * 1e6:,.1f} µs per inference "
             f"(conv+depthwise {b['off_conv_s'] * 1e6:,.1f} µs, FC {b['off_fc_s'] * 1e6:,.1f} µs)",
             "| setting | latency / off | knob's layers: time / off | MACs (+ look-ups) / off | layers µs | |",
             "|---|---|---|---|---|---|"]
    for r in b["rows"]:
        verdict = "slower than off" if r["layers"] > 1.02 else "no gain" if r["layers"] > 0.98 else ""
        lines.append(f"| {r['setting']} | {r['latency']:.3f} | {r['layers']:.3f} | {r['macs']:.3f} | "
                     f"{r['layers_us']:,.1f} | {verdict} |")
    return "\n".join(lines)


def threads_table(paths: dict[str, Path], rounds: int, window_s: float, counts: list[int]) -> list[dict]:
    """Latency with worker threads (the threads session option) relative to one thread, interleaved."""
    out = []
    print("\n| model | " + " | ".join(f"{n} threads µs (/ 1)" for n in counts) + " |\n|---|" + "---|" * len(counts))
    for name, path in paths.items():
        m = tunable.load(path)
        x = random_input(m.inputs[0])
        runners = {n: TunableRunner(m, x, threads=n).invoke for n in counts}
        for fn in runners.values():
            for _ in range(5):
                fn()
        samples = {n: [] for n in counts}
        for _ in range(rounds):
            for n, fn in runners.items():
                samples[n].append(window_median(fn, window_s))
        med = {n: statistics.median(v) for n, v in samples.items()}
        out.append({"model": name, "latency_s": med})
        print(f"| {name} | " + " | ".join(f"{med[n] * 1e6:,.1f} ({med[n] / med[counts[0]]:.2f})" for n in counts) + " |",
              flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help=f"comma-separated subset of {', '.join(MLPERF)}, bundled")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds (median over them)")
    ap.add_argument("--window", type=float, default=0.25, help="seconds of calls per engine per round")
    ap.add_argument("--peers", default=",".join(PEERS), help="subset of " + ", ".join(PEERS))
    ap.add_argument("--no-knobs", action="store_true", help="skip the knob curves")
    ap.add_argument("--no-peers", action="store_true", help="skip the peer table")
    ap.add_argument("--threads", default="", help="also a table of latency with these thread counts, e.g. 1,2")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    counts = [int(n) for n in a.threads.split(",") if n]
    try:
        all_cpus = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        all_cpus = None
    cpu = pin_to_one_core()  # single-thread sections; the threads table runs on every allowed CPU
    from tunable._tunable_c import ffi, lib
    isa = ffi.string(lib.tn_isa()).decode()
    print(f"tunable kernel variant: {isa}; pinned to CPU {cpu}; {a.rounds} rounds x {a.window} s per engine",
          flush=True)
    paths = model_paths(a.models.split(",") if a.models else None)
    peers = [p for p in a.peers.split(",") if p]
    result = {"isa": isa, "cpu": cpu}
    if not a.no_peers:
        print("\n" + format_peer_header(peers), flush=True)
        result["peers"] = peer_table(paths, a.rounds, a.window, peers)
        bad = [r["model"] for r in result["peers"] if r["ratio"].get("litert-builtin", 0) > 1.0]
        print("\ntarget (ratio to LiteRT builtin <= 1.0): " + ("met on every model" if not bad else
                                                                "NOT met on " + ", ".join(bad)))
    if not a.no_knobs:
        result["knobs"] = knob_curves(paths, a.rounds, a.window)
    if counts:
        if all_cpus is not None:
            os.sched_setaffinity(0, all_cpus)
        result["threads"] = threads_table(paths, a.rounds, a.window, counts)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
