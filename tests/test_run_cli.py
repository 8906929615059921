"""`tunable run` end to end: a real video file through the governor, the JSON log, and bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tunable.cli import main


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    import av as pyav  # a test dependency
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    with pyav.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(30):
            img = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for pkt in stream.encode(pyav.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path


def _run(*args):
    return CliRunner().invoke(main, ["run", *args], catch_exceptions=False)


def test_video_file_end_to_end(video, mlperf, tmp_path):
    log = tmp_path / "log.jsonl"
    r = _run(str(video), "--model", str(mlperf["resnet8"]), "--frames", "20", "--budget", "30ms",
             "--json-log", str(log), "--quiet", "--sensor", "none")
    assert r.exit_code == 0, r.output
    assert "source  " in r.output and "clip.mp4" in r.output
    assert "summary: 20 inferences" in r.output
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert len(lines) == 20
    assert {"point", "knobs", "latency_s", "energy_j", "energy_source", "label"} <= set(lines[0])
    assert all(x["energy_source"] == "modeled" for x in lines)


def test_labelled_dataset_reports_accuracy(mlperf, shared):
    r = _run(f"cifar10:{shared / 'data' / 'cifar10' / 'test_first1000.npz'}", "--model", str(mlperf["resnet8"]),
             "--frames", "50", "--quiet", "--sensor", "none")
    assert r.exit_code == 0, r.output
    assert "accuracy:" in r.output and "on 50 labelled frames" in r.output


@pytest.mark.parametrize("budget, message", [("50 mJ/s", "power"), ("-3mJ", "negative|positive|> 0"),
                                             ("50", "unit")])
def test_malformed_budget(mlperf, budget, message):
    r = CliRunner().invoke(main, ["run", "synthetic", "--model", str(mlperf["resnet8"]), "--budget", budget,
                                  "--frames", "1", "--quiet"])
    assert r.exit_code != 0
    assert budget in r.output or "budget" in r.output.lower()
    import re
    assert re.search(message, r.output, re.I), r.output


def test_budget_below_cheapest_point_warns_and_runs_cheapest(mlperf):
    r = CliRunner().invoke(main, ["run", "synthetic", "--model", str(mlperf["resnet8"]), "--budget", "1uJ",
                                  "--frames", "5", "--quiet", "--sensor", "none"])
    assert r.exit_code == 0, r.output
    assert "below the cheapest operating point" in r.output
    assert "time at each point:" in r.output


def test_unknown_source_and_unreadable_file(mlperf, tmp_path):
    r = CliRunner().invoke(main, ["run", "nosuchthing:xyz", "--model", str(mlperf["resnet8"]), "--quiet"])
    assert r.exit_code != 0 and "nosuchthing" in r.output
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    r = CliRunner().invoke(main, ["run", str(bad), "--model", str(mlperf["resnet8"]), "--quiet", "--frames", "2"])
    assert r.exit_code != 0 and "broken.mp4" in r.output


def test_broken_policy_file(mlperf, tmp_path):
    pol = tmp_path / "p.toml"
    pol.write_text('version = 1\ndefault_mode = "x"\n[modes.x]\nbudget = "12 parsecs"\n')
    r = CliRunner().invoke(main, ["run", "synthetic", "--model", str(mlperf["resnet8"]), "--policy", str(pol),
                                  "--quiet", "--frames", "1"])
    assert r.exit_code != 0
    assert "p.toml:4:" in r.output and "parsecs" in r.output  # file, line, key and what is wrong
