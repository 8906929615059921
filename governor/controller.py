"""The controller: which operating point runs the next inference.

Prediction. A point's cost is its profile cost times a slowdown that the controller estimates online, one
per cost (energy, latency), as POET and ALERT do: the log of measured/profile is filtered by a scalar Kalman
filter whose noise variance is learned from the residuals, and a two-sided CUSUM on the standardised
residuals detects step changes (a throttled CPU, a busier board), restarting the estimate from the samples
after the change instead of waiting for the filter to drift there.

Choice. Per-inference budgets (energy, latency) are chance constraints: the predicted fraction of
inferences over the budget (log-normal predictive distribution) must stay under `violation_target`, and
the predicted mean must stay `margin` under the budget. Average budgets (power, battery goals) constrain
the mean only. The controller runs the most accurate point that meets every constraint alone ("lo") and,
when a budget lies between lo and the next more accurate point ("hi"), time-divides between the two: the
largest share f of hi for which the mixture still meets every constraint (all constraints are linear in f).
The mixture runs in cycles of `td_cycle` inferences, a block of hi then a block of lo, so time-division costs
two switches per cycle.

Stability. The plan is recomputed only when the estimates move: at once when a slowdown rises more than
`step_tolerance` above the value the plan was made at (a downgrade is never delayed), and for an upgrade only
after `upgrade_after` consecutive inferences of headroom on the constraint that binds, and not within
`min_dwell` inferences of the previous change.

Cost. observe() appends an inference's latency and energy to a window and compares them with two bounds per
cost; the filters take the window's mean measured/profile ratios every `window` inferences (fewer right after a
change), so a window spans the switches of time-division; an inference outside the bounds is counted (over a
budget) and, when far off the prediction, acted on at once, on its own. bench/governor_overhead.py measures
this path against an inference of the bundled model (issue bar: under 2 %).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from tunable.errors import TunableError
from tunable.units import format_energy, format_power, format_time

from .budgets import ENERGY, LATENCY, POWER, BatteryGoal, Budget
from .points import OperatingPoint, ProfileError, pareto_front

exp, log, sqrt, hypot = math.exp, math.log, math.sqrt, math.hypot
MEASURED, MODELED = "measured", "modeled"


class GovernorWarning(UserWarning):
    """A budget no operating point can meet, or another condition the user should know about."""


@dataclass
class ControllerConfig:
    violation_target: float = 0.025  # fraction of inferences a per-inference budget may be exceeded
    margin: float = 0.02             # predicted mean kept this fraction under each budget
    td_cycle: int = 160              # inferences per time-division cycle (two switches per cycle)
    td_min_fraction: float = 0.1     # a smaller share of the upper point is not worth its switches
    upgrade_after: int = 8           # consecutive inferences of headroom before an upgrade
    min_dwell: int = 10              # at least this many inferences between upgrades
    step_tolerance: float = 0.01     # re-plan when a slowdown rises this much (log units) above the plan's
    headroom: float = 0.01           # ... and consider an upgrade when it falls this much below it
    refresh_every: int = 500         # re-plan anyway (the learned noise drifts slowly)
    drift_sd: float = 0.001          # expected drift of a log slowdown per inference (Kalman process noise)
    prior_sd: float = 0.1            # uncertainty of the profile's costs before any measurement (log sd)
    noise_sd: float = 0.05           # first guess of per-inference noise (log sd); learned from then on
    noise_sd_floor: float = 0.003
    noise_window: int = 200          # inferences over which the noise variance is averaged
    window: int = 128                # inferences per filter update, at most (an outlier updates at once): a
                                     # flush costs what ~60 inferences do; after a simulated 10 % step 4-5 %
                                     # of the next 300 inferences went over budget with 32, 64 or 128 alike
    window_min: int = 4              # ... and right after a change
    alarm_sd: float = 3.5            # an inference this many sd off the prediction is acted on at once
    cusum_k: float = 0.5             # CUSUM allowance and threshold, in residual standard deviations:
    cusum_h: float = 8.0             # a 1.5x step is found in 1-2 inferences, false alarms are rare

    def __post_init__(self):
        if not 0 < self.violation_target < 0.5:
            raise ValueError(f"violation_target {self.violation_target}: must lie in (0, 0.5)")
        if not 0 <= self.margin < 0.5:
            raise ValueError(f"margin {self.margin}: must lie in [0, 0.5)")
        if self.td_cycle < 2 or self.upgrade_after < 1 or self.min_dwell < 0 or not 1 <= self.window_min <= self.window:
            raise ValueError("td_cycle >= 2, upgrade_after >= 1, min_dwell >= 0 and 1 <= window_min <= window are "
                             "required")


class SlowdownFilter:
    """Log of (measured / profile) cost: Kalman estimate x with variance P, learned per-inference noise
    variance R, and a two-sided CUSUM for steps. It is fed window means: update(y, n) takes the log of the
    mean ratio over n inferences, whose noise variance is R / n."""

    __slots__ = ("x", "P", "R", "Q", "beta", "floor", "k", "h", "alarm", "sp", "sn", "runp", "runn",
                 "Rp", "Rn", "n", "nd", "steps", "u", "hi", "lo")

    def __init__(self, cfg: ControllerConfig):
        self.Q = cfg.drift_sd ** 2
        self.beta = 1.0 / cfg.noise_window
        self.floor = cfg.noise_sd_floor ** 2
        self.k, self.h = cfg.cusum_k, cfg.cusum_h
        self.alarm = cfg.alarm_sd
        self.reset(cfg.prior_sd ** 2, cfg.noise_sd ** 2)

    def reset(self, prior_var: float, noise_var: float) -> None:
        self.x = 0.0
        self.P = prior_var
        self.R = noise_var
        self.sp = self.sn = 0.0
        self.runp: list[tuple[float, int]] = []   # the windows since each CUSUM statistic left zero
        self.runn: list[tuple[float, int]] = []
        self.Rp = self.Rn = noise_var
        self.n = self.nd = 0
        self.steps = 0
        self._derived()

    def _derived(self) -> None:
        x, P = self.x, self.P
        self.u = x + sqrt(P)   # the pessimistic estimate the re-plan triggers watch
        # ratio bounds beyond which one inference is acted on at once; exp(a*s) to second order is plenty
        a_s = self.alarm * sqrt(P + self.R)
        m = 1.0 + a_s * (1.0 + 0.5 * a_s)
        ex = exp(x)
        self.hi, self.lo = ex * m, ex / m

    def update(self, y: float, n: int = 1, var: float | None = None) -> bool:
        """y = log(mean measured/profile ratio) over n inferences, var the relative variance of the ratios
        within the window (None for a single inference). Returns True when a step was detected."""
        self.n += n
        R0 = R = self.R
        # Noise from the scatter inside windows (n - 1 degrees of freedom each), clipped at 3 sd so that a
        # window across a step does not inflate it; the first windows are averaged with the prior guess
        # (worth 4 degrees of freedom); a step's windows are taken back out once the step is confirmed.
        if var is not None:
            if var > 9.0 * R:
                var = 9.0 * R
            w = n - 1
            nd = self.nd = self.nd + w
            beta = w / (nd + 4)
            if beta < self.beta * w:
                beta = self.beta * w
            R += beta * (var - R)
            if R < self.floor:
                R = self.floor
            self.R = R
        P = self.P + self.Q * n
        Rn = R / n
        x = self.x
        e = y - x
        z = e / sqrt(P + Rn)
        # CUSUM on the standardised residual, both directions; a run records the windows since it began
        k = self.k
        sp = self.sp + z - k
        if sp > 0.0:
            if not self.runp:
                self.Rp = R0
            self.runp.append((y, n))
        else:
            sp = 0.0
            if self.runp:
                self.runp.clear()
        sn = self.sn - z - k
        if sn > 0.0:
            if not self.runn:
                self.Rn = R0
            self.runn.append((y, n))
        else:
            sn = 0.0
            if self.runn:
                self.runn.clear()
        h = self.h
        if sp > h or sn > h:
            up = sp > h
            self.x, m = _change_level(self.runp if up else self.runn, x)
            self.R = R = self.Rp if up else self.Rn   # the noise as it was before the change
            self.P = R / m
            self.sp = self.sn = 0.0
            self.runp.clear()
            self.runn.clear()
            self.steps += 1
            self._derived()
            return True
        self.sp, self.sn = sp, sn
        K = P / (P + Rn)
        x += K * e
        P *= 1.0 - K
        self.x, self.P = x, P
        # _derived(), inline: this runs once per window
        self.u = x + sqrt(P)
        a_s = self.alarm * sqrt(P + R)
        m = 1.0 + a_s * (1.0 + 0.5 * a_s)
        ex = exp(x)
        self.hi, self.lo = ex * m, ex / m
        return False

    @property
    def slowdown(self) -> float:
        return math.exp(self.x)

    @property
    def noise_sd(self) -> float:
        return math.sqrt(self.R)


def _feed(f: SlowdownFilter, total: float, squares: float, n: int) -> bool:
    """A window's sums of n measured/profile cost ratios (and of their squares) into its filter: the log of
    the mean ratio, and the scatter inside the window relative to its mean (~ the variance of the logs)."""
    mean = total / n
    var = max(0.0, squares - total * mean) / ((n - 1) * mean * mean) if n > 1 else None
    return f.update(log(mean), n, var)


def _add_ratios(w: list, values: list[float], n: int, total: float, cost: float) -> None:
    """n known values of one cost (summing to total; the missing ones are 0.0 and add nothing) into a window's
    count, sum and sum of squares of value / profile cost. hypot(*v) ** 2 is the sum of squares in one C call,
    a third of sum(map(mul, v, v))'s time."""
    w[0] += n
    w[1] += total / cost
    w[2] += (hypot(*values) / cost) ** 2


