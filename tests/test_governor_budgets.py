"""Budgets: parsing (with the issue's malformed examples), battery-life goals, operating points and profiles."""
from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from governor.budgets import ENERGY, LATENCY, POWER, BatteryGoal, BudgetError, parse_budget, parse_budgets
from governor.points import OperatingPoint, ProfileError, default_front, load_profile, pareto_front
from tunable.energy import BatteryState


@pytest.mark.parametrize("text, kind, limit", [
    ("50mJ", ENERGY, 0.05), ("1.5J", ENERGY, 1.5), ("300uJ", ENERGY, 300e-6), ("300µJ", ENERGY, 300e-6),
    ("30ms", LATENCY, 0.03), ("2s", LATENCY, 2.0), ("500us", LATENCY, 500e-6),
    ("2W", POWER, 2.0), ("750mW", POWER, 0.75), (" 50 mJ ", ENERGY, 0.05),
])
def test_budgets_parse(text, kind, limit):
    b = parse_budget(text)
    assert b.kind == kind and math.isclose(b.limit, limit)
    assert b.per_inference == (kind != POWER)


@pytest.mark.parametrize("text, message", [
    ("50 mJ/s", r"'50 mJ/s' is energy per time, i.e. a power.*50mJ/s is 50mW"),
    ("-3mJ", r"'-3mJ' is negative"),
    ("0mJ", r"budget '0mJ' must be greater than zero"),
    ("50", r"'50' has no unit"),
    ("50 furlongs", r"unknown unit 'furlongs'"),
    ("fast", r"'fast' is not a number with a unit"),
    ("", r"empty budget"),
    ("nanmJ", r"not a number"),
])
def test_malformed_budgets_say_why(text, message):
    with pytest.raises(BudgetError, match=message):
        parse_budget(text)


def test_several_budgets_at_once():
    bs = parse_budgets(["50mJ,30ms", "2W"])
    assert [b.kind for b in bs] == [ENERGY, LATENCY, POWER]
    with pytest.raises(BudgetError, match="two energy budgets given \\('50mJ' and '40mJ'\\)"):
        parse_budgets(["50mJ", "40mJ"])


def test_power_budget_with_a_frame_period():
    b = parse_budget("2W", period_s=1 / 30)
    assert b.period_s == pytest.approx(1 / 30) and not b.per_inference
    assert parse_budget("50mJ", period_s=0.1).period_s is None   # a period only matters to power


def _state(status="Discharging", joules=3600.0):
    return BatteryState("BAT0", status, 50.0, joules, 7200.0, 2.0, 12.0, 0.2)


def test_battery_goal_turns_remaining_energy_into_a_budget_per_inference():
    goal = BatteryGoal.for_hours("BAT0", 2, now=0.0)
    assert goal.deadline == 7200.0 and math.isinf(goal.limit)
    assert goal.update(_state(joules=3600.0), now=0.0, rate_hz=10.0)
    assert goal.limit == pytest.approx(3600.0 / (7200 * 10))          # 50 mJ per inference
    goal.update(_state(joules=900.0), now=5400.0, rate_hz=10.0)         # 30 min left, 900 J
    assert goal.limit == pytest.approx(900.0 / (1800 * 10))
    assert not goal.update(_state(joules=900.0), now=5400.0, rate_hz=10.0)  # nothing changed
    assert "battery goal BAT0 for 2 h: 50 mJ per inference" in goal.describe()


def test_battery_goal_constrains_nothing_while_charging_or_after_the_deadline():
    goal = BatteryGoal.for_hours("BAT0", 1, now=0.0)
    goal.update(_state(status="Charging"), now=10.0, rate_hz=10.0)
    assert math.isinf(goal.limit) and "charging" in goal.reason
    goal.update(_state(), now=4000.0, rate_hz=10.0)
    assert math.isinf(goal.limit) and "goal time reached" in goal.reason


def test_battery_goal_needs_the_remaining_energy():
    goal = BatteryGoal.for_hours("BAT0", 1, now=0.0)
    with pytest.raises(BudgetError, match="reports neither energy_now nor charge_now"):
        goal.update(_state(joules=None), now=1.0, rate_hz=10.0)


