"""The controller against a simulated plant: profile costs x a slowdown with step changes x 5 % log-normal
noise per inference, energy and latency drawn independently. Checks the issue's numbers after convergence:
the budget holds for >= 95 % of inferences and on average, convergence within 20 inferences of a step,
accuracy within 1 point of the best static point that meets the budget, a few switches per 100 inferences.
"""
from __future__ import annotations

import math
import random
import warnings

import numpy as np
import pytest

from governor.budgets import BatteryGoal, parse_budgets
from governor.controller import Controller, GovernorWarning
from governor.points import OperatingPoint

NOISE = 0.05          # log-normal sd of each inference's energy and latency
STEP_AT = (300, 600)  # inferences where the slowdown steps
SETTLE = 20           # the convergence bound, in inferences after a step


def front16() -> list[OperatingPoint]:
    """A dense front like one from combined knobs: 99 % to 90 % top-1, energy 100 to 30 mJ."""
    acc = np.linspace(0.990, 0.900, 16)
    energy = np.geomspace(0.100, 0.030, 16)
    latency = np.geomspace(0.020, 0.0075, 16)
    return [OperatingPoint(f"p{i}", {"drowsy": round(i / 20, 2)}, float(a), float(e), float(l), 400_000 - i * 15_000)
            for i, (a, e, l) in enumerate(zip(acc, energy, latency))]


class Plant:
    """Runs a chosen point: its profile costs x slowdown(t) x log-normal noise; a simulated clock advances by
    each inference's latency plus an optional idle gap per frame."""

    def __init__(self, seed: int, slowdowns=((0, 1.0), (300, 1.5), (600, 1.0)), latency_slowdowns=None,
                 noise: float = NOISE, frame_gap_s: float = 0.0):
        self.rng = random.Random(seed)
        self.slowdowns = slowdowns
        self.lat_slowdowns = latency_slowdowns or slowdowns
        self.noise = noise
        self.gap = frame_gap_s
        self.t = 0.0
        self.i = 0

    @staticmethod
    def _at(table, i: int) -> float:
        return [f for t0, f in table if i >= t0][-1]

    def slowdown(self, i: int) -> float:
        return self._at(self.slowdowns, i)

    def run(self, p: OperatingPoint) -> tuple[float, float]:
        e = p.energy_j * self.slowdown(self.i) * math.exp(self.rng.gauss(0.0, self.noise))
        lat = p.latency_s * self._at(self.lat_slowdowns, self.i) * math.exp(self.rng.gauss(0.0, self.noise))
        self.i += 1
        self.t += lat + self.gap
        return lat, e

    def clock(self) -> float:
        return self.t


def drive(ctl: Controller, plant: Plant, n: int, **observe_kw) -> list[tuple[OperatingPoint, float, float]]:
    rows = []
    for _ in range(n):
        p = ctl.choose()
        lat, e = plant.run(p)
        ctl.observe(p, lat, e, "measured", **observe_kw)
        rows.append((p, lat, e))
    return rows


def best_static(front, limit: float, slowdown: float, cost: str = "energy_j") -> OperatingPoint:
    """The most accurate point that meets the budget by itself in this plant: at most 5 % of its inferences
    over the limit, and its mean under it (exact, from the log-normal)."""
    ok = []
    for p in front:
        c = getattr(p, cost) * slowdown
        over = 0.5 * math.erfc(math.log(limit / c) / (NOISE * math.sqrt(2)))
        if over <= 0.05 and c * math.exp(NOISE ** 2 / 2) <= limit:
            ok.append(p)
    return max(ok, key=lambda p: p.accuracy)


def segments(n: int):
    edges = (0, *STEP_AT, n)
    return [(a, b) for a, b in zip(edges, edges[1:])]


def switches(rows) -> int:
    return sum(1 for a, b in zip(rows, rows[1:]) if a[0] is not b[0])


