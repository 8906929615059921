"""Profiles and modeled energy: the modeled sensor equals counters x profile, term by term."""
from __future__ import annotations

import numpy as np
import pytest

import tunable
from tunable import planspec
from tunable.energy import (EnergyModel, ModeledSensor, Profile, ProfileError, detect_profile_name,
                            list_profiles, load_profile, model_weight_bytes, modeled_energy, parse_profile,
                            profile_to_toml, save_profile)
from tunable.energy.profiles import dumps_toml
from tunable.energy.testing import FakeSysfs
from tunable.paths import shared_dir

SHIPPED = ["generic-x86", "horowitz45", "jetson-orin-nano", "rpi4", "rpi5"]


@pytest.fixture
def user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNABLE_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config" / "profiles"


@pytest.fixture(scope="module")
def ad01():
    m = tunable.load(shared_dir() / "models" / "mlperf-tiny" / "ad01_int8.tflite")
    s = m.session()
    t = m.inputs[0]
    s.run(np.random.default_rng(0).integers(-128, 128, t.shape).astype(t.dtype))
    return m, s.stats


def test_shipped_profiles_load_and_say_where_their_numbers_come_from():
    names = [n for n, where in list_profiles() if where == "shipped"]
    assert names == SHIPPED
    for n in names:
        p = load_profile(n)
        assert p.name == n and p.source and p.description
        assert not p.fitted and "not fitted on a device" in p.label()
        assert set(p.pj_per_count) == set(planspec.COUNTERS)
    for board in ("rpi4", "rpi5", "jetson-orin-nano", "generic-x86"):
        assert load_profile(board).base_watts > 0


def test_horowitz45_constants_are_the_papers():
    p = load_profile("horowitz45")
    pj = p.pj_per_count
    assert pj["mults"] == 0.2 and pj["adds"] == 0.1          # 8-bit mult, 32-bit add
    assert pj["requant_ops"] == 3.1                          # 32-bit mult
    assert pj["lut_lookups"] == pytest.approx(5.0 / 2)       # a 16-bit entry of a 32-bit 5 pJ SRAM read
    assert pj["lut_lookups"] > 0                             # never free
    assert p.weight_bytes_dram_pj == 160.0                   # 640 pJ per 32-bit DRAM read
    assert pj["weight_bytes"] == pj["act_bytes_in"] == pj["act_bytes_out"] == 2.5  # 20 pJ per 64-bit read
    assert p.base_watts == 0 and p.active_watts == 0


def expected_joules(profile: Profile, totals, latency_s, weights_dram: bool) -> float:
    e = (profile.base_watts + profile.active_watts) * latency_s
    for c in planspec.COUNTERS:
        pj = profile.pj_per_count.get(c, 0.0)
        if c == "weight_bytes" and weights_dram:
            pj = profile.weight_bytes_dram_pj
        e += totals[c] * pj * 1e-12
    return e


@pytest.mark.parametrize("name", SHIPPED)
def test_modeled_sensor_equals_counters_times_profile(ad01, name):
    m, stats = ad01
    p = load_profile(name)
    dram = model_weight_bytes(m) > p.cache_bytes
    sensor = ModeledSensor(p, m)
    e1 = sensor.record(stats)
    e2 = sensor.record(stats.totals, latency_s=0.002)
    want1 = expected_joules(p, stats.totals, stats.latency_s, dram)
    want2 = expected_joules(p, stats.totals, 0.002, dram)
    assert e1 == pytest.approx(want1, rel=1e-12) and e2 == pytest.approx(want2, rel=1e-12)
    assert sensor.read_joules() == pytest.approx(want1 + want2, rel=1e-12)
    assert sensor.kind == "modeled" and sensor.inferences == 2 and sensor.probe().readable


def test_breakdown_terms_on_a_real_model(ad01):
    m, stats = ad01
    p = load_profile("horowitz45")
    t = stats.totals
    b = modeled_energy(stats, p, m)
    assert model_weight_bytes(m) == 270_880 and b.weights_in == "dram"   # 270 kB > 32 kB cache
    # plain FC layers: every MAC is one 8-bit multiply and one 32-bit add
    assert t["mults"] == t["adds"] == t["macs"] == m.macs
    assert b.terms_joules["mults"] + b.terms_joules["adds"] == pytest.approx(m.macs * 0.3e-12)
    assert b.terms_joules["weight_bytes"] == pytest.approx(t["weight_bytes"] * 160e-12)
    assert b.terms_joules["requant_ops"] == pytest.approx(t["requant_ops"] * 3.1e-12)
    assert b.total_joules == pytest.approx(EnergyModel(p, m).joules(t, stats.latency_s), rel=1e-12)
    assert sum(b.shares().values()) == pytest.approx(1.0)
    assert b.dynamic_joules == b.total_joules and "horowitz45" in b.label() and "modeled" in b.label()


