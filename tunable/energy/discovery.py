"""What this machine can measure: every backend asked in turn, with notes on what is absent and why."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import battery, hwmon, jetson, rapl, rpi
from .hwmon import Ina2xxSensor, Ina3221Sensor
from .sensor import ESTIMATED, MEASURED, CommandRunner, Probe, Sensor
from .sysfs import SensorUnavailable

BACKENDS = ("rapl", "hwmon", "battery", "rpi5", "jetson")


def _rank(s: Sensor) -> tuple[int, str]:
    """Which sensor to use when none is named: the one that covers most of the device, most directly."""
    if isinstance(s, Ina3221Sensor):
        r = 0 if s.is_total else 6
    elif isinstance(s, jetson.TegrastatsSensor):
        r = 1 if s.rail in jetson.TOTAL_RAILS else 7
    elif isinstance(s, Ina2xxSensor):
        r = 2
    elif isinstance(s, rapl.RaplSensor):
        r = 3 if s.name.endswith(":psys") else 4 if ":package-" in s.name and s.name.count(":") == 1 else 8
    elif s.kind == ESTIMATED:
        r = 5
    elif isinstance(s, battery.BatterySensor):
        r = 9
    else:
        r = 10
    return r, s.name


@dataclass
class Discovery:
    sensors: list[Sensor] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # sources looked for and not found, with the reason
    _probes: dict[str, Probe] = field(default_factory=dict)

    def names(self) -> list[str]:
        return [s.name for s in self.sensors]

    def get(self, name: str) -> Sensor:
        for s in self.sensors:
            if s.name == name:
                return s
        matches = [s for s in self.sensors if s.name.split(":", 1)[-1] == name or s.name.startswith(name + ":")]
        if len(matches) == 1:
            return matches[0]
        have = ", ".join(self.names()) or "none"
        why = "; ".join(self.notes)
        raise SensorUnavailable(f"no sensor named '{name}' on this machine (sensors: {have})"
                                + (f"; {why}" if why and not self.sensors else ""))

    def probe(self, s: Sensor) -> Probe:
        if s.name not in self._probes:
            self._probes[s.name] = s.probe()
        return self._probes[s.name]

    def best(self) -> Sensor | None:
        """The preferred readable measured (or estimated) sensor, None when there is none."""
        for s in sorted(self.sensors, key=_rank):
            if s.kind in (MEASURED, ESTIMATED) and self.probe(s).readable:
                return s
        return None

    def why_none(self) -> str:
        """Why best() found nothing, in one paragraph."""
        reasons = [f"{s.name}: {self.probe(s).reason}" for s in self.sensors if not self.probe(s).readable]
        return "; ".join(reasons + self.notes) or "no energy sensor found"

    def close(self) -> None:
        for s in self.sensors:
            s.close()


def discover(root: str | os.PathLike | None = None, runner: CommandRunner | None = None,
             backends: tuple[str, ...] = BACKENDS) -> Discovery:
    """Every sensor the backends find under the sysfs root (and through the runner's tools)."""
    runner = runner or CommandRunner()
    d = Discovery()
    found = {
        "rapl": lambda: rapl.discover(root),
        "hwmon": lambda: hwmon.discover(root),
        "battery": lambda: battery.discover(root),
        "rpi5": lambda: rpi.discover(runner, root),
        "jetson": lambda: jetson.discover(runner),
    }
    for b in backends:
        sensors, notes = found[b]()
        d.sensors += sensors
        d.notes += notes
    return d