def _change_level(run: list[tuple[float, int]], old: float) -> tuple[float, int]:
    """The new level after a detected change, and how many inferences it rests on: the run's windows from
    the most likely change point on (the split that maximises n_after x (mean_after - old)^2)."""
    best, level, count, acc, m = -1.0, old, 1, 0.0, 0
    for y, n in reversed(run):
        acc += y * n
        m += n
        mean = acc / m
        score = m * (mean - old) ** 2
        if score > best:
            best, level, count = score, mean, m
    return level, count


_SQRT2 = math.sqrt(2.0)


@dataclass
class Plan:
    lo: int
    hi: int
    fraction: float                  # share of inferences on hi
    feasible: bool                   # lo meets every budget
    binding: object | None           # the budget that limits the choice (None: the top point fits all)
    predicted: dict = field(default_factory=dict)   # budget -> (lo's prediction, hi's or None, hi's share over)


@dataclass
class Summary:
    inferences: int
    points: dict[str, int]           # inferences per point
    switches: int
    upgrades: int
    downgrades: int
    steps_detected: dict[str, int]
    violations: dict[str, int]       # per-inference budgets: inferences measured over the budget
    mean_energy_j: float | None
    mean_latency_s: float | None
    mean_power_w: float | None
    energy_source: str | None
    infeasible_plans: int
    warnings: list[str]

    def switches_per_100(self) -> float:
        return 100.0 * self.switches / self.inferences if self.inferences else 0.0


