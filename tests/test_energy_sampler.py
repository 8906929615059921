"""The sampler against synthetic power traces with known integrals, and its failure handling."""
from __future__ import annotations

import math
import time

import pytest

from tunable.energy import ENERGY, Sampler, Sensor, SensorError
from tunable.energy.measure import measure_inferences, plan_windows
from tunable.energy.testing import SyntheticPowerSensor


class FakeClock:
    def __init__(self, t: float = 0.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def trace(t: float) -> float:
    """3 W plus a 2 W swing with a 0.7 s period plus a slow ramp."""
    return 3.0 + 2.0 * math.sin(2 * math.pi * t / 0.7) + 0.5 * t


def trace_integral(a: float, b: float) -> float:
    def F(t):
        return 3.0 * t - 2.0 * 0.7 / (2 * math.pi) * math.cos(2 * math.pi * t / 0.7) + 0.25 * t * t
    return F(b) - F(a)


def test_trapezoid_integral_of_known_trace_within_one_percent():
    clock = FakeClock()
    smp = Sampler(SyntheticPowerSensor(trace, clock), clock=clock)
    m = smp.mark()
    for i in range(1, 301):          # 3 s sampled every 10 ms (irregular steps are fine too)
        clock.t = i * 0.01
        smp.sample()
    w = smp.since(m)
    exact = trace_integral(0.0, 3.0)
    assert w.complete and w.seconds == pytest.approx(3.0)
    assert w.joules == pytest.approx(exact, rel=0.01)
    assert w.mean_watts == pytest.approx(exact / 3.0, rel=0.01)


def test_trapezoid_is_exact_for_a_linear_ramp_at_irregular_steps():
    clock = FakeClock()
    smp = Sampler(SyntheticPowerSensor(lambda t: 1.0 + 2.0 * t, clock), clock=clock)
    m = smp.mark()
    for t in (0.013, 0.2, 0.21, 0.5, 0.77, 1.0):
        clock.t = t
        smp.sample()
    assert smp.since(m).joules == pytest.approx(1.0 + 1.0)  # ∫0..1 (1 + 2t) dt


def test_background_thread_integrates_a_real_time_trace_within_one_percent():
    t0 = time.monotonic()
    sensor = SyntheticPowerSensor(lambda t: trace(t - t0), time.monotonic, refresh_interval_s=0.002)
    with Sampler(sensor) as smp:
        m = smp.mark()
        time.sleep(0.5)
        w = smp.since(m)
    exact = trace_integral(m.t - t0, m.t - t0 + w.seconds)
    assert w.complete and w.samples > 5
    assert w.joules == pytest.approx(exact, rel=0.01)


def test_window_context_manager():
    clock = FakeClock()
    smp = Sampler(SyntheticPowerSensor(lambda t: 4.0, clock), clock=clock)
    with smp.window() as w:
        clock.t = 2.5
        with pytest.raises(AttributeError, match="still open"):
            _ = w.joules
    assert w.joules == pytest.approx(10.0) and w.mean_watts == pytest.approx(4.0) and w.complete


def test_transient_error_is_skipped_and_integration_goes_on():
    clock = FakeClock()
    fails = {1.0}

    def watts(t):
        if t in fails:
            raise SensorError("i2c read timed out")
        return 2.0

    smp = Sampler(SyntheticPowerSensor(watts, clock), clock=clock)
    m = smp.mark()
    for t in (0.5, 1.0, 2.0):
        clock.t = t
        smp.sample()
    w = smp.since(m)
    assert w.complete and smp.alive and smp.last_transient_error == "i2c read timed out"
    assert w.joules == pytest.approx(4.0)


def test_sensor_disappearing_mid_run_is_reported_not_raised():
    clock = FakeClock()
    smp = Sampler(SyntheticPowerSensor(lambda t: 5.0, clock, gone_after=1.0), clock=clock)
    m = smp.mark()
    clock.t = 0.6
    smp.sample()
    clock.t = 1.5
    assert smp.sample() is False
    w = smp.since(m)
    assert not smp.alive and not w.complete and "unplugged" in w.error
    assert w.joules == pytest.approx(3.0) and w.seconds == pytest.approx(0.6)
    m2 = smp.mark()                      # later windows say so too
    assert not smp.since(m2).complete


def test_sampler_thread_survives_a_disappearing_sensor():
    gone_at = time.monotonic() + 0.05
    sensor = SyntheticPowerSensor(lambda t: 1.0, time.monotonic, refresh_interval_s=0.002, gone_after=gone_at)
    smp = Sampler(sensor).start()
    smp._thread.join(10)
    assert not smp.alive and "disappeared" in smp.error
    smp.stop()                           # idempotent, no exception


class Counter(Sensor):
    quantity = ENERGY
    name = "counter"

    def __init__(self, values, wrap):
        self.values = list(values)
        self.wrap_joules = wrap

    def read_joules(self):
        return self.values.pop(0)


def test_counter_deltas_and_wraps():
    smp = Sampler(Counter([90.0, 95.0, 3.0, 10.0], wrap=100.0), clock=FakeClock())
    m = smp.mark()
    smp.sample(), smp.sample()
    w = smp.since(m)
    assert w.joules == pytest.approx(5 + 8 + 7) and smp.wraps == 1


def test_plan_windows_batches_for_the_sensor_refresh():
    s = SyntheticPowerSensor(lambda t: 1.0, time.monotonic, refresh_interval_s=0.25, name="slow")
    p = plan_windows(10, 0.001, 1.0, s)
    assert p.windows == 1 and p.per_window == 1000 and "10 inference(s) asked for" in p.note and "slow" in p.note
    p = plan_windows(5000, 0.001, 1.0, s)
    assert p.windows == 5 and p.per_window == 1000 and p.inferences == 5000
    p = plan_windows(5500, 0.001, 1.0, s)
    assert p.windows == 5 and p.inferences >= 5500


def test_measure_inferences_gross_and_dynamic_on_a_synthetic_board():
    """A board drawing 2 W idle and 5 W while an inference runs; the fake clock advances 1 ms per inference.
    Gross = 5 mJ per inference, dynamic = 3 mJ."""
    clock = FakeClock()
    busy = {"on": False}
    sensor = SyntheticPowerSensor(lambda t: 5.0 if busy["on"] else 2.0, clock, refresh_interval_s=0.01)
    smp = Sampler(sensor, clock=clock)

    def sleep(s):
        clock.t += s
        smp.sample()

    def run_one():
        busy["on"] = True
        smp.sample()          # the power steps up at the start ...
        clock.t += 0.001
        smp.sample()
        busy["on"] = False    # ... and down at the end; the sampler sees both edges
        smp.sample()

    busy["on"] = False
    r = measure_inferences(run_one, sensor, 100, 0.001, window_s=0.05, idle_s=0.2, sampler=smp, sleep=sleep)
    assert r.complete and r.idle_watts == pytest.approx(2.0)
    assert r.plan.per_window == 50 and r.inferences == 100 and len(r.windows) == 2
    assert r.gross_joules == pytest.approx(5e-3, rel=1e-6)
    assert r.dynamic_joules == pytest.approx(3e-3, rel=1e-6)
    assert r.mean_watts == pytest.approx(5.0)


def test_measure_inferences_reports_a_sensor_lost_mid_run():
    clock = FakeClock()
    sensor = SyntheticPowerSensor(lambda t: 3.0, clock, gone_after=0.35)
    smp = Sampler(sensor, clock=clock)

    def sleep(s):
        clock.t += s

    def run_one():
        clock.t += 0.001

    r = measure_inferences(run_one, sensor, 300, 0.001, window_s=0.1, idle_s=0.1, sampler=smp, sleep=sleep)
    assert not r.complete and "unplugged" in r.error
    assert len(r.windows) == 2 and r.inferences == 200      # the windows finished before it went
    assert r.gross_joules == pytest.approx(3e-3)
