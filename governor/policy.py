"""Power policies in TOML: named modes, rules that pick a mode from battery and temperature, budgets.

    version = 1
    default_mode = "balanced"
    hold = "10s"                        # at least this long between two rule-driven mode changes
    [hysteresis]                        # defaults for rules without an explicit release
    battery = 5                         # percentage points
    thermal = 5                         # degrees C
    [budgets]                           # named budget sets, usable by name in modes
    saver = ["20mJ", "1W"]
    [modes.max]                         # a fixed knob setting (like an nvpmodel mode)
    knobs = {}
    [modes.balanced]                    # governed: the most accurate point within the budgets
    budget = "50mJ"
    [modes.eco]
    budget = "saver"
    goal = { battery = "BAT0", hours = 8 }
    threads = 1
    cpufreq_max = "60%"
    [[rules]]                           # the first active rule, in file order, decides
    when = "battery < 20% and discharging"
    release = "battery > 25%"           # optional; else the hysteresis above
    mode = "eco"
    [[rules]]
    when = "thermal > 80C"              # hottest zone; or thermal_zone0 / thermal:cpu-thermal
    mode = "eco"
    force = true                        # also overrides a manual `tunable mode set`

Errors name the file, the line and the key: `policy.toml:14: modes.eco.budget: '50 mJ/s' is energy per
time, i.e. a power ...`. TOML syntax errors carry tomllib's line and column.
"""
from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from tunable.errors import TunableError
from tunable.units import UnitError, parse_time

from .budgets import Budget, BudgetError, parse_budget

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
    import tomli as tomllib

STATUSES = {"charging": ("charging",), "discharging": ("discharging",), "full": ("full",),
            "on_battery": ("discharging",), "on_ac": ("charging", "full", "not charging")}


class PolicyError(TunableError, ValueError):
    """One or more problems in a policy file; each is (line, key, message)."""

    def __init__(self, source: str, problems: list[tuple[int, str, str]]):
        self.source = source
        self.problems = sorted(problems, key=lambda p: p[0])
        super().__init__("\n".join(f"{source}:{line}: {key + ': ' if key else ''}{msg}"
                                   for line, key, msg in self.problems))


# ---- conditions -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SystemState:
    """What rules look at: a battery report (tunable.energy.BatteryState or None) and zone temperatures."""
    battery: Any = None
    temps: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Atom:
    var: str            # 'battery', 'thermal' (hottest zone), or a zone ('thermal_zone0', 'cpu-thermal')
    op: str             # '<', '<=', '>', '>=', or 'status' / 'not status'
    value: Any          # float threshold, or a tuple of status names
    text: str

    def reading(self, st: SystemState) -> float | str | None:
        if self.var == "battery":
            return getattr(st.battery, "capacity_percent", None) if st.battery is not None else None
        if self.var == "status":
            return (st.battery.status or "").lower() if st.battery is not None else None
        if self.var == "thermal":
            return max(st.temps.values()) if st.temps else None
        return st.temps.get(self.var)

    def holds(self, st: SystemState) -> bool:
        x = self.reading(st)
        if x is None:
            return False  # no battery / no such zone: the condition cannot be true
        if self.op == "status":
            return x in self.value
        if self.op == "not status":
            return x not in self.value
        return _compare(x, self.op, self.value)

    def released(self, st: SystemState, hysteresis: float) -> bool:
        """Past the threshold by the hysteresis, in the releasing direction (statuses: simply not holding)."""
        x = self.reading(st)
        if x is None:
            return True
        if self.op in ("status", "not status"):
            return not self.holds(st)
        if self.op in ("<", "<="):
            return x >= self.value + hysteresis
        return x <= self.value - hysteresis


def _compare(x: float, op: str, v: float) -> bool:
    return {"<": x < v, "<=": x <= v, ">": x > v, ">=": x >= v}[op]


@dataclass(frozen=True)
class Condition:
    atoms: tuple[Atom, ...]
    text: str

    def holds(self, st: SystemState) -> bool:
        return all(a.holds(st) for a in self.atoms)


_CMP = re.compile(r"^\s*(battery|thermal(?:_zone\d+)?|thermal:[\w.-]+)\s*(<=|>=|<|>)\s*"
                  r"(-?\d+(?:\.\d*)?)\s*(%|°?C)?\s*$", re.IGNORECASE)