def test_weights_in_cache_or_dram_by_the_profiles_cache_size():
    p = load_profile("horowitz45")
    totals = dict.fromkeys(planspec.COUNTERS, 0) | {"weight_bytes": 1000}
    small = EnergyModel(p, weight_bytes_total=30_000)
    large = EnergyModel(p, weight_bytes_total=40_000)
    assert small.weights_in == "cache" and large.weights_in == "dram"
    assert small.joules(totals, 0.0) == pytest.approx(1000 * 2.5e-12)
    assert large.joules(totals, 0.0) == pytest.approx(1000 * 160e-12)
    # without a model, the weight bytes the inference fetched decide
    unbound = EnergyModel(p)
    assert unbound.joules(totals, 0.0) == pytest.approx(1000 * 2.5e-12)
    assert unbound.breakdown(totals | {"weight_bytes": 50_000}, 0.0).weights_in == "dram"


def test_base_and_active_power_terms():
    p = parse_profile('name = "b"\ndescription = "d"\nsource = "s"\nbase_watts = 3.0\nactive_watts = 1.5\n'
                      '[pj_per_count]\nmacs = 100.0\n')
    totals = dict.fromkeys(planspec.COUNTERS, 0) | {"macs": 10_000}
    b = modeled_energy(totals, p, latency_s=0.01)
    assert b.terms_joules["base"] == pytest.approx(0.03) and b.terms_joules["active"] == pytest.approx(0.015)
    assert b.terms_joules["macs"] == pytest.approx(1e-6)
    assert b.dynamic_joules == pytest.approx(0.015 + 1e-6)
    assert b.weights_in is None


@pytest.mark.parametrize("text, err", [
    ('description = "d"\nsource = "s"\n', "'name' is required"),
    ('name = "x"\ndescription = "d"\n', "'source' is required"),
    ('name = "x"\ndescription = "d"\nsource = "s"\n[pj_per_count]\nflops = 1.0\n', "unknown counter(s) flops"),
    ('name = "x"\ndescription = "d"\nsource = "s"\n[pj_per_count]\nmacs = -1.0\n', "pj_per_count.macs"),
    ('name = "x"\ndescription = "d"\nsource = "s"\nbase_watts = "3W"\n', "'base_watts' must be a number"),
    ('name = "x"\ndescription = "d"\nsource = "s"\nvolts = 1\n', "unknown key(s) volts"),
    ('name = "x y"\ndescription = "d"\nsource = "s"\n', "must be letters"),
    ('name = "x"\ndescription = \n', "not valid TOML"),
])
def test_profile_validation_names_file_and_key(text, err):
    with pytest.raises(ProfileError) as e:
        parse_profile(text, "my.toml")
    assert err in str(e.value) and "my.toml" in str(e.value)


def test_toml_writer_round_trips_through_tomllib():
    import tomllib
    top = {"name": "x", "s": 'quote " back\\slash\nnewline \u00b5J tab\t', "f": 1e-05, "g": 2.0, "i": 3,
           "b": True, "l": ["a", 1.5], "big": 1.5e300, "t": {"k": 0.1, "key with space": "v"}}
    assert tomllib.loads(dumps_toml(top, "a comment\nover two lines")) == top


def test_fitted_profile_saved_to_user_dir_and_loaded_by_name(user_config):
    base = load_profile("rpi5")
    fitted = Profile(name="pi5-desk", description="fitted", source="tunable calibrate", fitted_on="pi (aarch64)",
                     base_watts=2.71, active_watts=1.33, cache_bytes=base.cache_bytes,
                     pj_per_count={"macs": 41.5}, fit={"sensor": "ina226", "windows": 12, "r2": 0.998,
                                                       "unidentified": ["adds: collinear"]})
    path = save_profile(fitted)
    assert path == user_config / "pi5-desk.toml"
    back = load_profile("pi5-desk")
    assert back.fitted and "fitted on pi (aarch64)" in back.label()
    assert back.base_watts == 2.71 and back.pj_per_count["macs"] == 41.5 and back.fit["windows"] == 12
    assert load_profile(str(path)).name == "pi5-desk"
    assert ("pi5-desk", str(path)) in list_profiles()
    with pytest.raises(ProfileError, match="shipped profile"):
        save_profile(fitted.with_name("rpi5"))
    with pytest.raises(ProfileError, match="no profile named 'nope'"):
        load_profile("nope")


def test_profile_to_toml_is_complete_and_stable():
    p = load_profile("rpi4")
    again = parse_profile(profile_to_toml(p))
    assert again.pj_per_count == p.pj_per_count and again.base_watts == p.base_watts
    assert again.weight_bytes_dram_pj == p.weight_bytes_dram_pj and again.cache_bytes == p.cache_bytes


@pytest.mark.parametrize("model, want", [("Raspberry Pi 5 Model B Rev 1.0", "rpi5"),
                                         ("Raspberry Pi 4 Model B Rev 1.4", "rpi4"),
                                         ("NVIDIA Jetson Orin Nano Developer Kit", "jetson-orin-nano")])
def test_profile_detected_from_the_device_tree(tmp_path, monkeypatch, model, want):
    monkeypatch.delenv("TUNABLE_PROFILE", raising=False)
    FakeSysfs(tmp_path).device_model(model)
    assert detect_profile_name(tmp_path) == want
    monkeypatch.setenv("TUNABLE_PROFILE", "horowitz45")
    assert detect_profile_name(tmp_path) == "horowitz45"
