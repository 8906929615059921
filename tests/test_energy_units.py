"""tunable.units: the project's one parser and formatter of energy, power and time."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tunable.errors import TunableError
from tunable.units import (UnitError, format_energy, format_power, format_time, joules_to_watt_hours,
                           parse_energy, parse_power, parse_quantity, parse_time, watt_hours_to_joules)


@pytest.mark.parametrize("text, joules", [
    ("50mJ", 0.05), ("50 mJ", 0.05), (" 1.5J ", 1.5), ("300uJ", 3e-4), ("300\u00b5J", 3e-4), ("300\u03bcJ", 3e-4),
    ("2nJ", 2e-9), ("7pJ", 7e-12), ("1e-3J", 1e-3), (".5kJ", 500.0), ("2Wh", 7200.0), ("10mWh", 36.0),
    ("0J", 0.0),
])
def test_parse_energy(text, joules):
    assert parse_energy(text) == pytest.approx(joules)


def test_parse_power_and_time():
    assert parse_power("2W") == 2.0 and parse_power("500mW") == pytest.approx(0.5)
    assert parse_power("1.5kW") == 1500.0 and parse_power("20uW") == pytest.approx(2e-5)
    assert parse_time("30ms") == pytest.approx(0.03) and parse_time("2s") == 2.0
    assert parse_time("500us") == pytest.approx(5e-4) and parse_time("5min") == 300.0 and parse_time("1h") == 3600
    assert parse_quantity("2W") == (2.0, "power") and parse_quantity("30ms") == (pytest.approx(0.03), "time")


@pytest.mark.parametrize("text, says", [
    ("50 mJ/s", "a power, not an energy"),
    ("50 mJ/s", "50mJ/s is 50mW"),
    ("-3mJ", "negative"),
    ("50", "no unit"),
    ("2W", "is a power, expected an energy"),
    ("30ms", "is a time, expected an energy"),
    ("abc", "not a number"),
    ("5 furlongs", "unknown unit 'furlongs'"),
    ("1e400J", "not a finite number"),
    ("3 J/kg", "compound unit"),
    ("", "not a number"),
])
def test_parse_energy_rejects_with_a_clear_message(text, says):
    with pytest.raises(UnitError) as e:
        parse_energy(text)
    assert says in str(e.value)


def test_unit_error_is_a_tunable_error_and_a_value_error():
    assert issubclass(UnitError, TunableError) and issubclass(UnitError, ValueError)
    with pytest.raises(UnitError, match="expected a power"):
        parse_power("50mJ")
    with pytest.raises(UnitError, match="expected a time"):
        parse_time("2W")
    with pytest.raises(UnitError):
        parse_energy(5)  # type: ignore[arg-type]


def test_format():
    assert format_energy(0.0123) == "12.3 mJ"
    assert format_energy(0.0009996) == "1 mJ"        # not '1e+03 µJ'
    assert format_energy(4.2e-6) == "4.2 \u00b5J"
    assert format_energy(0) == "0 J" and format_energy(2500) == "2.5 kJ"
    assert format_power(2.5) == "2.5 W" and format_power(0.0005) == "500 \u00b5W"
    assert format_time(3e-5) == "30 \u00b5s" and format_time(300) == "5 min" and format_time(1.5) == "1.5 s"
    assert watt_hours_to_joules(1.0) == 3600.0 and joules_to_watt_hours(7200.0) == 2.0


@given(st.floats(min_value=1e-12, max_value=1e5, allow_nan=False))
def test_format_then_parse_round_trips(x):
    assert parse_energy(format_energy(x, digits=12)) == pytest.approx(x, rel=1e-9)
    assert parse_power(format_power(x, digits=12)) == pytest.approx(x, rel=1e-9)
    assert parse_time(format_time(x, digits=12)) == pytest.approx(x, rel=1e-9)