@pytest.mark.parametrize("budget_mj", [52, 57, 63, 70, 78, 86, 95])
@pytest.mark.parametrize("seed", [1, 2])
def test_energy_budget_after_convergence(budget_mj, seed):
    front = front16()
    limit = budget_mj / 1000
    plant = Plant(seed)
    ctl = Controller(front, parse_budgets(f"{budget_mj}mJ"), clock=plant.clock)
    n = 900
    rows = drive(ctl, plant, n)
    settled = []
    for a, b in segments(n):
        seg = rows[a + SETTLE:b]
        settled += seg
        s = plant.slowdown(a)
        energies = [e for _, _, e in seg]
        assert np.mean(energies) <= limit, f"segment from {a}: mean {np.mean(energies):.4f} J over {limit} J"
        acc = np.mean([p.accuracy for p, _, _ in seg])
        best = best_static(front, limit, s)
        assert acc >= best.accuracy - 0.01, (f"segment from {a} (slowdown {s}): accuracy {acc:.4f}, best static "
                                             f"point {best.name} has {best.accuracy:.4f}")
        per100 = 100 * switches(seg) / len(seg)
        assert per100 <= 5, f"segment from {a}: {per100:.1f} switches per 100 inferences"
    within = np.mean([e <= limit for _, _, e in settled])
    assert within >= 0.95, f"only {100 * within:.1f} % of settled inferences within {budget_mj} mJ"
    summary = ctl.summary()
    assert summary.steps_detected["energy"] >= 2   # both steps were seen as steps
    assert summary.inferences == n


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_estimate_converges_within_20_inferences_of_a_step(seed):
    front = front16()
    plant = Plant(seed)
    ctl = Controller(front, parse_budgets("70mJ"), clock=plant.clock)
    for t0 in STEP_AT:
        drive(ctl, plant, t0 - plant.i)       # up to the step
        drive(ctl, plant, SETTLE)             # and 20 inferences past it
        true = plant.slowdown(t0)
        assert abs(ctl.fE.slowdown / true - 1) < 0.05, (f"{SETTLE} inferences after the step at {t0} the energy "
                                                      f"slowdown estimate is {ctl.fE.slowdown:.3f}, truth {true}")
        # the plan is the settled one: its lower point meets the budget by itself
        assert ctl.points[ctl.plan.lo].energy_j * true < 0.070


def test_downgrade_is_immediate_on_a_step_up():
    front = front16()
    plant = Plant(7, slowdowns=((0, 1.0), (200, 1.5)))
    ctl = Controller(front, parse_budgets("70mJ"), clock=plant.clock)
    drive(ctl, plant, 200)
    before = ctl.points.index(ctl.choose())
    rows = drive(ctl, plant, 3)
    # within 3 inferences of the step, the point running is a cheaper one
    assert ctl.points.index(rows[-1][0]) < before
    assert ctl.summary().downgrades >= 1


def test_latency_budget_is_a_deadline():
    front = front16()
    plant = Plant(11, slowdowns=((0, 1.0),), latency_slowdowns=((0, 1.0), (300, 1.4)))
    ctl = Controller(front, parse_budgets("14ms"), clock=plant.clock)
    rows = drive(ctl, plant, 600)
    settled = rows[SETTLE:300] + rows[300 + SETTLE:]
    assert np.mean([lat <= 0.014 for _, lat, _ in settled]) >= 0.95
    for a, b, s in ((0, 300, 1.0), (300, 600, 1.4)):
        seg = rows[a + SETTLE:b]
        assert np.mean([lat for _, lat, _ in seg]) <= 0.014
        best = best_static(front, 0.014, s, "latency_s")
        assert np.mean([p.accuracy for p, _, _ in seg]) >= best.accuracy - 0.01
    assert "latency" in ctl.explain()


def test_energy_and_latency_budgets_together():
    front = front16()
    # latency suffers a step, energy does not: the latency budget binds after it
    plant = Plant(12, slowdowns=((0, 1.0),), latency_slowdowns=((0, 1.0), (300, 1.5)))
    ctl = Controller(front, parse_budgets(["80mJ", "16ms"]), clock=plant.clock)
    rows = drive(ctl, plant, 600)
    settled = rows[SETTLE:300] + rows[300 + SETTLE:]
    assert np.mean([e <= 0.080 for _, _, e in settled]) >= 0.95
    assert np.mean([lat <= 0.016 for _, lat, _ in settled]) >= 0.95
    assert np.mean([e for _, _, e in settled]) <= 0.080
    assert np.mean([lat for _, lat, _ in rows[300 + SETTLE:]]) <= 0.016
    # before the step energy binds; after it, latency does
    assert ctl.plan.binding.kind == "latency"


