"""Raspberry Pi 5: power estimated from the PMIC's rail ADCs through `vcgencmd pmic_read_adc`.

The command prints one line per ADC channel, currents first then voltages:
      VDD_CORE_A current(7)=1.10674000A
      VDD_CORE_V volt(15)=0.72079600V
Rails are paired by name (X_A with X_V) and P = sum(V x I). The PMIC does not see the 5 V input path or USB
loads, so the sum is low; one public fit against a USB-C meter gives real_W = 1.1451 * sum + 0.5879. That fit
belongs to one board and setup, so this sensor's numbers are labelled estimated, never measured. Each
reading spawns a process (tens of ms), so it is sampled a few times a second and attributed only over
windows of two seconds or more.
"""
from __future__ import annotations

import os
import re

from .sensor import ESTIMATED, POWER, CommandRunner, Sensor
from .sysfs import SensorError, SensorPermissionError, read_device_model

COMMAND = ["vcgencmd", "pmic_read_adc"]
FIT_SLOPE = 1.1451
FIT_OFFSET_W = 0.5879
_LINE = re.compile(r"^\s*([A-Za-z0-9_]+?)_([AV])\s+(?:current|volt)\(\d+\)\s*=\s*"
                   r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([AV])\s*$")


def parse_pmic_read_adc(text: str) -> dict[str, tuple[float, float]]:
    """Rail -> (volts, amps) for every rail that has both a voltage and a current line."""
    volts: dict[str, float] = {}
    amps: dict[str, float] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m.group(2) != m.group(4):
            continue
        (amps if m.group(2) == "A" else volts)[m.group(1)] = float(m.group(3))
    return {rail: (volts[rail], amps[rail]) for rail in amps if rail in volts}


def rails_watts(text: str) -> dict[str, float]:
    return {rail: v * a for rail, (v, a) in parse_pmic_read_adc(text).items()}


class Pi5PmicSensor(Sensor):
    kind = ESTIMATED
    quantity = POWER
    name = "rpi5-pmic"
    scope = ("whole board, estimated: 1.1451 x (sum of PMIC rails V x I) + 0.5879 W, a public fit to a USB-C "
             "meter on one board; the PMIC misses the 5 V input and USB loads")
    unit = "V x A per rail"
    refresh_interval_s = 0.25
    resolution = None  # the ADCs' step is not documented

    def __init__(self, runner: CommandRunner | None = None):
        self.runner = runner or CommandRunner()
        self.source = " ".join(COMMAND)

    @property
    def min_window_s(self) -> float:
        return 2.0

    def read_rails(self) -> dict[str, float]:
        """Rail -> watts, as the PMIC reports them (no fit applied)."""
        try:
            rails = rails_watts(self.runner.run(COMMAND))
        except SensorError as e:
            if "VCHI" in str(e) or "vcio" in str(e) or "ermission" in str(e):
                raise SensorPermissionError(f"{e}; add the user to the 'video' group (sudo usermod -aG video "
                                            "$USER, then log in again) or run as root") from None
            raise
        if not rails:
            raise SensorError(f"{self.source}: no paired rail current/voltage lines in its output "
                              "(is this a Raspberry Pi 5 with current firmware?)")
        return rails

    def read_watts(self) -> float:
        return FIT_SLOPE * sum(self.read_rails().values()) + FIT_OFFSET_W


def discover(runner: CommandRunner | None = None, root: str | os.PathLike | None = None
             ) -> tuple[list[Sensor], list[str]]:
    runner = runner or CommandRunner()
    if not runner.which("vcgencmd"):
        return [], ["Raspberry Pi 5 PMIC: vcgencmd is not on PATH (not a Raspberry Pi, or its tools are "
                    "not installed)"]
    model = read_device_model(root)
    if model and "Raspberry Pi" in model and " 5" not in model and "500" not in model:
        return [], [f"Raspberry Pi PMIC: this is a {model}; pmic_read_adc exists on the Pi 5 only (a Pi 3/4 "
                    "has no current sensing: wire an INA219/INA226 and load its hwmon driver)"]
    sensor = Pi5PmicSensor(runner)
    try:
        sensor.read_rails()
    except SensorError as e:
        return [], [f"Raspberry Pi 5 PMIC: {e}"]
    return [sensor], []
