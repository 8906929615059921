"""Budgets: what the governor must keep below, per inference or on average.

    50mJ   energy per inference (J, mJ, uJ, ...): at least (1 - violation target) of inferences under it, and
           the mean under it as well
    30ms   latency per inference (s, ms, us): a deadline, held like an energy budget
    2W     average power: mean energy over mean inference period (the inference's own latency when
           inferences run back to back, or a fixed frame period when the caller gives one)
    --battery BAT0 --until 18:30 | --hours 8
           a battery-life goal: an average energy budget per inference of
           remaining energy / (remaining time x inference rate), recomputed whenever the battery reports.

Quantities are parsed by tunable.units, the project's one parser.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from dataclasses import dataclass
from typing import Iterable

from tunable.errors import TunableError
from tunable.units import UnitError, format_energy, format_power, format_time, parse_quantity

ENERGY, LATENCY, POWER = "energy", "latency", "power"
_KIND_OF_DIM = {"energy": ENERGY, "time": LATENCY, "power": POWER}


class BudgetError(TunableError, ValueError):
    """A budget that cannot be read or cannot be met; the message quotes it and says what is accepted."""


@dataclass(frozen=True)
class Budget:
    """One fixed budget. `limit` is in SI units: J for energy, s for latency, W for power.

    per_inference: the budget also holds inference by inference (up to the controller's violation target);
    power budgets are averages only. period_s (power only): a fixed frame period; inferences then start
    every period_s and average power is energy / max(latency, period_s)."""
    kind: str
    limit: float
    text: str
    per_inference: bool = True
    period_s: float | None = None

    def describe(self) -> str:
        return {ENERGY: "energy", LATENCY: "latency", POWER: "power"}[self.kind] + " " + format_limit(self)


def format_limit(b: Budget) -> str:
    return {ENERGY: format_energy, LATENCY: format_time, POWER: format_power}[b.kind](b.limit)


def parse_budget(text: str, *, period_s: float | None = None) -> Budget:
    """'50mJ' -> Budget(energy, 0.05); '30ms' -> latency; '2W' -> power. Raises BudgetError saying why."""
    if not isinstance(text, str) or not text.strip():
        raise BudgetError(f"empty budget {text!r}: give energy per inference (50mJ), latency per inference "
                          "(30ms) or average power (2W)")
    try:
        value, dim = parse_quantity(text.strip())
    except UnitError as e:
        raise BudgetError(f"budget {e}") from None
    if value <= 0:
        raise BudgetError(f"budget '{text}' must be greater than zero")
    kind = _KIND_OF_DIM[dim]
    if period_s is not None and (not math.isfinite(period_s) or period_s <= 0):
        raise BudgetError(f"frame period {period_s!r} must be a positive number of seconds")
    return Budget(kind, value, text.strip(), per_inference=(kind != POWER),
                  period_s=period_s if kind == POWER else None)


def parse_budgets(texts: Iterable[str] | str, *, period_s: float | None = None) -> list[Budget]:
    """Several budgets at once: repeated options and/or comma-separated ('50mJ,30ms'). At most one of each
    kind (two energy budgets would only mean the smaller)."""
    if isinstance(texts, str):
        texts = [texts]
    out: list[Budget] = []
    for t in texts:
        for part in str(t).split(","):
            if part.strip():
                out.append(parse_budget(part, period_s=period_s))
    seen: dict[str, Budget] = {}
    for b in out:
        if b.kind in seen:
            raise BudgetError(f"two {b.kind} budgets given ('{seen[b.kind].text}' and '{b.text}'): give one")
        seen[b.kind] = b
    return out


class BatteryGoal:
    """A battery-life goal turned into an average energy budget per inference.

    budget = remaining energy / (remaining time x inference rate), with `reserve_j` held back. While the
    battery charges or is full, or once the deadline has passed, the goal constrains nothing.
    Times are on the controller's clock (monotonic seconds); `deadline` is absolute on that clock."""

    kind = ENERGY
    per_inference = False

    def __init__(self, battery: str, deadline: float, text: str, reserve_j: float = 0.0):
        if not battery:
            raise BudgetError("a battery goal needs the battery's name (e.g. BAT0; `ls /sys/class/power_supply`)")
        self.battery = battery
        self.deadline = float(deadline)
        self.text = text
        self.reserve_j = reserve_j
        self.limit = math.inf       # J per inference, set by update(); inf: no constraint
        self.reason = "no battery report yet"

    @classmethod
    def for_hours(cls, battery: str, hours: float | str, now: float, reserve_j: float = 0.0) -> "BatteryGoal":
        try:
            h = float(hours)
        except (TypeError, ValueError):
            raise BudgetError(f"--hours {hours!r}: expected a number of hours, e.g. 8 or 2.5") from None
        if not math.isfinite(h) or h <= 0:
            raise BudgetError(f"--hours {hours!r}: must be a positive number of hours")
        return cls(battery, now + h * 3600.0, f"{battery} for {h:g} h", reserve_j)

    @classmethod
    def until(cls, battery: str, hhmm: str, now: float, wall: _dt.datetime | None = None,
              reserve_j: float = 0.0) -> "BatteryGoal":
        """Until the next HH:MM on the wall clock (today, or tomorrow when it has passed)."""
        m = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", hhmm or "")
        if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
            raise BudgetError(f"--until {hhmm!r}: expected a time of day HH:MM (24 h), e.g. 18:30")
        wall = wall or _dt.datetime.now()
        target = wall.replace(hour=int(m.group(1)), minute=int(m.group(2)), second=0, microsecond=0)
        if target <= wall:
            target += _dt.timedelta(days=1)
        return cls(battery, now + (target - wall).total_seconds(), f"{battery} until {hhmm.strip()}",
                   reserve_j)

    def update(self, battery, now: float, rate_hz: float, spare_inferences: float = 0.0) -> bool:
        """Recomputes the budget from a battery report (a tunable.energy.BatteryState: status,
        energy_joules). spare_inferences: that many inferences more are budgeted for than the time left
        holds, so that the last stretch (a time-division block, a stale report) cannot empty the battery
        before the deadline. Returns whether the limit changed."""
        old = self.limit
        status = (battery.status or "").lower()
        remaining_s = self.deadline - now
        if status in ("charging", "full"):
            self.limit, self.reason = math.inf, f"{self.battery} is {status}: the goal constrains nothing"
        elif remaining_s <= 0:
            self.limit, self.reason = math.inf, f"goal time reached ({self.text})"
        elif battery.energy_joules is None:
            raise BudgetError(f"battery {self.battery} reports neither energy_now nor charge_now with "
                              "voltage_now: a battery-life goal needs its remaining energy")
        elif not rate_hz or rate_hz <= 0:
            self.limit, self.reason = math.inf, "inference rate not known yet"
        else:
            usable = max(0.0, battery.energy_joules - self.reserve_j)
            self.limit = usable / (remaining_s * rate_hz + spare_inferences)
            self.reason = (f"{self.battery}: {format_energy(usable)} left for {format_time(remaining_s)} at "
                           f"{rate_hz:.3g} inferences/s")
        return self.limit != old

    def describe(self) -> str:
        lim = "unconstrained" if math.isinf(self.limit) else format_energy(self.limit) + " per inference"
        return f"battery goal {self.text}: {lim} ({self.reason})"
