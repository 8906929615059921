"""Profile files: the Pareto front on synthetic points, the JSON round trip, the governor reading it, and
errors that name the file and the field."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunable.knobs import Knobs
from tunable.profiling import Point, ProfileData, ProfileFormatError, pareto_front, read_profile, write_profile


def P(name, acc, e, **kw):
    return Point(name, kw.pop("knobs", {}), acc, e, kw.pop("macs", 100), kw.pop("latency_s", 1e-3),
                 kw.pop("weight_bytes", 10), kw.pop("family", ""), kw)


def test_front_on_hand_made_points():
    pts = [P("off", 0.90, 10.0), P("a", 0.89, 8.0), P("b", 0.85, 9.0),   # b: dominated by a
           P("c", 0.80, 5.0), P("d", 0.80, 5.0),                            # d: duplicate of c, first kept
           P("e", 0.10, 1.0), P("f", 0.90, 12.0),                           # f: same accuracy as off, dearer
           P("g", 0.95, 20.0)]
    assert pareto_front(pts) == ["e", "c", "a", "off", "g"]
    assert pareto_front([]) == []
    assert pareto_front([P("x", 0.5, 1.0)]) == ["x"]


def _dominated(p, q):
    """q dominates p."""
    return q.energy_j <= p.energy_j and q.accuracy >= p.accuracy and (q.energy_j < p.energy_j or
                                                                       q.accuracy > p.accuracy)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(1, 20)), min_size=1, max_size=30))
def test_front_properties(raw):
    pts = [P(f"p{i}", a / 20, float(e)) for i, (a, e) in enumerate(raw)]
    front = pareto_front(pts)
    by = {p.name: p for p in pts}
    fp = [by[n] for n in front]
    # sorted by energy, accuracy strictly rising along it
    assert all(a.energy_j < b.energy_j and a.accuracy < b.accuracy for a, b in zip(fp, fp[1:]))
    # nobody beats a front point
    for p in fp:
        assert not any(_dominated(p, q) for q in pts)
    # every other point is beaten, or equals a front point in both energy and accuracy
    for p in pts:
        if p.name not in front:
            assert any(_dominated(p, q) or (q.energy_j == p.energy_j and q.accuracy == p.accuracy) for q in fp)


def _profile():
    pts = [P("off", 0.88, 1.7e-5, family="off", macs=12501632, top5=0.99),
           P("drowsy@0.3", 0.80, 1.2e-5, knobs=Knobs(drowsy=0.3, drowsy_granularity="channel").to_dict(),
             family="drowsy/channel/random/uniform"),
           P("sched", 0.86, 1.5e-5, knobs=Knobs(drowsy={"conv_2": 0.2, "conv_8": 0.4}, drowsy_select="importance",
                                                 drowsy_granularity="row").to_dict(), family="drowsy/row/importance/greedy",
             calib_accuracy=0.9),
           P("lut", 0.87, 1.6e-5, knobs=Knobs(lut={"conv_1": (16, 256)}, aip=1 / 16).to_dict())]
    return ProfileData("m.tflite", "npz:test.npz", "npz:train.npz", "horowitz45", pts, pareto_front(pts),
                       {"n_eval": 1000, "baseline": "off", "unavailable": {"x": "why"}})


def test_round_trip(tmp_path):
    prof = _profile()
    path = tmp_path / "p.json"
    write_profile(prof, path)
    back = read_profile(path)
    assert back.to_dict() == json.loads(path.read_text())
    assert [p.to_dict() for p in back.points] == [p.to_dict() for p in prof.points]
    assert back.front == prof.front
    assert (back.model, back.dataset, back.calibration, back.profile) == ("m.tflite", "npz:test.npz",
                                                                           "npz:train.npz", "horowitz45")
    assert back.meta["unavailable"] == {"x": "why"} and back.baseline.name == "off"
    # knobs come back as the same Knobs values
    for a, b in zip(prof.points, back.points):
        assert a.knobs_value() == b.knobs_value()
    assert back.point("lut").knobs_value().lut == (("conv_1", (16, 256)),)
    d = json.loads(path.read_text())
    assert d["format"] == "tunable-profile" and d["version"] == 1
    for p in d["points"]:
        assert {"name", "knobs", "accuracy", "energy_j", "macs", "latency_s", "weight_bytes"} <= set(p)


def test_the_governor_reads_it(tmp_path):
    from governor.points import load_profile as governor_load
    path = tmp_path / "p.json"
    write_profile(_profile(), path)
    g = governor_load(path)
    assert [p.name for p in g.points] == [p.name for p in _profile().points]
    assert {p.name for p in g.front} == set(_profile().front)
    assert Knobs.from_dict(g.point("sched").knobs) == _profile().point("sched").knobs_value()


@pytest.mark.parametrize("mutate, text", [
    (lambda d: d["points"][0].pop("energy_j"), "missing energy_j"),
    (lambda d: d["points"][1].__setitem__("accuracy", 88.0), "accuracy: must lie in 0..1"),
    (lambda d: d["points"][1].__setitem__("knobs", {"drowsy": 3}), "knobs"),
    (lambda d: d["points"][1].__setitem__("macs", "many"), "macs"),
    (lambda d: d["front"].append("nope"), "front names 'nope'"),
    (lambda d: d["points"].append(dict(d["points"][0])), "not unique"),
    (lambda d: d.__setitem__("version", 99), "version"),
    (lambda d: d.pop("points"), "missing 'points'"),
])
def test_errors_name_the_field(tmp_path, mutate, text):
    path = tmp_path / "p.json"
    write_profile(_profile(), path)
    d = json.loads(path.read_text())
    mutate(d)
    path.write_text(json.dumps(d))
    with pytest.raises(ProfileFormatError, match=text):
        read_profile(path)
    assert "p.json" in str(pytest.raises(ProfileFormatError, read_profile, path).value)


def test_unreadable_files(tmp_path):
    with pytest.raises(ProfileFormatError, match="no such file"):
        read_profile(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ProfileFormatError, match="not JSON"):
        read_profile(bad)


def test_no_nan_in_files(tmp_path):
    prof = _profile()
    prof.points[0].extra["agreement"] = math.nan
    write_profile(prof, tmp_path / "p.json")
    assert json.loads((tmp_path / "p.json").read_text())["points"][0]["agreement"] is None
