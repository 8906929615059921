"""Operating points: one knob setting with its accuracy and its predicted costs per inference.

A profile (the JSON that `tunable profile` writes) lists every measured point and names its Pareto front:

    {"model": "lenet5.tflite",
     "points": [{"name": "off", "knobs": {}, "accuracy": 0.990, "energy_j": 0.012, "latency_s": 0.0021,
                 "macs": 416520}, ...],
     "front": ["off", "drowsy-0.2", ...]}

The governor chooses among the front only. Knob settings are opaque mappings here: the governor never looks
inside them, it hands the chosen point's `knobs` to whoever applies them (Session.set_knobs).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from tunable.errors import TunableError


class ProfileError(TunableError, ValueError):
    """A profile file or a point description that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class OperatingPoint:
    """One knob setting and what it costs per inference.

    accuracy: top-1 in 0..1 measured on labeled data, or None when unknown (a front built without a profile
    orders its points by how aggressive their knobs are instead). energy_j: modeled energy per inference in
    joules. latency_s: measured (or expected) latency per inference. macs: executed multiply-accumulates.
    """
    name: str
    knobs: Mapping[str, Any] = field(default_factory=dict, hash=False)
    accuracy: float | None = None
    energy_j: float = 0.0
    latency_s: float = 0.0
    macs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "knobs": dict(self.knobs), "accuracy": self.accuracy,
                "energy_j": self.energy_j, "latency_s": self.latency_s, "macs": self.macs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "point") -> "OperatingPoint":
        """Validates one point description; errors name `where` (e.g. 'profile.json: points[3]')."""
        if not isinstance(d, Mapping):
            raise ProfileError(f"{where}: expected an object with name, knobs, accuracy, energy_j, latency_s, "
                               f"got {type(d).__name__}")
        name = d.get("name")
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{where}.name: expected a non-empty string, got {name!r}")
        where = f"{where} ('{name}')"
        knobs = d.get("knobs", {})
        if knobs is None:
            knobs = {}
        if not isinstance(knobs, Mapping):
            raise ProfileError(f"{where}.knobs: expected an object (a knob setting), got {type(knobs).__name__}")
        acc = d.get("accuracy")
        if acc is not None:
            acc = _number(acc, f"{where}.accuracy")
            if not 0.0 <= acc <= 1.0:
                raise ProfileError(f"{where}.accuracy: must lie in 0..1 (a fraction, not a percentage), "
                                   f"got {acc}")
        energy = _number(d.get("energy_j"), f"{where}.energy_j")
        latency = _number(d.get("latency_s"), f"{where}.latency_s")
        for key, v in (("energy_j", energy), ("latency_s", latency)):
            if v <= 0:
                raise ProfileError(f"{where}.{key}: must be > 0, got {v}")
        macs = d.get("macs")
        if macs is not None and (isinstance(macs, bool) or not isinstance(macs, int) or macs < 0):
            raise ProfileError(f"{where}.macs: expected a non-negative integer, got {macs!r}")
        # extra fields (measured energy, counters, ...) belong to the profile; the governor ignores them
        return cls(name, dict(knobs), acc, energy, latency, macs)


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ProfileError(f"{where}: expected a finite number, got {v!r}")
    return float(v)


@dataclass
class Profile:
    model: str
    points: list[OperatingPoint]
    front: list[OperatingPoint]   # sorted by energy, cheapest first
    source: str = "<profile>"

    def point(self, name: str) -> OperatingPoint:
        for p in self.points:
            if p.name == name:
                return p
        raise ProfileError(f"{self.source}: no operating point named '{name}' "
                           f"(points: {', '.join(p.name for p in self.points)})")


def load_profile(path: str | os.PathLike) -> Profile:
    """Reads a profile JSON file. The front is taken as written when it names points, else computed."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise ProfileError(f"{path}: cannot read profile ({e.strerror or e})") from None
    except json.JSONDecodeError as e:
        raise ProfileError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    return profile_from_dict(data, path)


def profile_from_dict(data: Any, source: str = "<profile>") -> Profile:
    if not isinstance(data, Mapping):
        raise ProfileError(f"{source}: expected a JSON object with 'points', got {type(data).__name__}")
    raw = data.get("points")
    if not isinstance(raw, list) or not raw:
        raise ProfileError(f"{source}: 'points' must be a non-empty list of operating points")
    points = [OperatingPoint.from_dict(d, f"{source}: points[{i}]") for i, d in enumerate(raw)]
    by_name: dict[str, OperatingPoint] = {}
    for i, p in enumerate(points):
        if p.name in by_name:
            raise ProfileError(f"{source}: points[{i}]: duplicate point name '{p.name}'")
        by_name[p.name] = p
    names = data.get("front")
    if names is None:
        front = pareto_front(points)
    else:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or not names:
            raise ProfileError(f"{source}: 'front' must be a non-empty list of point names")
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ProfileError(f"{source}: 'front' names unknown point(s): {', '.join(missing)}")
        front = sorted((by_name[n] for n in dict.fromkeys(names)), key=lambda p: (p.energy_j, p.latency_s))
    model = data.get("model", "")
    return Profile(str(model) if model is not None else "", points, front, source)


def _dominates(a: OperatingPoint, b: OperatingPoint, costs: tuple[str, ...]) -> bool:
    """a is at least as accurate and at least as cheap in every cost as b, and strictly better in one."""
    acc_a = a.accuracy if a.accuracy is not None else -1.0
    acc_b = b.accuracy if b.accuracy is not None else -1.0
    ca = [getattr(a, c) for c in costs]
    cb = [getattr(b, c) for c in costs]
    if acc_a < acc_b or any(x > y for x, y in zip(ca, cb)):
        return False
    return acc_a > acc_b or any(x < y for x, y in zip(ca, cb))


def pareto_front(points: Iterable[OperatingPoint],
                 costs: tuple[str, ...] = ("energy_j", "latency_s")) -> list[OperatingPoint]:
    """The points no other point dominates in (accuracy, *costs), sorted cheapest energy first.

    With two costs a point may stay on the front because it is faster though not cheaper; the controller
    narrows the front to the costs its budgets constrain (`pareto_front(points, ("energy_j",))`)."""
    pts = list(points)
    if any(p.accuracy is None for p in pts):
        raise ProfileError("pareto_front needs every point's accuracy; use default_front for points without "
                           "measured accuracy")
    front = [p for p in pts if not any(_dominates(q, p, costs) for q in pts if q is not p)]
    return sorted(front, key=lambda p: (p.energy_j, p.latency_s, p.name))


def default_front(points: Iterable[OperatingPoint | Mapping[str, Any]]) -> list[OperatingPoint]:
    """A front for `tunable run` when there is no profile.

    `points` are knob settings with modeled costs, ordered from the most accurate (normally every knob off)
    to the most aggressive. Points whose accuracy is known form a real Pareto front. Without measured
    accuracy, the given order stands for accuracy (each later setting is assumed no more accurate than the
    one before), so a point is kept only when it is cheaper in energy than every point before it: a more
    aggressive setting that saves nothing is never worth its accuracy loss. Returned cheapest first."""
    pts = [p if isinstance(p, OperatingPoint) else OperatingPoint.from_dict(p, f"points[{i}]")
           for i, p in enumerate(points)]
    if not pts:
        raise ProfileError("default_front: no operating points given")
    if all(p.accuracy is not None for p in pts):
        return pareto_front(pts, ("energy_j",))
    kept: list[OperatingPoint] = []
    cheapest = math.inf
    for p in pts:
        if p.energy_j < cheapest:
            kept.append(p)
            cheapest = p.energy_j
    return kept[::-1]
