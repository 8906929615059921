"""Units: the one place where energy, power and time quantities are parsed, converted and formatted.

Values inside the library are always SI floats (joules, watts, seconds); names say the unit
(`gross_joules`, `idle_watts`, `window_s`). Sysfs and tools speak in µJ, µW, mW, µWh, µAh, mV, mA: the
factors below convert them, and nothing else in the project should write such a factor again.

    >>> parse_energy("50mJ"), parse_power("2W"), parse_time("30ms")
    (0.05, 2.0, 0.03)
"""
from __future__ import annotations

import math
import re

from .errors import TunableError

PICO = 1e-12
NANO = 1e-9
MICRO = 1e-6
MILLI = 1e-3
KILO = 1e3
SECONDS_PER_HOUR = 3600.0


class UnitError(TunableError, ValueError):
    """A quantity that cannot be read: no unit, the wrong kind of unit, negative, not a number."""


def watt_hours_to_joules(wh: float) -> float:
    return wh * SECONDS_PER_HOUR


def joules_to_watt_hours(j: float) -> float:
    return j / SECONDS_PER_HOUR


_MICRO_SIGNS = ("u", "\u00b5", "\u03bc")  # ASCII u, MICRO SIGN, GREEK SMALL LETTER MU
_PREFIX = {"p": PICO, "n": NANO, **{m: MICRO for m in _MICRO_SIGNS}, "m": MILLI, "": 1.0, "k": KILO}

# unit symbol -> (dimension, factor to SI)
_UNITS: dict[str, tuple[str, float]] = {}
for _p, _f in _PREFIX.items():
    _UNITS[f"{_p}J"] = ("energy", _f)
    _UNITS[f"{_p}W"] = ("power", _f)
for _p in ("", "m", "k"):
    _UNITS[f"{_p}Wh"] = ("energy", _PREFIX[_p] * SECONDS_PER_HOUR)
for _p in ("p", "n", *_MICRO_SIGNS, "m", ""):
    _UNITS[f"{_p}s"] = ("time", _PREFIX[_p])
_UNITS.update({"min": ("time", 60.0), "h": ("time", SECONDS_PER_HOUR)})

_EXAMPLES = {"energy": "50mJ, 1.2J, 300uJ, 2Wh", "power": "2W, 500mW, 1.5kW", "time": "30ms, 2s, 500us, 5min"}
_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$")


def parse_quantity(text: str) -> tuple[float, str]:
    """'50mJ' -> (0.05, 'energy'). Returns the SI value and its dimension (energy, power or time)."""
    if not isinstance(text, str):
        raise UnitError(f"expected a quantity with a unit such as '50mJ', got {text!r}")
    m = _NUMBER.fullmatch(text)
    if not m:
        raise UnitError(f"'{text}' is not a number with a unit (examples: 50mJ, 2W, 30ms)")
    number, unit = m.group(1), m.group(2)
    value = float(number)
    if not unit:
        raise UnitError(f"'{text}' has no unit; write it with one, e.g. {number}mJ, {number}W or {number}ms")
    if "/" in unit:
        num, _, den = unit.partition("/")
        if _UNITS.get(num, ("",))[0] == "energy" and _UNITS.get(den, ("",))[0] == "time":
            hint = f" ({number}{num}/s is {number}{num[:-1]}W)" if den == "s" else ""
            raise UnitError(f"'{text}' is energy per time, i.e. a power, not an energy: write powers in "
                            f"watts{hint}")
        raise UnitError(f"'{text}': compound unit '{unit}' is not accepted; use J, W or s with a prefix")
    if unit not in _UNITS:
        raise UnitError(f"'{text}': unknown unit '{unit}' (energy: J, mJ, uJ, Wh; power: W, mW, uW; "
                        "time: s, ms, us, min, h)")
    if not math.isfinite(value):
        raise UnitError(f"'{text}' is not a finite number")
    if value < 0:
        raise UnitError(f"'{text}' is negative; energy, power and time quantities must be >= 0")
    dim, factor = _UNITS[unit]
    return value * factor, dim


def _parse(text: str, want: str) -> float:
    value, dim = parse_quantity(text)
    if dim != want:
        article = {"energy": "an energy", "power": "a power", "time": "a time"}
        raise UnitError(f"'{text}' is {article[dim]}, expected {article[want]} (e.g. {_EXAMPLES[want]})")
    return value


def parse_energy(text: str) -> float:
    """Joules from '50mJ', '1.5 J', '300uJ', '300µJ', '2Wh'. Rejects missing units, powers, negatives."""
    return _parse(text, "energy")


def parse_power(text: str) -> float:
    """Watts from '2W', '500mW', '1.5kW'."""
    return _parse(text, "power")


def parse_time(text: str) -> float:
    """Seconds from '30ms', '2s', '500us', '5min', '1h'."""
    return _parse(text, "time")


_SCALES = [(1.0, ""), (MILLI, "m"), (MICRO, "\u00b5"), (NANO, "n"), (PICO, "p")]


def _format(value: float, unit: str, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return f"{value} {unit}"
    if value == 0:
        return f"0 {unit}"
    mag = abs(value)
    if mag >= KILO:
        return f"{value / KILO:.{digits}g} k{unit}"
    for factor, prefix in _SCALES:
        if mag >= factor * 0.9995:  # 0.9995 mJ prints as 1 mJ, not 1e+03 µJ
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value / PICO:.{digits}g} p{unit}"


def format_energy(joules: float, digits: int = 3) -> str:
    """0.0123 -> '12.3 mJ'."""
    return _format(joules, "J", digits)


def format_power(watts: float, digits: int = 3) -> str:
    return _format(watts, "W", digits)


def format_time(seconds: float, digits: int = 3) -> str:
    if seconds is not None and math.isfinite(seconds) and abs(seconds) >= 120:
        return f"{seconds / 60:.{digits}g} min"
    return _format(seconds, "s", digits)