class Controller:
    """Chooses an operating point per inference under budgets. See the module docstring.

    points: the operating points to choose from (normally a profile's front). With measured accuracies they
    are narrowed to the Pareto front of the costs the budgets constrain; without, their order (cheapest
    first) stands for accuracy, as default_front() returns them.
    budgets: Budget and BatteryGoal objects (several at once). No budget: the most accurate point.
    clock: seconds, monotonic (the simulated plant passes its own)."""

    # Slots: the per-inference path reads and writes a dozen attributes, which costs fewer instructions as
    # slots than as entries of an instance dict of ~70 keys.
    __slots__ = ('budgets', 'cfg', 'clock', 'energy_source', 'fE', 'fL', 'goals', 'points', 'warnings', '_alE_hi',
                 '_alE_lo', '_alL_hi', '_alL_lo', '_blk', '_buf', '_chk', '_count', '_cur', '_cur_pt', '_cycle',
                 '_dE', '_dL', '_dP', '_downgrades', '_explained', '_f', '_headroom_run', '_hi', '_index',
                 '_infeasible', '_infeasible_since', '_interval', '_last_t', '_left', '_limE', '_limL', '_lo',
                 '_logE', '_logL', '_mE', '_mL', '_monotone', '_n', '_nE', '_nL', '_n_hi', '_next_on_hi', '_on_hi',
                 '_overE', '_overL', '_plan', '_plan_why', '_rate_fixed', '_refRE', '_refRL', '_seg2',
                 '_since_change', '_since_refresh', '_sumE', '_sumL', '_switches', '_uE', '_uL', '_uP', '_upgrades',
                 '_useE', '_useL', '_wE', '_wL', '_wP', '_was_feasible', '_win_pt', '_window', '_wk')

    def __init__(self, points: Sequence[OperatingPoint], budgets: Iterable[Budget | BatteryGoal] = (), *,
                 config: ControllerConfig | None = None, clock: Callable[[], float] = time.monotonic,
                 rate_hz: float | None = None):
        self.cfg = cfg = config or ControllerConfig()
        self.clock = clock
        self.budgets: list[Budget | BatteryGoal] = list(budgets)
        self.goals = [b for b in self.budgets if isinstance(b, BatteryGoal)]
        pts = list(points)
        if not pts:
            raise ProfileError("the governor needs at least one operating point")
        kinds = {b.kind for b in self.budgets}
        costs = tuple(c for c, used in (("energy_j", kinds & {ENERGY, POWER}), ("latency_s", kinds & {LATENCY, POWER}))
                      if used) or ("energy_j",)
        if all(p.accuracy is not None for p in pts):
            ladder = sorted(pareto_front(pts, costs), key=lambda p: (p.accuracy, -p.energy_j, -p.latency_s))
        else:
            ladder = pts  # given cheapest (= least accurate) first
        self.points = ladder
        # which estimates the re-plan triggers watch; power with back-to-back inferences depends on xE - xL
        power = [b for b in self.budgets if b.kind == POWER]
        self._wP = bool(power) and not power[0].period_s
        self._wE = bool(kinds & {ENERGY}) or (bool(power) and not self._wP)
        self._wL = LATENCY in kinds
        # only the slowdowns some budget depends on are estimated (each filter update costs)
        self._useE = bool(kinds & {ENERGY, POWER})
        self._useL = bool(kinds & {LATENCY, POWER})
        # when every constrained cost rises along the ladder, feasibility is a prefix of it (a slowdown
        # scales all points alike); power is a ratio, searched in full
        rising = [c for c in ("energy_j", "latency_s") if c in costs]
        self._monotone = POWER not in kinds and all(
            getattr(a, c) <= getattr(b, c) for c in rising for a, b in zip(ladder, ladder[1:]))
        self._logE = [math.log(p.energy_j) for p in ladder]
        self._logL = [math.log(p.latency_s) for p in ladder]
        self._index = {p.name: i for i, p in enumerate(ladder)}
        self.fE = SlowdownFilter(cfg)
        self.fL = SlowdownFilter(cfg)
        self.energy_source: str | None = None
        self.warnings: list[str] = []
        # inference rate, needed for battery goals: fixed, or measured between observe() calls
        self._rate_fixed = rate_hz
        self._interval = 1.0 / rate_hz if rate_hz else 0.0
        self._last_t: float | None = None
        # statistics
        n = len(ladder)
        self._count = [0] * n
        self._n = 0
        self._switches = self._upgrades = self._downgrades = self._infeasible = 0
        self._sumE = self._sumL = 0.0
        self._nE = self._nL = 0
        self._overE = self._overL = 0
        # The window being gathered. The running point's inferences (a segment) are kept as flat (latency,
        # energy) pairs, 0.0 for a quantity not known; a switch folds the segment into the window's sums of
        # measured/profile ratios, so that a window spans the points time-division alternates between and a
        # switch costs no filter update.
        self._window = cfg.window_min
        self._buf: list[float] = []
        self._seg2 = 2 * self._window    # len(_buf) at which the window is full
        self._wk = 0                     # inferences in the window's folded segments
        self._wL = [0, 0.0, 0.0]         # known latencies in them: count, sum and sum of squares of ratios
        self._wE = [0, 0.0, 0.0]
        self._mL = self._mE = 0          # inferences of the segment without a latency, an energy
        # per-inference bounds (latency lo, hi, energy lo, hi), exclusive: a missing quantity (0.0) is always
        # outside and counted there; a known cost no budget uses never is
        self._chk = (0.0, math.inf, 0.0, math.inf)
        self._cycle = cfg.td_cycle
        pib = [b for b in self.budgets if isinstance(b, Budget) and b.per_inference]
        self._limE = min((b.limit for b in pib if b.kind == ENERGY), default=math.inf)
        self._limL = min((b.limit for b in pib if b.kind == LATENCY), default=math.inf)
        # plan state
        self._plan: Plan | None = None
        self._lo = self._hi = self._n_hi = 0
        self._f = 0.0
        self._cur = -1
        self._cur_pt: OperatingPoint | None = None
        self._win_pt: OperatingPoint | None = None   # the point whose inferences the window holds
        self._blk = self._left = 0          # the block running: its length and what is left of it
        self._on_hi = self._next_on_hi = False
        self._since_change = 0
        self._headroom_run = 0
        self._since_refresh = 0
        self._was_feasible = True
        self._infeasible_since: float | None = None   # inferences at which nothing fitted, until said
        self._explained: tuple = (-1, None, "")   # (inferences fed, plan, text) of the last explain()
        self._replan("start", force=True)
        self._check_infeasible()

    # ---- prediction -------------------------------------------------------------------------------------
    def _context(self) -> tuple:
        """Per-plan constants: the estimates, and each budget's limits as the evaluation needs them."""
        fE, fL, keep = self.fE, self.fL, 1.0 - self.cfg.margin
        cons = [(b.kind, b.limit * keep, log(b.limit) if b.per_inference and math.isfinite(b.limit) else None,
                 getattr(b, "period_s", None) or 0.0) for b in self.budgets]
        # mean = exp(log cost + R/2 + sqrt(P)): the log-normal mean, pessimistic by one sd of the estimate
        return (fE.x, 0.5 * fE.R + sqrt(fE.P), sqrt(fE.R + fE.P),
                fL.x, 0.5 * fL.R + sqrt(fL.P), sqrt(fL.R + fL.P), cons)

    def _evaluate(self, i: int, ctx: tuple) -> tuple[bool, list[tuple[float, float, float]]]:
        """Whether point i alone meets every budget, and per budget (g, p, predicted): g > 0 when the
        predicted mean misses it, p the predicted fraction of inferences over it (0 for averages)."""
        xE, mE, sE, xL, mL, sL, cons = ctx
        v = self.cfg.violation_target
        ok = True
        out = []
        for kind, kept, log_limit, period in cons:
            p = 0.0
            if kind == ENERGY:
                log_c = self._logE[i] + xE
                pred = exp(log_c + mE)
                if log_limit is not None:
                    p = 0.5 * math.erfc((log_limit - log_c) / (sE * _SQRT2))
            elif kind == LATENCY:
                log_c = self._logL[i] + xL
                pred = exp(log_c + mL)
                if log_limit is not None:
                    p = 0.5 * math.erfc((log_limit - log_c) / (sL * _SQRT2))
            else:  # power: mean energy over the mean period
                pred = exp(self._logE[i] + xE + mE) / max(exp(self._logL[i] + xL), period)
            g = pred - kept
            if g > 0.0 or p > v:
                ok = False
            out.append((g, p, pred))
        return ok, out

    def _plan_now(self) -> Plan:
        n = len(self.points)
        if not self.budgets:
            return Plan(n - 1, n - 1, 0.0, True, None)
        ctx = self._context()
        ev = self._evaluate
        memo: dict[int, tuple[bool, list]] = {}

        def at(i: int) -> tuple[bool, list]:
            r = memo.get(i)
            if r is None:
                r = memo[i] = ev(i, ctx)
            return r

        if self._monotone:
            # costs rise along the ladder, so feasibility is a prefix: walk from the present choice
            lo = min(self._lo, n - 1)
            if at(lo)[0]:
                while lo + 1 < n and at(lo + 1)[0]:
                    lo += 1
            else:
                while lo > 0 and not at(lo)[0]:
                    lo -= 1
                if not at(lo)[0]:
                    lo = -1
        else:
            lo = max((i for i in range(n) if at(i)[0]), default=-1)
        if lo < 0:  # nothing fits: the cheapest point; the binding budget is the one missed worst
            vals = at(0)[1]
            j = max(range(len(vals)), key=lambda j: vals[j][2] / max(self.budgets[j].limit, 1e-300))
            return Plan(0, 0, 0.0, False, self.budgets[j],
                        {b: (vals[k][2], None, 0.0) for k, b in enumerate(self.budgets)})
        lo_vals = at(lo)[1]
        if lo == n - 1:
            return Plan(lo, lo, 0.0, True, None, {b: (lo_vals[k][2], None, 0.0) for k, b in enumerate(self.budgets)})
        hi = lo + 1
        hi_vals = at(hi)[1]
        v = self.cfg.violation_target
        f, binding = 1.0, None
        for j, b in enumerate(self.budgets):
            g_lo, p_lo, _ = lo_vals[j]
            g_hi, p_hi, _ = hi_vals[j]
            lim = 1.0
            if g_hi > 0.0:
                lim = -g_lo / (g_hi - g_lo)
            if p_hi > v:
                lim = min(lim, (v - p_lo) / (p_hi - p_lo))
            if lim < f or (binding is None and lim < 1.0):
                f, binding = lim, b
        f = max(0.0, min(f, 1.0))
        if f < self.cfg.td_min_fraction:
            f = 0.0
        return Plan(lo, hi, f, True, binding,
                    {b: (lo_vals[k][2], hi_vals[k][2], hi_vals[k][1]) for k, b in enumerate(self.budgets)})

    def _reason(self, plan: Plan) -> str:
        pts = self.points
        b = plan.binding
        if not self.budgets:
            return "no budget: the most accurate point"
        if not plan.feasible:
            return (f"no operating point meets {_describe(b)}: running the cheapest, '{pts[0].name}', "
                    f"predicted {_fmt(b, plan.predicted[b][0])}")
        if b is None:
            return f"the most accurate point, '{pts[plan.lo].name}', fits every budget"
        lo_p, hi_p, over = plan.predicted[b]
        hi = f"'{pts[plan.hi].name}' ({_fmt(b, hi_p)}" + (f", {100 * over:.0f} % of inferences over)" if over
                                                         else ")")
        if plan.fraction > 0.0:
            return (f"{_describe(b)}: {hi} runs {100 * plan.fraction:.0f} % of the time, "
                    f"'{pts[plan.lo].name}' ({_fmt(b, lo_p)}) the rest")
        return f"'{pts[plan.lo].name}' fits {_describe(b)} (predicted {_fmt(b, lo_p)}); the next, {hi}, would not"

    # ---- plan changes -----------------------------------------------------------------------------------
    def _replan(self, why: str, force: bool = False, upgrade_ok: bool = True) -> None:
        plan = self._plan_now()
        old_pos = (self._lo + self._f) if not force else None
        new_pos = plan.lo + plan.fraction
        if old_pos is not None and new_pos > old_pos + 1e-9 and not upgrade_ok:
            # headroom that is not sustained yet: keep the plan; only the downgrade triggers move
            self._set_triggers(self._plan.binding, up=False)
            return
        if old_pos is not None and new_pos != old_pos:
            if new_pos < old_pos:
                self._downgrades += 1
            else:
                self._upgrades += 1
                self._since_change = 0
        self._plan = plan
        self._plan_why = why
        if plan.feasible != self._was_feasible or (force and not plan.feasible):
            self._infeasible_since = None
            if not plan.feasible:
                self._infeasible += 1
                # said at once about the profile's own costs; after a change, once it has lasted (the two
                # filters may see a common step an inference apart)
                self._infeasible_since = -math.inf if force else self._n
            self._was_feasible = plan.feasible
        changed = force or plan.lo != self._lo or plan.hi != self._hi
        self._lo, self._hi, self._f = plan.lo, plan.hi, plan.fraction
        n_hi = self._n_hi = int(plan.fraction * self._cycle) if plan.hi != plan.lo else 0
        if changed:
            # a new cycle, starting on the point already running when it is one of the two
            self._schedule(n_hi > 0 and self._cur != plan.lo)
        elif self._on_hi:
            # the same two points: the hi block shrinks or grows to the new share; a lo block runs on, and
            # a larger hi share waits for the next cycle rather than cut the lo block in two
            done = self._blk - self._left
            if done >= n_hi:
                self._schedule(False)
            else:
                self._blk, self._left = n_hi, n_hi - done
        self._set_triggers(plan.binding)
        self._since_refresh = 0

    def _set_triggers(self, binding, up: bool = True) -> None:
        """Anchors the re-plan triggers at the present estimates. Downgrade: any watched slowdown rises
        step_tolerance above its anchor. Upgrade: the binding one falls `headroom` below it."""
        fE, fL = self.fE, self.fL
        tol, room = self.cfg.step_tolerance, self.cfg.headroom
        self._dE, self._dL, self._dP = fE.u + tol, fL.u + tol, fE.u - fL.u + tol
        self._refRE, self._refRL = fE.R, fL.R
        if not up:
            return
        self._uE = self._uL = self._uP = -math.inf     # -inf: never headroom on this one
        top = self._lo == len(self.points) - 1 and self._plan.feasible
        if top:
            return
        b = binding
        if b is None:
            return
        if b.kind == LATENCY:
            self._uL = fL.u - room
        elif b.kind == POWER and self._wP:
            self._uP = fE.u - fL.u - room
        else:
            self._uE = fE.u - room

    def _below_cheapest(self) -> str:
        """When a budget lies below the cheapest point's expected cost itself (not only below it plus the
        margins), what to tell the user; else ''."""
        fE, fL = self.fE, self.fL
        e = exp(self._logE[0] + fE.x + 0.5 * fE.R)
        lat = exp(self._logL[0] + fL.x + 0.5 * fL.R)
        for b in self.budgets:
            cost = {ENERGY: e, LATENCY: lat}.get(b.kind) or e / max(lat, getattr(b, "period_s", None) or 0.0)
            if cost > b.limit:
                return (f"{_describe(b)} is below the cheapest operating point, '{self.points[0].name}' "
                        f"(expected {_fmt(b, cost)}): running it anyway")
        return ""

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        warnings.warn(msg, GovernorWarning, stacklevel=3)

    # ---- time-division schedule -------------------------------------------------------------------------
    # Blocks: n_hi inferences of hi, then cycle - n_hi of lo, and again; with no share of hi, lo blocks only.
    # choose() counts a block down; the next block is decided when it runs out, or when a new plan calls
    # _schedule() (which takes effect at the next choose(), never in the middle of a window's sums).
    def _schedule(self, on_hi: bool) -> None:
        if self._cur >= 0:
            self._count[self._cur] += self._blk - self._left
        self._blk = self._left = 0
        self._next_on_hi = on_hi

    def _next_block(self) -> OperatingPoint:
        if self._cur >= 0:
            self._count[self._cur] += self._blk - self._left
        on_hi = self._next_on_hi
        n_hi = self._n_hi
        if on_hi and n_hi > 0:
            i, length = self._hi, n_hi
        else:
            on_hi, i, length = False, self._lo, self._cycle - n_hi
        self._on_hi = on_hi
        self._next_on_hi = not on_hi   # after hi comes lo; after lo, hi (when it has a share)
        self._blk, self._left = length, length - 1
        if i != self._cur:
            if self._cur >= 0:
                self._switches += 1
            self._cur = i
            self._cur_pt = self.points[i]
        return self._cur_pt

    # ---- per inference ----------------------------------------------------------------------------------
    def choose(self) -> OperatingPoint:
        """The operating point for the next inference."""
        left = self._left
        if left:
            self._left = left - 1
            return self._cur_pt
        return self._next_block()

    def _set_checks(self) -> None:
        """Bounds for the running point: outside them an inference is counted as over a budget and/or acted
        on at once (an alarm: far off the prediction, a violation or a step)."""
        p = self._win_pt
        if p is None:
            return
        chkL_lo, chkL_hi, chkE_lo, chkE_hi = 0.0, math.inf, 0.0, math.inf
        if self._useE:
            fE, e = self.fE, p.energy_j
            hi = self._alE_hi = fE.hi * e
            chkE_lo = self._alE_lo = fE.lo * e
            chkE_hi = hi if hi < self._limE else self._limE
        if self._useL:
            fL, lat = self.fL, p.latency_s
            hi = self._alL_hi = fL.hi * lat
            chkL_lo = self._alL_lo = fL.lo * lat
            chkL_hi = hi if hi < self._limL else self._limL
        self._chk = (chkL_lo, chkL_hi, chkE_lo, chkE_hi)

    def observe(self, point: OperatingPoint, latency_s: float | None, energy_j: float | None = None,
                energy_source: str = MODELED, battery=None) -> None:
        """Feeds back one inference: its measured latency, its energy (measured by a sensor, or modeled from
        its counters) and, when the caller polled it, a battery report (for battery-life goals). None (or 0)
        for a quantity not known for this inference."""
        # The hot path (its cost is the governor's overhead per inference): the pair goes into the window,
        # which the filters take every `window` inferences, or at once on an alarm or a battery report;
        # four comparisons decide that an inference needs nothing more.
        if point is not self._win_pt:
            self._new_window(point)
        if energy_source is not self.energy_source and energy_j and energy_source != self.energy_source:
            self._energy_source_changed(energy_source)
        lo_l, hi_l, lo_e, hi_e = self._chk
        try:
            inside = lo_l < latency_s < hi_l and lo_e < energy_j < hi_e
        except TypeError:   # None: a quantity not known
            inside = False
        if inside:
            buf = self._buf
            buf.append(latency_s)
            buf.append(energy_j)
            if len(buf) >= self._seg2 or battery is not None:
                self._flush(battery)
            return
        lat, e = latency_s or 0.0, energy_j or 0.0
        self._buf += (lat, e)
        self._outside(lat, e, battery)

    def _outside(self, lat: float, e: float, battery) -> None:
        """The rest of observe() for an inference outside the bounds: counted when over a budget, and acted
        on at once when far off the prediction (an alarm); 0.0, not known, is counted as missing."""
        alarm = False
        if not lat:
            self._mL += 1
        elif self._useL:
            if lat > self._limL:
                self._overL += 1
            alarm = not self._alL_lo < lat < self._alL_hi
        if not e:
            self._mE += 1
        elif self._useE:
            if e > self._limE:
                self._overE += 1
            alarm = alarm or not self._alE_lo < e < self._alE_hi
        if alarm:
            if self._wk or len(self._buf) > 2:
                self._isolate()
            self._flush(battery, True)
        elif len(self._buf) >= self._seg2 or battery is not None:
            self._flush(battery)

    def _isolate(self) -> None:
        """Feeds the window without its last inference, which is left alone in a window of its own: an
        inference far off the prediction is judged by itself, not averaged into the ones before it."""
        buf = self._buf
        last = buf[-2:]
        del buf[-2:]
        mL, mE = last[0] == 0.0, last[1] == 0.0
        self._mL -= mL
        self._mE -= mE
        self._flush(None)
        buf.extend(last)
        self._mL, self._mE = mL, mE

    def _new_window(self, point: OperatingPoint) -> None:
        """The inferences observed switch to another point: the segment so far joins the window's sums."""
        if point.name not in self._index:
            raise TunableError(f"observe(): '{point.name}' is not one of this controller's operating points")
        self._fold()
        self._win_pt = point
        self._seg2 = 2 * max(1, self._window - self._wk)
        self._set_checks()

    def _fold(self) -> None:
        """The segment's inferences into the window's ratio sums (costs a budget uses) and the statistics."""
        buf = self._buf
        if not buf:
            return
        lats, ens = buf[0::2], buf[1::2]
        buf.clear()
        k = len(lats)
        self._wk += k
        p = self._win_pt
        n = k - self._mL
        if n:
            s = sum(lats)
            self._nL += n
            self._sumL += s
            if self._useL:
                _add_ratios(self._wL, lats, n, s, p.latency_s)
        n = k - self._mE
        if n:
            s = sum(ens)
            self._nE += n
            self._sumE += s
            if self._useE:
                _add_ratios(self._wE, ens, n, s, p.energy_j)
        self._mL = self._mE = 0

    def _flush(self, battery, alarm: bool = False) -> None:
        """Feeds the window's mean ratios to the filters and acts on what they say. The window starts short
        after a change and doubles while nothing happens (a flush costs far more than an inference's sums)."""
        self._fold()
        k, self._wk = self._wk, 0
        self._n += k
        fE, fL = self.fE, self.fL
        step = False
        w = self._wL
        if w[0]:
            step = _feed(fL, w[1], w[2], w[0])
            w[:] = (0, 0.0, 0.0)
        w = self._wE
        if w[0]:
            step = _feed(fE, w[1], w[2], w[0]) or step
            w[:] = (0, 0.0, 0.0)
        if self.goals:
            self._tick_rate(k)
            if battery is not None:
                self._battery(battery)
        self._since_change += k
        self._since_refresh += k
        if step or alarm:
            self._window = self.cfg.window_min
        elif self._window < self.cfg.window:
            self._window = min(2 * self._window, self.cfg.window)
        self._seg2 = 2 * self._window
        uE, uL = fE.u, fL.u
        if step or ((self._wE and uE > self._dE) or (self._wL and uL > self._dL)
                    or (self._wP and uE - uL > self._dP)
                    or fE.R > 1.25 * self._refRE or fL.R > 1.25 * self._refRL):
            self._headroom_run = 0
            self._replan("step detected" if step else "costs rose", upgrade_ok=False)
        elif uE < self._uE or uL < self._uL or uE - uL < self._uP:
            self._headroom_run += k
            if self._headroom_run >= self.cfg.upgrade_after and self._since_change >= self.cfg.min_dwell:
                self._headroom_run = 0
                self._replan("sustained headroom")
        else:
            self._headroom_run = 0
            if self._since_refresh >= self.cfg.refresh_every:
                self._replan("periodic refresh")
        if self._infeasible_since is not None:
            self._check_infeasible()
        self._set_checks()

    def _check_infeasible(self) -> None:
        """Warns when a budget lies below the cheapest point, once it has held for `upgrade_after`
        inferences (or at the start)."""
        since = self._infeasible_since
        if since is None or self._n - since < self.cfg.upgrade_after:
            return
        self._infeasible_since = None
        below = self._below_cheapest()
        if below:
            self._warn(below)

    def _energy_source_changed(self, source: str) -> None:
        if source not in (MEASURED, MODELED, "estimated"):
            raise TunableError(f"energy_source {source!r}: expected 'measured', 'estimated' or 'modeled'")
        if self.energy_source is not None:
            # a sensor's joules and the model's are different scales: learn the ratio afresh, and drop the
            # energies gathered so far (this window's earlier inferences count as without energy)
            self.fE.reset(1.0, self.cfg.noise_sd ** 2)
            buf = self._buf
            buf[1::2] = [0.0] * (len(buf) >> 1)
            self._mE = len(buf) >> 1
            self._wE[:] = (0, 0.0, 0.0)
            self._sumE, self._nE = 0.0, 0
            self._overE = 0
        self.energy_source = source

    def _tick_rate(self, k: int) -> None:
        if self._rate_fixed:
            return
        t = self.clock()
        if self._last_t is not None:
            dt = (t - self._last_t) / k
            self._interval = dt if self._interval == 0.0 else self._interval + 0.1 * (dt - self._interval)
        self._last_t = t

    def _battery(self, state) -> None:
        rate = self._rate_fixed or (1.0 / self._interval if self._interval > 0 else 0.0)
        now = self.clock()
        spare = 2 * self.cfg.td_cycle   # the last cycles may run more of the upper point than the mean
        if any([g.update(state, now, rate, spare) for g in self.goals if not state.name or g.battery == state.name]):
            self._replan("battery report", upgrade_ok=True)

    def update_battery(self, state) -> None:
        """A battery report outside observe() (e.g. from a polling thread's result)."""
        if self.goals:
            self._battery(state)

    # ---- reporting --------------------------------------------------------------------------------------
    @property
    def plan(self) -> Plan:
        return self._plan

    def explain(self) -> str:
        """Why the present choice, in one or two sentences (for the live view). The text changes only when
        the filters take a window, so it is built once per window, however often it is asked for."""
        if self._explained[0] == self._n and self._explained[1] is self._plan:
            return self._explained[2]
        fE, fL = self.fE, self.fL
        parts = [self._reason(self._plan) + f" (planned on: {self._plan_why})"]
        est = []
        if fE.n:
            est.append(f"energy x{fE.slowdown:.3g} of profile ({self.energy_source}, noise {100 * fE.noise_sd:.1f} %)")
        if fL.n:
            est.append(f"latency x{fL.slowdown:.3g} of profile (noise {100 * fL.noise_sd:.1f} %)")
        if est:
            parts.append("estimates: " + "; ".join(est))
        for g in self.goals:
            parts.append(g.describe())
        if self.energy_source is None and any(b.kind in (ENERGY, POWER) for b in self.budgets):
            parts.append("energy: profile's modeled values (nothing observed yet)")
        text = ". ".join(parts)
        self._explained = (self._n, self._plan, text)
        return text

    def summary(self) -> Summary:
        viol = {}
        for b in self.budgets:
            if isinstance(b, Budget) and b.per_inference:
                over = self._overE if b.kind == ENERGY else self._overL
                if b.limit == (self._limE if b.kind == ENERGY else self._limL):
                    viol[b.describe()] = over
        lats, ens = self._buf[0::2], self._buf[1::2]   # the window being gathered counts too
        n_e = self._nE + len(ens) - self._mE
        n_l = self._nL + len(lats) - self._mL
        sum_e, sum_l = self._sumE + sum(ens), self._sumL + sum(lats)
        return Summary(
            inferences=self._n + self._wk + len(lats),
            points={p.name: c + (self._blk - self._left if i == self._cur else 0)
                    for i, (p, c) in enumerate(zip(self.points, self._count))
                    if c or (i == self._cur and self._blk - self._left)},
            switches=self._switches, upgrades=self._upgrades, downgrades=self._downgrades,
            steps_detected={"energy": self.fE.steps, "latency": self.fL.steps},
            violations=viol, mean_energy_j=sum_e / n_e if n_e else None,
            mean_latency_s=sum_l / n_l if n_l else None,
            mean_power_w=sum_e / sum_l if n_e and sum_l and n_e == n_l else None,
            energy_source=self.energy_source, infeasible_plans=self._infeasible, warnings=list(self.warnings))


def _describe(b) -> str:
    return b.describe() if isinstance(b, Budget) else f"battery goal {b.text}"


def _fmt(b, value: float) -> str:
    return {ENERGY: format_energy, LATENCY: format_time, POWER: format_power}[b.kind](value)

