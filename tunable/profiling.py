"""Operating points of a model: knob sweeps, non-uniform per-layer schedules fitted on a calibration split,
the Pareto front, and the JSON file the governor reads.

How points are made (`profile_model`):
- uniform families: one global knob level applied to every layer it fits (drowsy rate p, aip fraction f,
  LUT width K_w, prune threshold, weight LSBs dropped, conv preview fraction, sign_exact);
- greedy families (non-uniform schedules): every layer has a ladder of values from off to most aggressive;
  starting from all off, each step raises the one (layer, knob) whose next value loses the least calibration
  accuracy per unit of cost saved (cost = modeled energy, or MACs), until the calibration loss exceeds
  `max_loss`. Lazy evaluation (CELF): a candidate's ratio is re-measured only when it reaches the top of the
  queue with a stale value. Every step is an operating point. Loss = drop in top-1 + beta x drop in the mean
  probability of the true class (the second term breaks the ties a finite calibration set leaves);
- the combined family is the same greedy over the ladders of every available knob at once (cross-layer).
Schedules are fitted on the calibration inputs only; the evaluation split only measures the points
(`accuracy`), and `calib_accuracy` records what the fit saw.

File format (JSON, version 1; stable: the governor reads it, see governor/points.py):

    {"format": "tunable-profile", "version": 1,
     "model": "pretrainedResnet_quant.tflite",         # model file (path as given)
     "dataset": "npz:.../test_first1000.npz",           # evaluation split (spec as given; n_eval images)
     "calibration": "npz:.../train_first4000.npz",      # calibration split (spec; null when none)
     "profile": "horowitz45",                           # energy profile name the energies are modeled with
     "profile_label": "profile horowitz45, not fitted on a device",
     "n_eval": 1000, "n_calib": 500,
     "baseline": "off",                                 # the all-off point
     "points": [{"name": "off", "knobs": {},            # Knobs.to_dict(): Knobs.from_dict(knobs) restores it
                 "accuracy": 0.878,                     # top-1 on the evaluation split, 0..1
                 "energy_j": 1.73e-05,                  # modeled joules per inference (> 0)
                 "macs": 12501632,                      # MACs executed per inference (mean, rounded)
                 "latency_s": 0.0015,                   # measured wall time of one inference (mean, > 0)
                 "weight_bytes": 77360,                 # weight bytes fetched per inference (mean, rounded)
                 # optional extras (readers must ignore unknown keys):
                 "family": "off", "top5": 0.99, "agreement": 1.0, "conv_macs": ..., "conv_macs_saved": 0.0,
                 "fc_weight_bytes": ..., "energy_saved": 0.0, "calib_accuracy": 0.9, "counters": {...}}, ...],
     "front": ["...", "off"],                           # Pareto front (min energy_j, max accuracy) by energy
     "unavailable": {"lut": "reason"},                  # families skipped, and why
     "created": "2025-01-01T00:00:00Z", "tunable_version": "0.1.0"}

`read_profile` accepts any file with these keys (extra keys are kept in ProfileData.meta / Point.extra).
"""
from __future__ import annotations

import heapq
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import TunableError
from .evaluate import CONV_OPS, FC_OPS, EvalResult, Evaluator, try_knobs
from .knobs import DROWSY_MAX, OFF, Knobs

__all__ = ["Point", "ProfileData", "ProfileFormatError", "pareto_front", "write_profile", "read_profile",
           "Ladder", "Step", "greedy_schedule", "schedule_knobs", "FamilySpec", "default_families",
           "parse_families", "profile_model", "point_from_result", "plot_profile", "FORMAT", "VERSION"]

FORMAT, VERSION = "tunable-profile", 1
REQUIRED = ("name", "knobs", "accuracy", "energy_j", "macs", "latency_s", "weight_bytes")


class ProfileFormatError(TunableError):
    """A profile JSON file that cannot be read; the message names the file and the field."""


# ---------------------------------------------------------------------------------------------- points