def test_power_budget_holds_on_average():
    front = front16()
    plant = Plant(13)
    watts = 4.4   # between the points' own E/L (5.0 W at the top, 4.0 W at the bottom)
    ctl = Controller(front, parse_budgets("4.4W"), clock=plant.clock)
    rows = drive(ctl, plant, 900)
    for a, b in segments(900):
        seg = rows[a + SETTLE:b]
        power = sum(e for _, _, e in seg) / sum(lat for _, lat, _ in seg)
        assert power <= watts, f"segment from {a}: {power:.3f} W over {watts} W"
    # the slowdown scales energy and latency alike, so power per point is unchanged: no panic at the steps
    assert ctl.summary().switches_per_100() <= 5


def test_budget_below_the_cheapest_point_warns_and_runs_the_cheapest():
    front = front16()
    with pytest.warns(GovernorWarning, match="energy 10 mJ is below the cheapest operating point, 'p15' "
                                             r"\(expected 30 mJ\): running it anyway"):
        ctl = Controller(front, parse_budgets("10mJ"))
    assert ctl.choose() is front[-1]
    assert "no operating point meets" in ctl.explain()
    assert ctl.summary().infeasible_plans == 1


def test_infeasible_during_a_step_then_recovers():
    front = front16()
    plant = Plant(21, slowdowns=((0, 1.0), (200, 2.0), (400, 1.0)))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        ctl = Controller(front, parse_budgets("50mJ"), clock=plant.clock)
        rows = drive(ctl, plant, 600)
    assert any("below the cheapest" in str(x.message) for x in w)           # said during the step
    assert all(p is front[-1] for p, _, _ in rows[200 + SETTLE:400])          # the cheapest, meanwhile
    tail = rows[400 + SETTLE:]
    assert np.mean([e for _, _, e in tail]) <= 0.050
    assert np.mean([p.accuracy for p, _, _ in tail]) >= best_static(front, 0.050, 1.0).accuracy - 0.01


def test_modeled_energy_is_said_and_a_sensor_replaces_it():
    front = front16()
    ctl = Controller(front, parse_budgets("60mJ"))
    for _ in range(50):
        p = ctl.choose()
        ctl.observe(p, p.latency_s, p.energy_j, "modeled")
    assert ctl.energy_source == "modeled" and "(modeled" in ctl.explain()
    # a sensor in other units (gross board energy, 20x the model's): the ratio is learned afresh
    with pytest.warns(GovernorWarning, match="energy 60 mJ is below the cheapest operating point"):
        for _ in range(200):
            p = ctl.choose()
            ctl.observe(p, p.latency_s, 20 * p.energy_j, "measured")
    assert ctl.energy_source == "measured" and "(measured" in ctl.explain()
    assert abs(ctl.fE.slowdown / 20 - 1) < 0.05
    assert ctl.choose() is front[-1]           # 60 mJ is below every point at 20x


def test_missing_quantities_are_neither_costs_nor_violations():
    """None (not known) for latency or energy: the summary averages the known ones only, over-budget counts
    see known values only, and the estimates still follow the plant."""
    front = front16()
    plant = Plant(5, slowdowns=((0, 1.3),))
    ctl = Controller(front, parse_budgets("57mJ,15ms"), clock=plant.clock)
    known_e, known_l = [], []
    for i in range(700):
        p = ctl.choose()
        lat, e = plant.run(p)
        lat = None if i % 7 == 3 else lat
        e = None if i % 5 == 1 else e
        ctl.observe(p, lat, e, "measured")
        if lat is not None:
            known_l.append(lat)
        if e is not None:
            known_e.append(e)
    s = ctl.summary()
    assert s.inferences == 700
    assert s.mean_energy_j == pytest.approx(sum(known_e) / len(known_e), rel=1e-9)
    assert s.mean_latency_s == pytest.approx(sum(known_l) / len(known_l), rel=1e-9)
    assert abs(ctl.fE.slowdown / 1.3 - 1) < 0.05 and abs(ctl.fL.slowdown / 1.3 - 1) < 0.05
    assert sum(s.violations.values()) <= 0.06 * 700


