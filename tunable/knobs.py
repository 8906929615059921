"""The power knobs as a value type: validated, hashable, JSON/TOML round-trippable, compactly printed.

A Knobs value names what to approximate; Session.set_knobs turns it into per-layer runtime state. Every
knob at its default is off, and all-off output is bit-identical to the plain engine. Semantics:
../shared/docs/knobs.md. Layer names (conv_1, dw_2, fc_3, ...) are those `tunable inspect` shows.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from typing import Any, Mapping

from .errors import KnobError

GRANULARITIES = ("element", "row", "channel")
SELECTIONS = ("random", "importance")
DROWSY_MAX = 0.95
CONV_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
FC_OPS = ("FULLY_CONNECTED",)

# knob name -> (kind of layers it applies to, whether it may be given per layer)
PER_LAYER = {"drowsy": CONV_OPS, "aip": FC_OPS, "conv_preview": ("CONV_2D",), "sign_exact": ("CONV_2D",),
             "lut": CONV_OPS + FC_OPS, "prune": CONV_OPS + FC_OPS, "weight_lsb_drop": CONV_OPS + FC_OPS}


def _freeze(v):
    """dicts become sorted tuples of pairs so that Knobs values hash and compare."""
    if isinstance(v, Mapping):
        return tuple(sorted((str(k), _freeze(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    return v


@dataclass(frozen=True)
class Knobs:
    drowsy: float | tuple = 0.0           # conv-output drop rate: global level, or {layer: rate, "*": rest}
    drowsy_granularity: str = "element"   # element | row | channel
    drowsy_select: str = "random"         # random (hash of seed, layer, unit) | importance (calibration ranks)
    drowsy_rescale: bool = False          # multiply kept outputs by 1 / (1 - p)
    seed: int = 0
    aip: float | tuple = 1.0              # FC preview fraction f in (0, 1]; 1 = off
    aip_topm: int = 0                     # classifier rows completed exactly; 0 = max(10, 4 * top_n)
    aip_margin: int = 0                   # relu-skip rows whose estimated output is at least this many
                                          # quantization steps below the ReLU clamp (negative: more skipped)
    conv_preview: float | tuple = 0.0     # sign preview of CONV+ReLU (and CONV->ADD+ReLU where the plan links the
                                          # residual): first check after this fraction of the reduction, then at
                                          # every later tabulated prefix; 0 = off
    sign_exact: bool | tuple = False      # sign-ordered early termination (exact), on the same convs
    lut: tuple = ()                       # {layer: (K_w, K_a)}: multiplication-free look-up tables
    prune: int | tuple = 0                # |w| <= threshold read as zero (int8 units)
    weight_lsb_drop: int | tuple = 0      # low bits of every weight read as zero

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (Mapping, list)):
                object.__setattr__(self, f.name, _freeze(v))
        if self.drowsy_granularity not in GRANULARITIES:
            raise KnobError(f"drowsy_granularity must be one of {', '.join(GRANULARITIES)}, "
                            f"not {self.drowsy_granularity!r}")
        if self.drowsy_select not in SELECTIONS:
            raise KnobError(f"drowsy_select must be one of {', '.join(SELECTIONS)}, not {self.drowsy_select!r}")
        if self.drowsy_select == "importance" and self.drowsy_granularity == "element":
            raise KnobError("drowsy_select='importance' ranks rows or channels: use drowsy_granularity='row' "
                            "or 'channel'")
        for name, lo, hi in (("drowsy", 0.0, DROWSY_MAX), ("conv_preview", 0.0, 1.0)):
            for layer, v in self._items(name):
                if not (isinstance(v, (int, float)) and lo <= v <= hi):
                    raise KnobError(f"{name}{_at(layer)} = {v!r}: must be a number in [{lo}, {hi}]")
        for layer, v in self._items("aip"):
            if not (isinstance(v, (int, float)) and 0.0 < v <= 1.0):
                raise KnobError(f"aip{_at(layer)} = {v!r}: must be a fraction in (0, 1] (1 = off)")
        for name, hi in (("prune", 127), ("weight_lsb_drop", 7)):
            for layer, v in self._items(name):
                if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= hi):
                    raise KnobError(f"{name}{_at(layer)} = {v!r}: must be an integer in [0, {hi}]")
        for layer, v in self._items("sign_exact"):
            if not isinstance(v, bool):
                raise KnobError(f"sign_exact{_at(layer)} = {v!r}: must be true or false")
        if not isinstance(self.lut, tuple):
            raise KnobError("lut must map layer names to (K_w, K_a)")
        for layer, v in self.lut:
            if not (isinstance(v, tuple) and len(v) == 2 and all(isinstance(k, int) for k in v)
                    and 2 <= v[0] <= 256 and 2 <= v[1] <= 256):
                raise KnobError(f"lut[{layer}] = {v!r}: must be (K_w, K_a) with 2 <= K <= 256")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**64):
            raise KnobError(f"seed = {self.seed!r}: must be an integer in [0, 2^64)")
        if not (isinstance(self.aip_topm, int) and self.aip_topm >= 0):
            raise KnobError(f"aip_topm = {self.aip_topm!r}: must be a non-negative integer")
        if not (isinstance(self.aip_margin, int) and not isinstance(self.aip_margin, bool)
                and -255 <= self.aip_margin <= 255):
            raise KnobError(f"aip_margin = {self.aip_margin!r}: must be an integer in [-255, 255]")

    def _items(self, name: str):
        v = getattr(self, name)
        return list(v) if isinstance(v, tuple) else [(None, v)]

    # ---- per-layer resolution ----
    def layer_value(self, name: str, layer: str, default=None):
        """The value of knob `name` for `layer`: its per-layer entry, else the "*" entry (the level for the
        other layers), else the global value, else off."""
        v = getattr(self, name)
        if isinstance(v, tuple) and (not v or isinstance(v[0], tuple)):
            d = dict(v)
            return d.get(layer, d.get("*", default if default is not None else _OFF[name]))
        return v

    def check_layers(self, layers: Mapping[str, str]) -> None:
        """Raises KnobError for a per-layer knob that names an unknown layer or one of the wrong kind.
        layers maps layer name -> op name."""
        for name, kinds in PER_LAYER.items():
            v = getattr(self, name)
            if not (isinstance(v, tuple) and v and isinstance(v[0], tuple)):
                continue
            for layer, _ in v:
                if layer == "*":
                    continue
                if layer not in layers:
                    raise KnobError(f"{name}: no layer named '{layer}' (layers: {', '.join(layers)})")
                if layers[layer] not in kinds:
                    raise KnobError(f"{name}: layer '{layer}' is {layers[layer]}; {name} applies to "
                                    f"{' and '.join(kinds)}")

    @property
    def is_off(self) -> bool:
        return self.active() == {}

    def active(self) -> dict[str, Any]:
        """The fields that differ from their defaults."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def replace(self, **changes) -> "Knobs":
        return replace(self, **changes)

    # ---- text forms ----
    def to_dict(self) -> dict[str, Any]:
        out = {}
        for k, v in self.active().items():
            if isinstance(v, tuple) and v and isinstance(v[0], tuple):
                v = {layer: (list(x) if isinstance(x, tuple) else x) for layer, x in v}
            out[k] = v
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Knobs":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise KnobError(f"unknown knob(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(names))})")
        kw = {}
        for k, v in d.items():
            if k == "lut" and isinstance(v, Mapping):
                v = {layer: tuple(x) for layer, x in v.items()}
            kw[k] = v
        return cls(**kw)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Knobs":
        return cls.from_dict(json.loads(text))

    def to_toml(self) -> str:
        lines, tables = [], []
        for k, v in self.to_dict().items():
            if isinstance(v, dict):
                tables.append(f"[{k}]\n" + "\n".join(f"{_toml_key(layer)} = {_toml(x)}" for layer, x in v.items()))
            else:
                lines.append(f"{k} = {_toml(v)}")
        return "\n".join(lines + ([""] if tables and lines else []) + tables) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> "Knobs":
        import tomllib
        try:
            return cls.from_dict(tomllib.loads(text))
        except tomllib.TOMLDecodeError as e:
            raise KnobError(f"knobs TOML: {e}") from None

    @classmethod
    def parse(cls, text: str) -> "Knobs":
        """The command-line form: `drowsy=0.3 aip=1/16 drowsy.conv_3=0.5 lut.conv_2=16x64 sign_exact=true`
        (separated by spaces or commas)."""
        d: dict[str, Any] = {}
        for item in text.replace(",", " ").split():
            if "=" not in item:
                raise KnobError(f"knob '{item}': expected NAME=VALUE")
            key, val = item.split("=", 1)
            name, _, layer = key.partition(".")
            value = _parse_value(name, val)
            prev = d.get(name)
            if layer:  # a per-layer value keeps a global one given before or after as the "*" level
                if not isinstance(prev, dict):
                    d[name] = {} if prev is None else {"*": prev}
                d[name][layer] = value
            elif isinstance(prev, dict):
                prev["*"] = value
            else:
                d[name] = value
        return cls.from_dict(d)

    def __str__(self) -> str:
        parts = []
        for k, v in self.active().items():
            if isinstance(v, tuple) and v and isinstance(v[0], tuple):
                parts += [f"{k}.{layer}={_short(x)}" for layer, x in v]
            else:
                parts.append(f"{k}={_short(v)}")
        return " ".join(parts) if parts else "off"


