"""The governor as the run loop sees it: a policy's modes, its rules, the controller of the governed modes and
the system knobs, behind choose() / observe() / explain() / summary().

    gov = Governor(front, policy=load_policy(path), budgets=parse_budgets(["50mJ"]))
    while frames:
        p = gov.choose(); session.set_knobs(p.knobs); y = session.run(x)
        gov.observe(p, session.stats.latency_s, joules, "measured" or "modeled")

Without a policy there is one governed mode, 'auto', under the budgets given. Budgets given here (the
command line's --budget) replace those of the policy's governed modes. The battery, the thermal zones and
the manual mode file are polled every `poll_s` seconds (never per inference).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from tunable.energy.sysfs import SensorError
from tunable.errors import TunableError

from .budgets import BatteryGoal, Budget
from .controller import Controller, ControllerConfig
from .modes import ModeSelector, read_manual_mode, state_path
from .points import OperatingPoint
from .policy import Mode, Policy, SystemState
from .system import CpuFreqLimit, ThreadLimit, open_battery, read_thermal


class _Fixed:
    """A fixed mode: one point, every inference."""

    def __init__(self, point: OperatingPoint, why: str):
        self.point = point
        self.why = why
        self.n = 0

    def choose(self) -> OperatingPoint:
        return self.point

    def observe(self, point, latency_s, energy_j=None, energy_source="modeled", battery=None) -> None:
        self.n += 1

    def update_battery(self, state) -> None:
        pass

    def explain(self) -> str:
        return self.why


@dataclass
class SystemKnobs:
    """Thread count and cpufreq cap, applied per mode when allowed; restore() undoes them."""
    root: str | os.PathLike | None = None
    messages: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.threads = ThreadLimit()
        self.cpufreq = CpuFreqLimit(self.root)

    def apply(self, mode: Mode) -> list[str]:
        out = []
        if mode.threads is not None:
            out.append(self.threads.set(mode.threads))
        else:
            self.threads.restore()
        if mode.cpufreq_max is not None:
            out.append(self.cpufreq.set(str(mode.cpufreq_max)))
        else:
            self.cpufreq.restore()
        self.messages.extend(out)
        return out

    def restore(self) -> None:
        self.threads.restore()
        self.cpufreq.restore()


class Governor:
    def __init__(self, front: Sequence[OperatingPoint], *, policy: Policy | None = None,
                 budgets: Sequence[Budget] = (), goal: BatteryGoal | None = None,
                 points: Sequence[OperatingPoint] | None = None, manual: str | None = None,
                 battery=None, sysfs_root: str | os.PathLike | None = None, system: SystemKnobs | None = None,
                 config: ControllerConfig | None = None, clock: Callable[[], float] = time.monotonic,
                 poll_s: float = 1.0, follow_state_file: bool = True):
        """front: the points governed modes choose from; points: every point a mode may name (default: the
        front). battery: a battery to poll (a tunable.energy.Battery, or its name). system: SystemKnobs to
        apply modes' threads / cpufreq_max, or None to leave the OS alone."""
        self.front = list(front)
        self.points = {p.name: p for p in (points or front)}
        self.cli_budgets = list(budgets)
        self.cli_goal = goal
        self.config = config
        self.clock = clock
        self.root = sysfs_root
        self.system = system
        self.poll_s = poll_s
        self.follow_state_file = follow_state_file
        if isinstance(battery, str):
            battery = open_battery(battery, sysfs_root)
        if battery is None and goal is not None:
            battery = open_battery(goal.battery, sysfs_root)
        self.battery = battery
        self.policy = policy
        self.selector = ModeSelector(policy, manual) if policy is not None else None
        self._ctls: dict[str, Controller | _Fixed] = {}
        self.mode: Mode | None = None
        self.reason = ""
        self._mode_inferences: dict[str, int] = {}
        self._n = 0
        self._poll_n = 0                   # inferences at the last poll
        self._next_poll = 0
        self._last_poll = -math.inf
        self._state_mtime: float | None = None
        self._last_state = SystemState()
        self._explained: tuple = (None, "")
        self._poll(force=True)

    # ---- modes ----------------------------------------------------------------------------------------
    def _controller(self, mode: Mode) -> Controller | _Fixed:
        c = self._ctls.get(mode.name)
        if c is not None:
            return c
        if mode.knobs is not None:
            match = [p for p in self.points.values() if dict(p.knobs) == dict(mode.knobs)]
            base = match[0] if match else max(self.front, key=lambda p: (p.accuracy or 0.0, p.energy_j))
            pt = OperatingPoint(f"mode:{mode.name}", dict(mode.knobs), base.accuracy if match else None,
                                base.energy_j, base.latency_s, base.macs)
            c = _Fixed(pt, f"mode '{mode.name}' fixes the knobs ({mode.describe()})")
        elif mode.point is not None:
            if mode.point not in self.points:
                raise TunableError(f"mode '{mode.name}' names point '{mode.point}', which the profile does not "
                                   f"have (points: {', '.join(self.points)})")
            c = _Fixed(self.points[mode.point], f"mode '{mode.name}' fixes point '{mode.point}'")
        else:
            budgets: list = list(self.cli_budgets) if self.cli_budgets else list(mode.budgets)
            goal = self.cli_goal
            if goal is None and mode.goal is not None:
                g = mode.goal
                goal = (BatteryGoal.for_hours(g.battery, g.hours, self.clock()) if g.hours is not None
                        else BatteryGoal.until(g.battery, g.until, self.clock()))
                if self.battery is None:
                    self.battery = open_battery(g.battery, self.root)
            if goal is not None:
                budgets.append(goal)
            c = Controller(self.front, budgets, config=self.config, clock=self.clock)
        self._ctls[mode.name] = c
        return c

    def _poll(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_poll < self.poll_s:
            self._next_poll = self._n + 16
            return
        done = self._n - self._poll_n
        if self.mode is not None:   # inferences since the last poll ran in the mode of then
            self._mode_inferences[self.mode.name] = self._mode_inferences.get(self.mode.name, 0) + done
        rate = done / (now - self._last_poll) if math.isfinite(self._last_poll) and now > self._last_poll else 0.0
        self._last_poll, self._poll_n = now, self._n
        # next check after about poll_s worth of inferences (at least 1, at most 1000)
        self._next_poll = self._n + int(min(1000, max(1, rate * self.poll_s)))
        report = None
        if self.battery is not None:
            try:
                report = self.battery.read()
            except SensorError as e:   # a battery that went away: rules see none, the run goes on
                self.reason = f"battery unreadable ({e})"
        state = SystemState(report, read_thermal(self.root))
        self._last_state = state
        if self.selector is not None:
            if self.follow_state_file:
                self._reload_manual()
            sel = self.selector.select(state, now)
            mode, self.reason = self.policy.mode(sel.mode), sel.reason
        else:
            mode, self.reason = (self.mode or Mode("auto", budgets=tuple(self.cli_budgets))), "no policy"
        if self.mode is None or mode.name != self.mode.name:
            self.mode = mode
            self._active = self._controller(mode)
            if self.system is not None:
                self.system.apply(mode)
        if state.battery is not None:
            self._active.update_battery(state.battery)

    def _reload_manual(self) -> None:
        try:
            mtime = state_path().stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._state_mtime:
            self._state_mtime = mtime
            manual = read_manual_mode()
            self.selector.set_manual(manual if manual in self.policy.modes else None)

    # ---- per inference --------------------------------------------------------------------------------
    def choose(self) -> OperatingPoint:
        return self._active.choose()

    def observe(self, point: OperatingPoint, latency_s: float | None, energy_j: float | None = None,
                energy_source: str = "modeled") -> None:
        self._active.observe(point, latency_s, energy_j, energy_source)
        n = self._n = self._n + 1
        if n >= self._next_poll:
            self._poll()

    # ---- reporting ------------------------------------------------------------------------------------
    def explain(self) -> str:
        """The mode, why it runs, and the controller's reason; rebuilt only when one of them changed."""
        inner = self._active.explain()
        key = (self.mode.name, self.reason, inner)
        if key != self._explained[0]:
            self._explained = (key, f"mode '{self.mode.name}' ({self.reason}): {inner}")
        return self._explained[1]

    def summary(self) -> dict:
        per_mode = dict(self._mode_inferences)
        per_mode[self.mode.name] = per_mode.get(self.mode.name, 0) + self._n - self._poll_n
        ctl = {name: c.summary() for name, c in self._ctls.items() if isinstance(c, Controller)}
        return {"mode": self.mode.name, "inferences": self._n, "inferences_per_mode": per_mode,
                "controllers": ctl}

    def close(self) -> None:
        if self.system is not None:
            self.system.restore()