def test_battery_goal_until_a_time_of_day():
    wall = dt.datetime(2026, 5, 1, 17, 0)
    goal = BatteryGoal.until("BAT0", "18:30", now=100.0, wall=wall)
    assert goal.deadline == pytest.approx(100.0 + 1.5 * 3600)
    late = BatteryGoal.until("BAT0", "08:00", now=0.0, wall=wall)       # tomorrow morning
    assert late.deadline == pytest.approx(15 * 3600)
    for bad in ("25:00", "18h30", "", "7"):
        with pytest.raises(BudgetError, match="expected a time of day HH:MM"):
            BatteryGoal.until("BAT0", bad, now=0.0, wall=wall)
    for bad in ("-1", "0", "soon"):
        with pytest.raises(BudgetError, match="--hours"):
            BatteryGoal.for_hours("BAT0", bad, now=0.0)


# ---- operating points and profiles ---------------------------------------------------------------------
def _profile(tmp_path, data) -> str:
    p = tmp_path / "profile.json"
    p.write_text(json.dumps(data))
    return str(p)


POINTS = [
    {"name": "off", "knobs": {}, "accuracy": 0.99, "energy_j": 0.012, "latency_s": 0.0021, "macs": 416520},
    {"name": "drowsy-0.2", "knobs": {"drowsy": 0.2}, "accuracy": 0.985, "energy_j": 0.010, "latency_s": 0.0019,
     "macs": 350000},
    {"name": "bad", "knobs": {"drowsy": 0.3}, "accuracy": 0.95, "energy_j": 0.011, "latency_s": 0.0020,
     "macs": 340000},
    {"name": "aip", "knobs": {"aip": 0.125}, "accuracy": 0.98, "energy_j": 0.008, "latency_s": 0.0022,
     "macs": 300000},
]


def test_profile_loads_and_its_front_is_used(tmp_path):
    prof = load_profile(_profile(tmp_path, {"model": "lenet5.tflite", "points": POINTS,
                                            "front": ["off", "drowsy-0.2", "aip"]}))
    assert prof.model == "lenet5.tflite"
    assert [p.name for p in prof.front] == ["aip", "drowsy-0.2", "off"]       # cheapest first
    assert prof.point("bad").knobs == {"drowsy": 0.3}
    # without "front", the Pareto front is computed: 'bad' is dominated by 'drowsy-0.2'
    prof = load_profile(_profile(tmp_path, {"model": "m", "points": POINTS}))
    assert "bad" not in [p.name for p in prof.front]
    assert [p.name for p in pareto_front(prof.points, ("energy_j",))] == ["aip", "drowsy-0.2", "off"]


@pytest.mark.parametrize("data, message", [
    ({"points": []}, "'points' must be a non-empty list"),
    ({"points": [{"name": "a", "accuracy": 99.0, "energy_j": 1, "latency_s": 1}]},
     r"points\[0\] \('a'\)\.accuracy: must lie in 0\.\.1 \(a fraction, not a percentage\), got 99\.0"),
    ({"points": [{"name": "a", "accuracy": 0.9, "energy_j": -1, "latency_s": 1}]},
     r"points\[0\] \('a'\)\.energy_j: must be > 0"),
    ({"points": [{"name": "a", "accuracy": 0.9, "latency_s": 1}]}, r"energy_j: expected a finite number, got None"),
    ({"points": [POINTS[0], POINTS[0]]}, "duplicate point name 'off'"),
    ({"points": POINTS, "front": ["off", "nope"]}, "'front' names unknown point\\(s\\): nope"),
])
def test_broken_profiles_say_where(tmp_path, data, message):
    with pytest.raises(ProfileError, match=message):
        load_profile(_profile(tmp_path, data))


def test_profile_that_is_not_json(tmp_path):
    p = tmp_path / "profile.json"
    p.write_text('{"points": [\n  {"name": }\n]}')
    with pytest.raises(ProfileError, match=r"profile.json:2:\d+: not valid JSON"):
        load_profile(p)


def test_default_front_without_a_profile():
    # knob settings from least to most aggressive, with modeled costs and no measured accuracy
    pts = [OperatingPoint("off", {}, None, 0.012, 0.002), OperatingPoint("d0.1", {"drowsy": 0.1}, None, 0.011, 0.002),
           OperatingPoint("d0.2", {"drowsy": 0.2}, None, 0.0115, 0.002),   # saves nothing over d0.1: dropped
           OperatingPoint("d0.3", {"drowsy": 0.3}, None, 0.009, 0.002)]
    front = default_front(pts)
    assert [p.name for p in front] == ["d0.3", "d0.1", "off"]
    assert [p.name for p in default_front([p.to_dict() for p in pts])] == ["d0.3", "d0.1", "off"]
    with pytest.raises(ProfileError, match="no operating points"):
        default_front([])