_OFF = {"drowsy": 0.0, "aip": 1.0, "conv_preview": 0.0, "sign_exact": False, "lut": None, "prune": 0,
        "weight_lsb_drop": 0}


def _at(layer) -> str:
    return f"[{layer}]" if layer else ""


def _toml_key(k: str) -> str:
    return k if k and all(ch.isalnum() or ch in "_-" for ch in k) else json.dumps(k)


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def _short(v) -> str:
    if isinstance(v, tuple):
        return "x".join(str(x) for x in v)
    if isinstance(v, float):
        fr = Fraction(v).limit_denominator(64)
        if len(f"{v:g}") > 6 and abs(float(fr) - v) < 1e-12:  # 1/3 rather than 0.333333
            return f"{fr.numerator}/{fr.denominator}"
        return f"{v:g}"
    return str(v).lower() if isinstance(v, bool) else str(v)


def _parse_value(name: str, val: str):
    low = val.lower()
    if low in ("true", "on", "yes"):
        return True
    if low in ("false", "off", "no"):
        return False
    if name == "lut":
        try:
            kw, ka = low.split("x")
            return (int(kw), int(ka))
        except ValueError:
            raise KnobError(f"lut value '{val}': expected K_wxK_a, e.g. 16x64") from None
    if name in ("drowsy_granularity", "drowsy_select"):
        return val
    try:
        if "/" in val:
            return float(Fraction(val))
        f = float(val)
        return int(f) if name in ("seed", "aip_topm", "aip_margin", "prune", "weight_lsb_drop") and f.is_integer() else f
    except (ValueError, ZeroDivisionError):
        raise KnobError(f"knob {name}: '{val}' is not a number") from None


OFF = Knobs()