def test_energy_source_change_mid_window_drops_the_earlier_energies():
    front = front16()
    ctl = Controller(front, parse_budgets("60mJ"))
    for _ in range(10):                                   # fewer than a window: still gathered
        p = ctl.choose()
        ctl.observe(p, p.latency_s, p.energy_j, "modeled")
    p = ctl.choose()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GovernorWarning)
        ctl.observe(p, p.latency_s, 3 * p.energy_j, "measured")
    s = ctl.summary()
    assert s.inferences == 11 and s.energy_source == "measured"
    assert s.mean_energy_j == pytest.approx(3 * p.energy_j)   # the modeled joules are not mixed in


def test_no_budget_runs_the_most_accurate_point():
    front = front16()
    ctl = Controller(front)
    assert ctl.choose() is front[0]
    assert "no budget" in ctl.explain()


class _Battery:
    """A battery draining through a fake power_supply tree."""

    def __init__(self, tree, joules: float):
        self.tree = tree
        self.joules = joules
        self.write()

    def write(self, status: str = "Discharging"):
        from tunable.units import MICRO, SECONDS_PER_HOUR
        uwh = int(self.joules / (MICRO * SECONDS_PER_HOUR))
        self.tree.battery("BAT0", status=status, capacity=max(0, min(100, round(100 * self.joules / 4000))),
                          energy_now=uwh, energy_full=int(4000 / (MICRO * SECONDS_PER_HOUR)), power_now=1_000_000)


def test_battery_goal_lasts_until_the_deadline(tmp_path):
    from tunable.energy import Battery
    from tunable.energy.testing import FakeSysfs
    tree = FakeSysfs(tmp_path)
    front = front16()
    frame_gap = 0.05                         # a camera at ~15 frames/s: inferences are not back to back
    plant = Plant(31, slowdowns=((0, 1.0), (6000, 1.3)), frame_gap_s=frame_gap)
    hours = 0.25                             # 15 simulated minutes
    # the battery holds ~60 mJ per frame for 15 minutes: the goal decides the budget, and the step at
    # inference 6000 makes it tighter
    frames = hours * 3600 / (frame_gap + 0.013)
    bat = _Battery(tree, joules=0.060 * frames)
    battery = Battery(tree.path("/sys/class/power_supply/BAT0"))
    goal = BatteryGoal.for_hours("BAT0", hours, now=plant.clock())
    ctl = Controller(front, [goal], clock=plant.clock)
    next_report = 0.0
    limits = []
    while plant.clock() < hours * 3600 and bat.joules > 0:
        p = ctl.choose()
        lat, e = plant.run(p)
        bat.joules -= e
        report = None
        if plant.clock() >= next_report:     # the driver refreshes every 5 s
            bat.write()
            report = battery.read()
            next_report = plant.clock() + 5.0
        ctl.observe(p, lat, e, "measured", battery=report)
        if report is not None:
            limits.append(goal.limit)
    assert plant.clock() >= hours * 3600, f"the battery ran out after {plant.clock() / 60:.1f} min"
    assert bat.joules >= 0
    assert bat.joules < 0.05 * 0.060 * frames, "the goal left more than 5 % of the battery unused"
    assert len(set(limits)) > 10              # recomputed as the battery reported
    assert "battery goal BAT0 for 0.25 h" in ctl.explain()


def test_battery_goal_is_no_constraint_while_charging(tmp_path):
    from tunable.energy import Battery
    from tunable.energy.testing import FakeSysfs
    tree = FakeSysfs(tmp_path)
    tree.battery("BAT0", status="Charging", capacity=50, energy_now=10_000)
    goal = BatteryGoal.for_hours("BAT0", 8, now=0.0)
    ctl = Controller(front16(), [goal], clock=lambda: 1.0)
    ctl.update_battery(Battery(tree.path("/sys/class/power_supply/BAT0")).read())
    assert math.isinf(goal.limit) and "charging" in goal.reason
    assert ctl.choose().name == "p0"
