"""Energy: measured by real sensors and modeled from counters, side by side.

Measured (what a sensor on this machine saw):
    discover() -> Discovery of sensors: RAPL (powercap), hwmon INA2xx / INA3221, power_supply batteries,
    the Raspberry Pi 5 PMIC (vcgencmd, estimated), Jetson tegrastats. Sampler(sensor) integrates any of them
    into joules on a background thread; measure_inferences() attributes joules to inferences.
Modeled (counters x a device profile; always available):
    load_profile(name) / active_profile(); EnergyModel(profile, model).joules(totals, latency_s) per inference;
    modeled_energy(stats, profile, model) -> EnergyBreakdown with joules per term; ModeledSensor.
Calibration: fit_windows() regresses measured energy on time and counters into a fitted Profile.

All sysfs access goes through sysfs_root() ('/' unless set_sysfs_root() or $TUNABLE_SYSFS_ROOT says
otherwise), so tunable.energy.testing.FakeSysfs trees stand in for hardware.
"""
from .battery import Battery, BatterySensor, BatteryState, list_batteries
from .calibrate import CalibrationWindow, FitResult, SweepPoint, fit_windows, run_sweep
from .discovery import Discovery, discover
from .hwmon import Ina2xxSensor, Ina3221Sensor
from .jetson import TegrastatsFeed, TegrastatsSensor, parse_tegrastats_line
from .measure import MeasuredEnergy, WindowPlan, measure_inferences, plan_windows
from .modeled import EnergyBreakdown, EnergyModel, ModeledSensor, model_weight_bytes, modeled_energy
from .profiles import (Profile, ProfileError, active_profile, detect_profile_name, list_profiles, load_profile,
                       parse_profile, profile_to_toml, save_profile, user_profiles_dir)
from .rapl import RaplSensor
from .rpi import Pi5PmicSensor, parse_pmic_read_adc
from .sampler import Mark, Sampler, Window
from .sensor import ENERGY, ESTIMATED, MEASURED, MODELED, POWER, CommandRunner, Probe, Sensor
from .sysfs import (SensorError, SensorGone, SensorPermissionError, SensorUnavailable, set_sysfs_root,
                    sysfs_root, sysfs_root_override)

__all__ = [
    "Sensor", "Probe", "CommandRunner", "MEASURED", "ESTIMATED", "MODELED", "ENERGY", "POWER",
    "SensorError", "SensorGone", "SensorPermissionError", "SensorUnavailable", "sysfs_root", "set_sysfs_root",
    "sysfs_root_override",
    "discover", "Discovery", "RaplSensor", "Ina2xxSensor", "Ina3221Sensor", "Battery", "BatteryState",
    "BatterySensor", "list_batteries", "Pi5PmicSensor", "parse_pmic_read_adc", "TegrastatsFeed",
    "TegrastatsSensor", "parse_tegrastats_line", "Sampler", "Mark", "Window", "MeasuredEnergy", "WindowPlan",
    "measure_inferences", "plan_windows", "Profile", "ProfileError", "load_profile", "parse_profile",
    "save_profile", "profile_to_toml", "list_profiles", "active_profile", "detect_profile_name",
    "user_profiles_dir", "EnergyModel", "EnergyBreakdown", "ModeledSensor", "modeled_energy",
    "model_weight_bytes", "CalibrationWindow", "FitResult", "SweepPoint", "fit_windows", "run_sweep",
]