@dataclass
class Point:
    """One operating point: a knob setting and its measured accuracy and costs per inference."""
    name: str
    knobs: dict[str, Any]
    accuracy: float
    energy_j: float
    macs: int
    latency_s: float
    weight_bytes: int
    family: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def knobs_value(self) -> Knobs:
        return Knobs.from_dict(self.knobs)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "knobs": self.knobs, "accuracy": self.accuracy, "energy_j": self.energy_j,
             "macs": self.macs, "latency_s": self.latency_s, "weight_bytes": self.weight_bytes,
             "family": self.family}
        d.update(self.extra)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "point") -> "Point":
        if not isinstance(d, Mapping):
            raise ProfileFormatError(f"{where}: expected an object, got {type(d).__name__}")
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise ProfileFormatError(f"{where}: missing {', '.join(missing)}")
        name = d["name"]
        if not isinstance(name, str) or not name:
            raise ProfileFormatError(f"{where}.name: expected a non-empty string, got {name!r}")
        where = f"{where} ('{name}')"
        knobs = d["knobs"]
        if not isinstance(knobs, Mapping):
            raise ProfileFormatError(f"{where}.knobs: expected an object, got {type(knobs).__name__}")
        try:
            Knobs.from_dict(knobs)
        except TunableError as e:
            raise ProfileFormatError(f"{where}.knobs: {e}") from None
        nums = {}
        for k in ("accuracy", "energy_j", "latency_s", "macs", "weight_bytes"):
            v = d[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ProfileFormatError(f"{where}.{k}: expected a finite number, got {v!r}")
            nums[k] = v
        if not 0.0 <= nums["accuracy"] <= 1.0:
            raise ProfileFormatError(f"{where}.accuracy: must lie in 0..1, got {nums['accuracy']}")
        extra = {k: v for k, v in d.items() if k not in REQUIRED and k != "family"}
        return cls(name, dict(knobs), float(nums["accuracy"]), float(nums["energy_j"]), int(nums["macs"]),
                   float(nums["latency_s"]), int(nums["weight_bytes"]), str(d.get("family", "")), extra)


@dataclass
class ProfileData:
    model: str
    dataset: str
    calibration: str | None
    profile: str
    points: list[Point]
    front: list[str]
    meta: dict[str, Any] = field(default_factory=dict)

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(f"no point named '{name}'")

    @property
    def front_points(self) -> list[Point]:
        by = {p.name: p for p in self.points}
        return [by[n] for n in self.front]

    @property
    def baseline(self) -> Point | None:
        name = self.meta.get("baseline", "off")
        return next((p for p in self.points if p.name == name), None)

    def family(self, prefix: str) -> list[Point]:
        """Points whose family is `prefix` or starts with `prefix/`."""
        return [p for p in self.points if p.family == prefix or p.family.startswith(prefix + "/")]

    def to_dict(self) -> dict[str, Any]:
        d = {"format": FORMAT, "version": VERSION, "model": self.model, "dataset": self.dataset,
             "calibration": self.calibration, "profile": self.profile}
        d.update({k: v for k, v in self.meta.items() if k not in d and k not in ("points", "front")})
        d["points"] = [p.to_dict() for p in self.points]
        d["front"] = list(self.front)
        return d


def pareto_front(points: Sequence[Point]) -> list[str]:
    """Names of the points no other point beats (lower or equal energy_j with higher or equal accuracy, one
    strictly), sorted by energy_j ascending (accuracy then rises strictly along the front). Of several points
    with the same energy and accuracy, the first in `points` is kept."""
    order = sorted(range(len(points)), key=lambda i: (points[i].energy_j, -points[i].accuracy, i))
    front, best = [], -math.inf
    for i in order:
        if points[i].accuracy > best:
            front.append(points[i].name)
            best = points[i].accuracy
    return front


def _json_safe(v):
    if isinstance(v, dict):
        return {str(k): _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


def write_profile(data: ProfileData, path: str | os.PathLike) -> None:
    """Writes the profile JSON (atomically: a temporary file renamed over the target)."""
    p = Path(path)
    text = json.dumps(_json_safe(data.to_dict()), indent=1, allow_nan=False)
    tmp = p.with_name(p.name + f".{os.getpid()}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, p)


def read_profile(path: str | os.PathLike) -> ProfileData:
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise ProfileFormatError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ProfileFormatError(f"{p}: cannot read ({e})") from None
    except json.JSONDecodeError as e:
        raise ProfileFormatError(f"{p}: not JSON ({e})") from None
    if not isinstance(d, dict):
        raise ProfileFormatError(f"{p}: expected a JSON object")
    if d.get("format", FORMAT) != FORMAT or int(d.get("version", VERSION)) > VERSION:
        raise ProfileFormatError(f"{p}: format {d.get('format')!r} version {d.get('version')!r}; this reader "
                                 f"knows {FORMAT!r} up to version {VERSION}")
    for k in ("model", "points", "front"):
        if k not in d:
            raise ProfileFormatError(f"{p}: missing '{k}'")
    if not isinstance(d["points"], list) or not isinstance(d["front"], list):
        raise ProfileFormatError(f"{p}: 'points' and 'front' must be lists")
    pts = [Point.from_dict(x, f"{p.name}: points[{i}]") for i, x in enumerate(d["points"])]
    names = {x.name for x in pts}
    if len(names) != len(pts):
        raise ProfileFormatError(f"{p}: point names are not unique")
    for n in d["front"]:
        if n not in names:
            raise ProfileFormatError(f"{p}: front names '{n}', which is not a point")
    meta = {k: v for k, v in d.items() if k not in ("model", "dataset", "calibration", "profile", "points",
                                                     "front")}
    return ProfileData(str(d["model"]), str(d.get("dataset", "")), d.get("calibration"), str(d.get("profile", "")),
                       pts, [str(n) for n in d["front"]], meta)


def point_from_result(name: str, family: str, r: EvalResult, baseline: EvalResult | None = None,
                      calib: EvalResult | None = None, extra: Mapping[str, Any] | None = None) -> Point:
    ex: dict[str, Any] = {"top5": r.top5, "agreement": r.agreement, "conv_macs": round(r.conv_macs),
                          "conv_macs_saved": r.conv_macs_saved, "fc_weight_bytes": round(r.fc_weight_bytes),
                          "n": r.n}
    if baseline is not None and baseline.energy_j > 0:
        ex["energy_saved"] = 1.0 - r.energy_j / baseline.energy_j
        ex["macs_saved"] = 1.0 - r.macs / baseline.macs if baseline.macs else 0.0
        if baseline.fc_weight_bytes > 0:
            ex["fc_weight_bytes_saved"] = 1.0 - r.fc_weight_bytes / baseline.fc_weight_bytes
    if calib is not None:
        ex["calib_accuracy"] = calib.top1
        ex["calib_energy_j"] = calib.energy_j
    ex["counters"] = {k: round(v, 3) for k, v in r.totals.items()}
    if extra:
        ex.update(extra)
    # the governor requires energy and latency > 0; a point that costs nothing would be a measurement bug
    return Point(name, r.knobs.to_dict(), r.top1, max(r.energy_j, 1e-30), int(round(r.macs)),
                 max(r.latency_s, 1e-9), int(round(r.weight_bytes)), family, ex)


# ---------------------------------------------------------------------------------------------- schedules

@dataclass(frozen=True)
class Ladder:
    """Per-layer values of one knob, from off (steps[0]) to most aggressive."""
    knob: str
    layers: tuple[str, ...]
    steps: tuple

    def label(self, value) -> str:
        if isinstance(value, tuple):
            return "x".join(map(str, value))
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)


def schedule_knobs(base: Knobs, assign: Mapping[tuple[str, str], Any], ladders: Sequence[Ladder]) -> Knobs:
    """Knobs from per-(knob, layer) values: per-layer dicts, off values left out. `base` carries the global
    fields (drowsy granularity, selection, rescale, seed, aip_topm ...)."""
    off = {lad.knob: lad.steps[0] for lad in ladders}
    per: dict[str, dict[str, Any]] = {}
    for (knob, layer), v in assign.items():
        if v == off.get(knob):
            continue
        per.setdefault(knob, {})[layer] = v
    changes: dict[str, Any] = {}
    for knob, d in per.items():
        changes[knob] = {layer: d[layer] for layer in sorted(d)}
    k = base.replace(**changes) if changes else base
    return Knobs.from_dict(k.to_dict())   # normalised (frozen per-layer tuples), hashable


@dataclass
class Step:
    """One greedy step: the schedule after it, what it cost on the calibration inputs, what moved."""
    knobs: Knobs
    calib: EvalResult
    loss: float                      # calibration loss (0 = as good as off)
    cost: float                      # calibration cost (energy_j or macs)
    move: tuple[str, str, Any] | None = None   # (knob, layer, new value)
    evaluations: int = 0             # candidate evaluations so far


def _loss(r: EvalResult, ref: EvalResult, beta: float) -> float:
    return (ref.top1 - r.top1) + beta * (float(np.mean(ref.true_prob)) - float(np.mean(r.true_prob)))


COSTS = ("energy", "macs", "conv_macs", "weight_bytes")


def _cost(r: EvalResult, cost: str) -> float:
    if cost == "energy":
        return r.energy_j
    if cost == "macs":
        return r.macs
    if cost == "conv_macs":
        return r.conv_macs
    if cost == "weight_bytes":
        return r.weight_bytes
    raise ValueError(f"cost must be energy, macs, conv_macs or weight_bytes, not {cost!r}")


def greedy_schedule(cal: Evaluator, base: Knobs, ladders: Sequence[Ladder], *, indices=None,
                    cost: str = "energy", max_loss: float = 0.05, beta: float = 0.25, max_steps: int = 500,
                    lazy: bool = True, log: Callable[[str], None] | None = None,
                    until: Callable[[Knobs], bool] | None = None) -> list[Step]:
    """Greedy non-uniform schedule on the calibration evaluator `cal` (never the evaluation split).
    Returns the trajectory: step 0 (all ladders at off, `base` otherwise) then one Step per accepted move.
    A move is accepted when it lowers the cost; the one with the least loss added per unit of cost saved
    wins; the walk stops before a move whose loss would exceed `max_loss`, when no move saves anything, or
    once `until(knobs)` holds for the schedule reached."""
    ref = cal.evaluate(OFF, indices=indices, agreement=False)
    assign = {(lad.knob, layer): lad.steps[0] for lad in ladders for layer in lad.layers}
    pos = {key: 0 for key in assign}
    steps_of = {(lad.knob, layer): lad.steps for lad in ladders for layer in lad.layers}
    cur_k = schedule_knobs(base, assign, ladders)
    cur = cal.evaluate(cur_k, indices=indices, agreement=False)
    cur_loss, cur_cost = _loss(cur, ref, beta), _cost(cur, cost)
    n_eval = 1
    traj = [Step(cur_k, cur, cur_loss, cur_cost, None, n_eval)]

    def measure(key):
        nonlocal n_eval
        st = steps_of[key]
        if pos[key] + 1 >= len(st):
            return None
        trial = dict(assign)
        trial[key] = st[pos[key] + 1]
        k = schedule_knobs(base, trial, ladders)
        try:
            r = cal.evaluate(k, indices=indices, agreement=False)
        except TunableError:
            return None   # a combination the runtime refuses (e.g. two knobs that exclude each other)
        n_eval += 1
        saved = cur_cost - _cost(r, cost)
        if saved <= 1e-12 * max(1.0, abs(cur_cost)):
            return None   # saves nothing: never worth a step
        return ((_loss(r, ref, beta) - cur_loss) / saved, k, r)

    # heap of (ratio, tie, key, stamp, knobs, result); stamp = len(traj) when measured
    heap: list = []
    tie = 0
    for key in assign:
        m = measure(key)
        if m is not None:
            heapq.heappush(heap, (m[0], tie, key, len(traj), m[1], m[2]))
            tie += 1
    while heap and len(traj) <= max_steps:
        ratio, _, key, stamp, k, r = heapq.heappop(heap)
        if stamp != len(traj):   # stale: measured before the last move
            m = measure(key)
            if m is not None:
                heapq.heappush(heap, (m[0], tie, key, len(traj), m[1], m[2]))
                tie += 1
            continue
        new_loss = _loss(r, ref, beta)
        if new_loss > max_loss:
            break
        pos[key] += 1
        assign[key] = steps_of[key][pos[key]]
        cur_k, cur, cur_loss, cur_cost = k, r, new_loss, _cost(r, cost)
        traj.append(Step(cur_k, cur, cur_loss, cur_cost, (key[0], key[1], assign[key]), n_eval))
        if log:
            log(f"  step {len(traj) - 1}: {key[0]}.{key[1]} = {assign[key]}  calib top-1 {cur.top1:.3f}  "
                f"cost saved {1 - cur_cost / traj[0].cost if traj[0].cost else 0:.1%}  ({n_eval} evals)")
        if until is not None and until(cur_k):
            break
        if not lazy:   # re-measure every candidate at the new state
            heap = []
            for key2 in assign:
                m = measure(key2)
                if m is not None:
                    heapq.heappush(heap, (m[0], tie, key2, len(traj), m[1], m[2]))
                    tie += 1
        else:
            m = measure(key)   # the moved knob's next value, measured at the new state
            if m is not None:
                heapq.heappush(heap, (m[0], tie, key, len(traj), m[1], m[2]))
                tie += 1
    return traj


# ---------------------------------------------------------------------------------------------- families

DROWSY_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DROWSY_LADDER = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
AIP_LEVELS = (1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32)
AIP_LADDER = (1.0, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32)
LUT_LEVELS = (64, 32, 16, 8, 4)               # K_w (activations as they are: K_a = 256)
LUT_LADDER = (None, 64, 32, 16, 8, 4)          # None: off (int8 weights)
LUT_CONFIGS = [(kw, 256) for kw in LUT_LEVELS]  # the tables a profile compiles into the plan
PRUNE_LEVELS = (1, 2, 4, 8)
LSB_LEVELS = (1, 2, 3, 4)
PREVIEW_LEVELS = (1 / 2, 1 / 4, 1 / 8)
DROWSY_CONFIGS = (("element", "random"), ("row", "random"), ("row", "importance"), ("channel", "random"),
                  ("channel", "importance"))


@dataclass(frozen=True)
class FamilySpec:
    """One curve of the profile. kind: drowsy | aip | lut | prune | weight_lsb_drop | conv_preview |
    sign_exact | combined; schedule: uniform | greedy."""
    kind: str
    schedule: str = "uniform"
    granularity: str = "element"
    select: str = "random"
    rescale: bool = False
    cost: str | None = None     # greedy cost for this family (None: the profile's --cost)
    max_loss: float | None = None   # greedy stop for this family (None: the profile's --max-loss); e.g. a
                                    # combined walk carried on far enough to show the 50 %-saved point

    @property
    def name(self) -> str:
        parts = [self.kind]
        if self.kind == "drowsy":
            parts += [self.granularity, self.select] + (["rescale"] if self.rescale else [])
        if self.kind not in ("sign_exact", "combined"):
            parts.append(self.schedule)
        if self.cost:
            parts.append(f"cost={self.cost}")
        if self.max_loss is not None:
            parts.append(f"loss={self.max_loss:g}")
        return "/".join(parts)


def parse_families(text: str) -> list[FamilySpec]:
    """'drowsy/channel/importance/greedy,aip/uniform,combined' -> specs (also 'drowsy' = all five drowsy
    configurations, uniform and greedy; 'lut' = uniform and greedy; 'all' = default_families()). A greedy
    family may carry its own cost and stop: 'drowsy/row/greedy/cost=conv_macs', 'combined/loss=0.5' (the most
    calibration top-1 it may lose, a fraction in [0, 1])."""
    out: list[FamilySpec] = []
    for item in text.replace(" ", ",").split(","):
        item = item.strip().strip("/")
        if not item:
            continue
        if item == "all":
            out += default_families()
            continue
        parts = item.split("/")
        kind = parts[0]
        if kind not in ("drowsy", "aip", "lut", "prune", "weight_lsb_drop", "conv_preview", "sign_exact",
                        "combined"):
            raise TunableError(f"family {item!r}: unknown knob {kind!r} (drowsy, aip, lut, prune, "
                               f"weight_lsb_drop, conv_preview, sign_exact, combined)")
        scheds = [p for p in parts[1:] if p in ("uniform", "greedy")] or (
            ["uniform"] if kind in ("conv_preview", "sign_exact") else
            ["greedy"] if kind == "combined" else ["uniform", "greedy"])
        rescale = "rescale" in parts[1:]
        costs = [p.split("=", 1)[1] for p in parts[1:] if p.startswith("cost=")]
        if costs and costs[-1] not in COSTS:
            raise TunableError(f"family {item!r}: cost must be one of {', '.join(COSTS)}")
        cost = costs[-1] if costs else None
        losses = [p.split("=", 1)[1] for p in parts[1:] if p.startswith("loss=")]
        loss = None
        if losses:
            try:
                loss = float(losses[-1])
            except ValueError:
                loss = -1.0
            if not 0.0 <= loss <= 1.0:
                raise TunableError(f"family {item!r}: loss must be a fraction in [0, 1], not {losses[-1]!r}")
        parts = [p for p in parts if not p.startswith(("cost=", "loss="))]
        if kind == "drowsy":
            gran = [p for p in parts[1:] if p in ("element", "row", "channel")]
            sel = [p for p in parts[1:] if p in ("random", "importance")]
            bad = [p for p in parts[1:] if p not in ("element", "row", "channel", "random", "importance",
                                                    "uniform", "greedy", "rescale")]
            if bad:
                raise TunableError(f"family {item!r}: unknown part(s) {', '.join(bad)}")
            configs = [(g, s) for g, s in DROWSY_CONFIGS
                       if (not gran or g in gran) and (not sel or s in sel)]
            if not configs:
                raise TunableError(f"family {item!r}: importance selection needs row or channel granularity")
            out += [FamilySpec("drowsy", sc, g, s, rescale, cost if sc == "greedy" else None,
                               loss if sc == "greedy" else None)
                    for g, s in configs for sc in scheds]
        else:
            out += [FamilySpec(kind, sc, cost=cost if sc == "greedy" else None,
                               max_loss=loss if sc == "greedy" else None) for sc in scheds]
    seen, uniq = set(), []
    for f in out:
        if f.name not in seen:
            seen.add(f.name)
            uniq.append(f)
    return uniq


def default_families() -> list[FamilySpec]:
    fams = [FamilySpec("drowsy", sc, g, s) for g, s in DROWSY_CONFIGS for sc in ("uniform", "greedy")]
    fams += [FamilySpec("aip", "uniform"), FamilySpec("aip", "greedy"), FamilySpec("conv_preview", "uniform"),
             FamilySpec("sign_exact"), FamilySpec("lut", "uniform"), FamilySpec("lut", "greedy"),
             FamilySpec("prune", "uniform"), FamilySpec("prune", "greedy"), FamilySpec("weight_lsb_drop", "uniform"),
             FamilySpec("weight_lsb_drop", "greedy"), FamilySpec("combined")]
    return fams


def _drowsy_base(f: FamilySpec) -> Knobs:
    return Knobs(drowsy_granularity=f.granularity, drowsy_select=f.select, drowsy_rescale=f.rescale)


def _lut_value(kw):
    return None if kw is None else (int(kw), 256)


def _uniform_knobs(model, f: FamilySpec) -> list[tuple[str, Knobs]]:
    convs = [l.name for l in model.layers if l.op in CONV_OPS]
    weighted = [l.name for l in model.layers if l.op in CONV_OPS + FC_OPS]
    if f.kind == "drowsy":
        base = _drowsy_base(f)
        return [(f"{f.name}@{p:g}", base.replace(drowsy=p)) for p in DROWSY_LEVELS]
    if f.kind == "aip":
        return [(f"aip@1/{round(1 / a)}", Knobs(aip=a)) for a in AIP_LEVELS]
    if f.kind == "lut":
        return [(f"lut@{kw}", Knobs(lut={n: (kw, 256) for n in weighted})) for kw in LUT_LEVELS]
    if f.kind == "prune":
        return [(f"prune@{t}", Knobs(prune=t)) for t in PRUNE_LEVELS]
    if f.kind == "weight_lsb_drop":
        return [(f"weight_lsb_drop@{t}", Knobs(weight_lsb_drop=t)) for t in LSB_LEVELS]
    if f.kind == "conv_preview":
        return [(f"conv_preview@1/{round(1 / a)}", Knobs(conv_preview=a)) for a in PREVIEW_LEVELS]
    if f.kind == "sign_exact":
        return [("sign_exact", Knobs(sign_exact=True))]
    raise TunableError(f"family {f.name}: no uniform sweep")


def _usable(model, knob: str, layers: Sequence[str], value) -> tuple[str, ...]:
    """The layers on which the model accepts `knob` = `value` set for that layer alone (a knob may need
    artefacts or a layer shape that not every layer has)."""
    return tuple(l for l in layers if try_knobs(model, Knobs.from_dict({knob: {l: value}})) is None)


def _ladders(model, kind: str) -> list[Ladder]:
    lads = _ladders_all(model, kind)
    out = []
    for lad in lads:
        usable = _usable(model, lad.knob, lad.layers, lad.steps[-1])
        if usable:
            out.append(Ladder(lad.knob, usable, lad.steps))
    return out


def _ladders_all(model, kind: str) -> list[Ladder]:
    convs = tuple(l.name for l in model.layers if l.op in CONV_OPS)
    fcs = tuple(l.name for l in model.layers if l.op in FC_OPS)
    if kind == "drowsy":
        return [Ladder("drowsy", convs, DROWSY_LADDER)] if convs else []
    if kind == "aip":
        return [Ladder("aip", fcs, AIP_LADDER)] if fcs else []
    if kind == "lut":
        return [Ladder("lut", convs + fcs, tuple(_lut_value(k) for k in LUT_LADDER))] if convs + fcs else []
    if kind == "prune":
        return [Ladder("prune", convs + fcs, (0,) + PRUNE_LEVELS)] if convs + fcs else []
    if kind == "weight_lsb_drop":
        return [Ladder("weight_lsb_drop", convs + fcs, (0,) + LSB_LEVELS)] if convs + fcs else []
    convs2 = tuple(l.name for l in model.layers if l.op == "CONV_2D")
    if kind == "conv_preview":
        return [Ladder("conv_preview", convs2, (0.0,) + PREVIEW_LEVELS)] if convs2 else []
    if kind == "sign_exact":
        return [Ladder("sign_exact", convs2, (False, True))] if convs2 else []
    return []


def _probe_knobs(model, f: FamilySpec) -> Knobs | None:
    """A small setting of the family's knob, to ask the model whether it can run it; None if the model has
    no layer it applies to."""
    if f.kind in ("drowsy", "conv_preview", "sign_exact") and not any(l.op in CONV_OPS for l in model.layers):
        return None
    if f.kind == "aip" and not any(l.op in FC_OPS for l in model.layers):
        return None
    if f.kind == "combined":
        return OFF
    if f.kind == "lut":
        w = [l.name for l in model.layers if l.op in CONV_OPS + FC_OPS]
        return Knobs(lut={w[0]: (16, 256)}) if w else None
    return _uniform_knobs(model, f)[0][1]


# ---------------------------------------------------------------------------------------------- profiler

def _thin(traj: Sequence[Step], n: int) -> list[int]:
    """Indices of at most n steps, evenly spread over the trajectory, first and last kept."""
    if len(traj) <= n:
        return list(range(len(traj)))
    idx = np.unique(np.round(np.linspace(0, len(traj) - 1, n)).astype(int))
    return [int(i) for i in idx]


def profile_model(model, ev: Evaluator, cal: Evaluator | None, *, families: Sequence[FamilySpec] | None = None,
                  cost: str = "energy", max_loss: float = 0.05, beta: float = 0.25, calib_indices=None,
                  max_points: int = 12, combined_max_loss: float | None = None,
                  log: Callable[[str], None] | None = None, meta: Mapping[str, Any] | None = None,
                  progress: Callable[[str], None] | None = None) -> ProfileData:
    """Measures every family's points on `ev` (the evaluation split). Greedy families are fitted on `cal` (the
    calibration split; required for them), restricted to `calib_indices` when given. Returns ProfileData with
    the Pareto front; `meta` goes into the file (model/dataset/calibration names, counts)."""
    families = list(families if families is not None else default_families())
    say = log or (lambda s: None)
    meta = dict(meta or {})
    base_r = ev.reference()
    base_c = cal.evaluate(OFF, indices=calib_indices, agreement=False) if cal is not None else None
    points: list[Point] = [point_from_result("off", "off", base_r, base_r, base_c)]
    names = {"off"}
    unavailable: dict[str, str] = {}
    greedy_summary: dict[str, Any] = {}

    def add(name: str, family: str, knobs: Knobs, calib_r: EvalResult | None, extra=None) -> Point:
        r = ev.evaluate(knobs)
        c = calib_r
        if c is None and cal is not None:
            c = cal.evaluate(knobs, indices=calib_indices, agreement=False)
        base, i = name, 2
        while name in names:
            name, i = f"{base}#{i}", i + 1
        names.add(name)
        p = point_from_result(name, family, r, base_r, c, extra)
        points.append(p)
        say(f"  {name:44s} top-1 {r.top1:.3f}  energy saved {p.extra.get('energy_saved', 0):6.1%}  "
            f"conv MACs saved {r.conv_macs_saved:6.1%}")
        return p

    combined_ladders: list[tuple[Ladder, Knobs]] = []
    drowsy_best: tuple[float, FamilySpec] | None = None
    for f in families:
        if f.kind == "combined":
            continue
        probe = _probe_knobs(model, f)
        if probe is None:
            unavailable[f.name] = "no layer of this model takes this knob"
            continue
        why = try_knobs(model, probe)
        if why is not None:
            unavailable[f.name] = why
            say(f"{f.name}: unavailable ({why})")
            continue
        if progress:
            progress(f.name)
        say(f"{f.name}:")
        if f.schedule == "uniform" or f.kind == "sign_exact":
            for name, k in _uniform_knobs(model, f):
                add(name, f.name, k, None)
            continue
        if cal is None:
            unavailable[f.name] = "greedy schedules need calibration data (--calib)"
            continue
        base = _drowsy_base(f) if f.kind == "drowsy" else OFF
        ladders = _ladders(model, f.kind)
        traj = greedy_schedule(cal, base, ladders, indices=calib_indices, cost=f.cost or cost,
                               max_loss=f.max_loss if f.max_loss is not None else max_loss, beta=beta, log=say)
        saved_at = _saved_within(traj, 0.02)
        greedy_summary[f.name] = {"steps": len(traj) - 1, "evaluations": traj[-1].evaluations,
                                  "calib_cost_saved_at_2pt": saved_at,
                                  "schedule": traj[-1].knobs.to_dict()}
        if f.kind == "drowsy" and (drowsy_best is None or saved_at > drowsy_best[0]):
            drowsy_best = (saved_at, f)
        for i in _thin(traj, max_points)[1:]:
            st = traj[i]
            add(f"{f.name}@{i}", f.name, st.knobs, st.calib,
                {"step": i, "calib_loss": st.loss, "calib_cost_saved": 1 - st.cost / traj[0].cost})
    # combined: one greedy over every available knob's ladders
    comb = [f for f in families if f.kind == "combined"]
    if comb and cal is None:
        unavailable["combined"] = "the combined schedule needs calibration data (--calib)"
    elif comb:
        say("combined:")
        avail_kinds = []
        for kind in ("drowsy", "aip", "lut", "prune", "weight_lsb_drop", "conv_preview", "sign_exact"):
            spec = FamilySpec(kind, "greedy")
            if kind == "drowsy":
                spec = drowsy_best[1] if drowsy_best else FamilySpec("drowsy", "greedy", "channel",
                                                                     "importance")
            probe = _probe_knobs(model, spec)
            if probe is not None and try_knobs(model, probe) is None:
                avail_kinds.append((kind, spec))
        base = OFF
        ladders: list[Ladder] = []
        for kind, spec in avail_kinds:
            if kind == "drowsy":
                base = base.replace(drowsy_granularity=spec.granularity, drowsy_select=spec.select,
                                    drowsy_rescale=spec.rescale)
            ladders += _ladders(model, kind)
        if progress:
            progress("combined")
        comb_loss = (comb[0].max_loss if comb[0].max_loss is not None else
                     combined_max_loss if combined_max_loss is not None else max_loss)
        traj = greedy_schedule(cal, base, ladders, indices=calib_indices, cost=comb[0].cost or cost,
                               max_loss=comb_loss, beta=beta, log=say)
        greedy_summary["combined"] = {"knobs": [k for k, _ in avail_kinds], "max_loss": comb_loss,
                                      "steps": len(traj) - 1,
                                      "evaluations": traj[-1].evaluations, "schedule": traj[-1].knobs.to_dict()}
        for i in _thin(traj, max_points)[1:]:
            st = traj[i]
            add(f"combined@{i}", "combined", st.knobs, st.calib,
                {"step": i, "calib_loss": st.loss, "calib_cost_saved": 1 - st.cost / traj[0].cost})
    meta.setdefault("profile_label", ev.profile.label())
    meta.update({"n_eval": len(ev), "n_calib": (len(calib_indices) if calib_indices is not None else len(cal))
                 if cal is not None else 0, "baseline": "off", "cost": cost, "max_loss": max_loss, "beta": beta,
                 "unavailable": unavailable, "greedy": greedy_summary,
                 "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    try:
        from . import __version__
        meta["tunable_version"] = __version__
    except ImportError:
        pass
    return ProfileData(meta.pop("model", str(model.source)), meta.pop("dataset", ""), meta.pop("calibration", None),
                       ev.profile.name, points, pareto_front(points), meta)


def _saved_within(traj: Sequence[Step], loss: float) -> float:
    """Largest calibration cost saving of a step that lost at most `loss` of calibration top-1."""
    c0, a0 = traj[0].cost, traj[0].calib.top1
    best = 0.0
    for st in traj:
        if a0 - st.calib.top1 <= loss + 1e-12 and c0:
            best = max(best, 1 - st.cost / c0)
    return best


# ---------------------------------------------------------------------------------------------- plot

def plot_profile(data: ProfileData, path: str | os.PathLike, *, x: str = "energy") -> None:
    """Accuracy against modeled energy (or 'macs'): one curve per family and the Pareto front. Needs
    matplotlib (the `plot` extra); raises TunableError saying so when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise TunableError("plotting needs matplotlib: pip install matplotlib (or pip install 'tunable[plot]')"
                           ) from None
    base = data.baseline
    fig, ax = plt.subplots(figsize=(11, 6))
    fams: dict[str, list[Point]] = {}
    for p in data.points:
        if p.family != "off":
            fams.setdefault(p.family, []).append(p)

    def xv(p: Point) -> float:
        if x == "macs":
            return p.macs / base.macs if base and base.macs else p.macs
        return p.energy_j / base.energy_j if base and base.energy_j else p.energy_j

    colors = plt.get_cmap("tab20").colors
    for i, (fam, pts) in enumerate(sorted(fams.items())):
        pts = sorted(pts, key=xv)
        # greedy (non-uniform) schedules dashed, uniform levels solid; the combined schedule thicker
        style = "--" if "/greedy" in fam else "-"
        ax.plot([xv(p) for p in pts], [100 * p.accuracy for p in pts], style, marker="o", ms=3,
                lw=2 if fam == "combined" else 1, label=fam, alpha=0.85, color=colors[i % len(colors)])
    fr = data.front_points
    ax.plot([xv(p) for p in fr], [100 * p.accuracy for p in fr], "k-", lw=2.2, label="Pareto front", zorder=5)
    if base:
        ax.plot([xv(base)], [100 * base.accuracy], "k*", ms=12, label="off", zorder=6)
    unit = "modeled energy" if x == "energy" else "MACs"
    ax.set_xlabel(f"{unit} per inference, relative to knobs off" + (f" ({data.profile})" if x == "energy" else ""))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{Path(data.model).name} on {Path(str(data.dataset).split(':', 1)[-1]).name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