def parse_condition(text: str) -> Condition:
    """'battery < 20% and discharging' -> Condition. Raises ValueError with what is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("expected a condition such as \"battery < 20%\", \"charging\" or \"thermal > 80C\"")
    atoms = []
    for part in re.split(r"\s+and\s+", text.strip()):
        atoms.append(_parse_atom(part.strip()))
    return Condition(tuple(atoms), text.strip())


def _parse_atom(s: str) -> Atom:
    low = s.lower()
    neg = low.startswith("not ")
    word = low[4:].strip() if neg else low
    if word in STATUSES:
        return Atom("status", "not status" if neg else "status", STATUSES[word], s)
    m = _CMP.match(s)
    if not m:
        raise ValueError(f"cannot read '{s}': expected battery < N%, thermal > N C (or thermal_zoneN, "
                         f"thermal:TYPE), or one of {', '.join(sorted(STATUSES))} (optionally 'not ...'), "
                         "joined by 'and'")
    var, op, num, unit = m.group(1).lower(), m.group(2), float(m.group(3)), (m.group(4) or "")
    if var == "battery":
        if unit and unit != "%":
            raise ValueError(f"'{s}': battery levels are in %, e.g. battery < 20%")
        if not 0 <= num <= 100:
            raise ValueError(f"'{s}': a battery level lies in 0..100 %")
    else:
        if unit == "%":
            raise ValueError(f"'{s}': temperatures are in degrees C, e.g. thermal > 80C")
        if not -40 <= num <= 150:
            raise ValueError(f"'{s}': {num:g} C is not a plausible temperature threshold (-40..150)")
        if var.startswith("thermal:"):
            var = var.split(":", 1)[1]
    return Atom(var, op, num, s)


# ---- the policy -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Goal:
    battery: str
    hours: float | None = None
    until: str | None = None


@dataclass(frozen=True)
class Mode:
    name: str
    description: str = ""
    knobs: Mapping[str, Any] | None = field(default=None, hash=False)   # a fixed knob setting
    point: str | None = None                 # a fixed operating point of the profile, by name
    budgets: tuple[Budget, ...] = ()         # governed: the controller chooses under these
    goal: Goal | None = None                 # governed: a battery-life goal
    threads: int | None = None
    cpufreq_max: str | int | None = None
    line: int = 0

    @property
    def governed(self) -> bool:
        return self.knobs is None and self.point is None

    def describe(self) -> str:
        if self.knobs is not None:
            what = "fixed knobs " + (", ".join(f"{k}={v}" for k, v in self.knobs.items()) or "off (plain engine)")
        elif self.point is not None:
            what = f"fixed point '{self.point}'"
        else:
            parts = [b.text for b in self.budgets]
            if self.goal:
                parts.append(f"battery {self.goal.battery} " +
                             (f"for {self.goal.hours:g} h" if self.goal.hours else f"until {self.goal.until}"))
            what = "governed: " + (", ".join(parts) or "no budget (most accurate point)")
        extra = [f"threads={self.threads}"] if self.threads else []
        if self.cpufreq_max is not None:
            extra.append(f"cpufreq_max={self.cpufreq_max}")
        return what + (f" [{', '.join(extra)}]" if extra else "")


@dataclass(frozen=True)
class Rule:
    index: int
    when: Condition
    release: Condition | None
    mode: str
    force: bool = False
    line: int = 0


@dataclass
class Policy:
    source: str
    modes: dict[str, Mode]
    rules: list[Rule]
    default_mode: str
    hold_s: float = 10.0
    battery_hysteresis: float = 5.0
    thermal_hysteresis: float = 5.0
    warnings: list[str] = field(default_factory=list)

    def mode(self, name: str) -> Mode:
        if name not in self.modes:
            raise PolicyError(self.source, [(0, "", f"no mode '{name}' (modes: {', '.join(self.modes)})")])
        return self.modes[name]

    def hysteresis(self, atom: Atom) -> float:
        return self.battery_hysteresis if atom.var == "battery" else self.thermal_hysteresis


def load_policy(path: str | os.PathLike) -> Policy:
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except OSError as e:
        raise PolicyError(path, [(0, "", f"cannot read policy file ({e.strerror or e})")]) from None
    except UnicodeDecodeError as e:
        raise PolicyError(path, [(1, "", f"not UTF-8 text ({e.reason})")]) from None
    return parse_policy(text, path)


_TOP = {"version", "default_mode", "hold", "hysteresis", "budgets", "modes", "rules"}
_MODE = {"description", "knobs", "point", "budget", "goal", "threads", "cpufreq_max"}
_RULE = {"when", "release", "mode", "force"}
_GOAL = {"battery", "hours", "until"}


def parse_policy(text: str, source: str = "<policy>") -> Policy:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)", str(e))
        msg = str(e).replace(m.group(0), "") if m else str(e)
        line, col = (int(m.group(1)), f"column {m.group(2)}: ") if m else (0, "")
        raise PolicyError(source, [(line, "", f"{col}TOML syntax error: {msg}")]) from None
    return _Validator(text, source, data).run()


class _Validator:
    """Checks the parsed TOML, collecting every problem with its line."""

    def __init__(self, text: str, source: str, data: dict):
        self.lines = _key_lines(text)
        self.source = source
        self.data = data
        self.problems: list[tuple[int, str, str]] = []
        self.warnings: list[str] = []

    def err(self, path: tuple, msg: str) -> None:
        self.problems.append((self.line(path), _dotted(path), msg))

    def line(self, path: tuple) -> int:
        for n in range(len(path), 0, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def unknown(self, table: Mapping, known: set, path: tuple, what: str) -> None:
        for k in table:
            if k not in known:
                close = difflib.get_close_matches(k, sorted(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(known))})"
                self.err(path + (k,), f"unknown key in {what}{hint}")

    def run(self) -> Policy:
        d = self.data
        self.unknown(d, _TOP, (), "the policy")
        version = d.get("version", 1)
        if version != 1:
            self.err(("version",), f"unsupported policy version {version!r}; this tunable reads version 1")
        hold = 10.0
        if "hold" in d:
            hold = self.time(d["hold"], ("hold",), 10.0)
        hyst = d.get("hysteresis", {})
        bat_h = th_h = 5.0
        if not isinstance(hyst, dict):
            self.err(("hysteresis",), "expected a table: [hysteresis] battery = 5, thermal = 5")
        else:
            self.unknown(hyst, {"battery", "thermal"}, ("hysteresis",), "[hysteresis]")
            bat_h = self.number(hyst.get("battery", 5.0), ("hysteresis", "battery"), 0, 50, 5.0)
            th_h = self.number(hyst.get("thermal", 5.0), ("hysteresis", "thermal"), 0, 50, 5.0)
        named = self.named_budgets(d.get("budgets", {}))
        modes = self.modes(d.get("modes"), named)
        rules = self.rules(d.get("rules", []), modes, bat_h, th_h)
        default = d.get("default_mode")
        if default is None:
            default = next(iter(modes), "")
            if len(modes) > 1:
                self.warnings.append(f"no default_mode: using the first mode, '{default}'")
        elif not isinstance(default, str) or default not in modes:
            self.err(("default_mode",), f"{default!r} is not one of the modes ({', '.join(modes) or 'none'})")
        if self.problems:
            raise PolicyError(self.source, self.problems)
        return Policy(self.source, modes, rules, default, hold, bat_h, th_h, self.warnings)

    # -- pieces --
    def time(self, v: Any, path: tuple, fallback: float) -> float:
        if not isinstance(v, str):
            self.err(path, f"expected a time such as \"10s\", got {v!r}")
            return fallback
        try:
            return parse_time(v)
        except UnitError as e:
            self.err(path, str(e))
            return fallback

    def number(self, v: Any, path: tuple, lo: float, hi: float, fallback: float) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            self.err(path, f"expected a number in {lo:g}..{hi:g}, got {v!r}")
            return fallback
        return float(v)

    def budget_list(self, v: Any, path: tuple, named: dict[str, tuple[Budget, ...]] | None) -> tuple[Budget, ...]:
        items = [v] if isinstance(v, str) else v
        if not isinstance(items, list) or not items or not all(isinstance(x, str) for x in items):
            self.err(path, f"expected a budget (\"50mJ\", \"30ms\", \"2W\") or a list of them, got {v!r}")
            return ()
        out: list[Budget] = []
        for x in items:
            if named is not None and x in named:
                out.extend(named[x])
                continue
            try:
                out.append(parse_budget(x))
            except BudgetError as e:
                hint = ""
                if named is not None and re.fullmatch(r"[A-Za-z_][\w-]*", x.strip()):
                    hint = f" (and no [budgets] entry is named '{x}')"
                self.err(path, f"{e}{hint}")
        kinds = [b.kind for b in out]
        for k in set(kinds):
            if kinds.count(k) > 1:
                self.err(path, f"two {k} budgets: give one")
        return tuple(out)

    def named_budgets(self, v: Any) -> dict[str, tuple[Budget, ...]]:
        if not isinstance(v, dict):
            self.err(("budgets",), "expected a table of named budgets: [budgets] saver = [\"20mJ\", \"1W\"]")
            return {}
        return {name: self.budget_list(b, ("budgets", name), None) for name, b in v.items()}

    def modes(self, v: Any, named: dict) -> dict[str, Mode]:
        if v is None:
            self.err(("modes",), "a policy needs at least one mode: [modes.NAME] with knobs, point or budget")
            return {}
        if not isinstance(v, dict) or not v:
            self.err(("modes",), "expected tables [modes.NAME]")
            return {}
        out = {}
        for name, m in v.items():
            path = ("modes", name)
            if not isinstance(m, dict):
                self.err(path, "expected a table: [modes.NAME] with knobs, point or budget")
                continue
            if name == "auto":
                self.err(path, "'auto' is reserved (`tunable mode set auto` returns to the policy's rules)")
            self.unknown(m, _MODE, path, f"mode '{name}'")
            desc = m.get("description", "")
            if not isinstance(desc, str):
                self.err(path + ("description",), "expected a string")
                desc = ""
            knobs = m.get("knobs")
            if knobs is not None and not isinstance(knobs, dict):
                self.err(path + ("knobs",), "expected a table of knob settings, e.g. knobs = { drowsy = 0.3 }")
                knobs = None
            point = m.get("point")
            if point is not None and (not isinstance(point, str) or not point):
                self.err(path + ("point",), "expected the name of an operating point of the profile")
                point = None
            budgets = self.budget_list(m["budget"], path + ("budget",), named) if "budget" in m else ()
            goal = self.goal(m["goal"], path + ("goal",)) if "goal" in m else None
            kinds = [k for k, present in (("knobs", "knobs" in m), ("point", "point" in m),
                                           ("budget/goal", "budget" in m or "goal" in m)) if present]
            if len(kinds) != 1:
                self.err(path, ("set one of knobs (a fixed setting), point (a profile point) or budget/goal "
                                "(the governor chooses)") + (f"; found {' and '.join(kinds)}" if kinds else ""))
            threads = m.get("threads")
            if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
                self.err(path + ("threads",), f"expected a whole number >= 1, got {threads!r}")
                threads = None
            cpufreq = m.get("cpufreq_max")
            if cpufreq is not None:
                from .system import parse_frequency
                try:
                    parse_frequency(cpufreq, 1, 1)
                except TunableError as e:
                    self.err(path + ("cpufreq_max",), str(e))
                    cpufreq = None
            out[name] = Mode(name, desc, knobs, point, budgets, goal, threads, cpufreq, self.line(path))
        return out

    def goal(self, v: Any, path: tuple) -> Goal | None:
        if not isinstance(v, dict):
            self.err(path, "expected a table: goal = { battery = \"BAT0\", hours = 8 } (or until = \"18:30\")")
            return None
        self.unknown(v, _GOAL, path, "goal")
        bat = v.get("battery")
        if not isinstance(bat, str) or not bat:
            self.err(path + ("battery",), "expected the battery's name, e.g. \"BAT0\"")
            return None
        hours, until = v.get("hours"), v.get("until")
        if (hours is None) == (until is None):
            self.err(path, "give one of hours (e.g. 8) or until (e.g. \"18:30\")")
            return None
        if hours is not None and (isinstance(hours, bool) or not isinstance(hours, (int, float)) or not
                                  0 < hours < 1e4 or not math.isfinite(hours)):
            self.err(path + ("hours",), f"expected a positive number of hours, got {hours!r}")
            return None
        if until is not None and (not isinstance(until, str) or not re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", until)):
            self.err(path + ("until",), f"expected a time of day HH:MM, got {until!r}")
            return None
        return Goal(bat, float(hours) if hours is not None else None, until)

    def rules(self, v: Any, modes: dict, bat_h: float, th_h: float) -> list[Rule]:
        if not isinstance(v, list):
            self.err(("rules",), "expected [[rules]] tables")
            return []
        out = []
        for i, r in enumerate(v):
            path = ("rules", i)
            if not isinstance(r, dict):
                self.err(path, "expected a table with when and mode")
                continue
            self.unknown(r, _RULE, path, f"rule {i + 1}")
            when = self.condition(r.get("when"), path + ("when",))
            release = self.condition(r["release"], path + ("release",)) if "release" in r else None
            mode = r.get("mode")
            if not isinstance(mode, str):
                self.err(path + ("mode",), "expected the name of a mode")
            elif modes and mode not in modes:
                close = difflib.get_close_matches(mode, list(modes), n=1)
                self.err(path + ("mode",), f"no mode '{mode}'" + (f" (did you mean '{close[0]}'?)" if close else
                                                                 f" (modes: {', '.join(modes)})"))
            force = r.get("force", False)
            if not isinstance(force, bool):
                self.err(path + ("force",), "expected true or false")
                force = False
            if when is not None and release is not None:
                self.check_release(when, release, path + ("release",))
            if when is not None and isinstance(mode, str):
                out.append(Rule(i, when, release, mode, force, self.line(path + ("when",))))
        return out

    def condition(self, v: Any, path: tuple) -> Condition | None:
        if v is None:
            self.err(path, "missing: a rule needs when = \"...\"")
            return None
        try:
            return parse_condition(v)
        except ValueError as e:
            self.err(path, str(e))
            return None

    def check_release(self, when: Condition, release: Condition, path: tuple) -> None:
        """A release that can hold while `when` holds would switch the mode back and forth."""
        for w in when.atoms:
            for r in release.atoms:
                if w.var != r.var or w.op in ("status", "not status") or r.op in ("status", "not status"):
                    continue
                lower = w.op in ("<", "<=")
                if (r.op in ("<", "<=")) == lower:
                    self.err(path, f"'{r.text}' points the same way as '{w.text}': a release must be the "
                                   "other side of the threshold")
                elif (lower and r.value < w.value) or (not lower and r.value > w.value):
                    self.err(path, f"'{r.text}' can hold while '{w.text}' holds: the rule would flap; put the "
                                   "release beyond the threshold (e.g. battery < 20% released at > 25%)")


def _dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out


# ---- key -> line ------------------------------------------------------------------------------------------
_HEADER = re.compile(r"^\s*(\[\[?)\s*(.+?)\s*\]\]?\s*(#.*)?$")
_KEYVAL = re.compile(r"^\s*((?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*'))*)"
                     r"\s*=")
_INLINE_KEY = re.compile(r"[{,]\s*([A-Za-z0-9_-]+|\"[^\"]*\")\s*=")


def _split_key(k: str) -> tuple[str, ...]:
    parts = re.findall(r"\"([^\"]*)\"|'([^']*)'|([A-Za-z0-9_-]+)", k)
    return tuple(a or b or c for a, b, c in parts)


def _key_lines(text: str) -> dict[tuple, int]:
    """The line of each key path, for messages about keys tomllib accepted but the policy does not. Follows
    table headers, arrays of tables (indexed), dotted keys and one level of inline tables."""
    lines: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    current: tuple = ()
    in_multiline = None
    for n, raw in enumerate(text.splitlines(), 1):
        if in_multiline:
            if in_multiline in raw:
                in_multiline = None
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        h = _HEADER.match(raw)
        if h and not _KEYVAL.match(raw):
            path = _split_key(h.group(2))
            if h.group(1) == "[[":
                i = counts.get(path, 0)
                counts[path] = i + 1
                current = path + (i,)
            else:
                current = path
            for k in range(1, len(current) + 1):
                lines.setdefault(current[:k], n)
            continue
        m = _KEYVAL.match(raw)
        if not m:
            continue
        full = current + _split_key(m.group(1))
        for k in range(1, len(full) + 1):
            lines.setdefault(full[:k], n)
        rest = raw[m.end():]
        for q in ('"""', "'''"):
            if rest.count(q) == 1:
                in_multiline = q
        for km in _INLINE_KEY.finditer(rest):
            lines.setdefault(full + _split_key(km.group(1)), n)
    return lines
