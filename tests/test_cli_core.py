"""The core commands: inspect, bench, diff, models."""
from __future__ import annotations

import json

from click.testing import CliRunner

from tunable.cli import main


def test_inspect_json_matches_the_model(mlperf):
    r = CliRunner().invoke(main, ["inspect", str(mlperf["resnet8"]), "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["macs"] == 12501632  # ../shared/models/mlperf-tiny/SOURCE.md
    assert [l["op"] for l in d["layers"]].count("CONV_2D") == 9
    assert d["tflm_arena"]["total"] > 0 and d["arena_bytes"] > 0


def test_diff_finds_no_difference(mlperf):
    r = CliRunner().invoke(main, ["diff", str(mlperf["kws"])])
    assert r.exit_code == 0, r.output
    assert "layer outputs equal TFLite Micro's" in r.output


def test_bench_reports_ratios(mlperf):
    r = CliRunner().invoke(main, ["bench", str(mlperf["ad01"]), "--window", "0.02", "--repeats", "1"])
    assert r.exit_code == 0, r.output
    assert "tunable" in r.output and "tflm" in r.output and "ratio" in r.output


def test_models_list_and_offline_folder(mlperf, monkeypatch):
    monkeypatch.setenv("TUNABLE_MODELS_DIR", str(mlperf["resnet8"].parent))
    r = CliRunner().invoke(main, ["models", "list"])
    assert r.exit_code == 0, r.output
    assert "resnet8-cifar10" in r.output and "$TUNABLE_MODELS_DIR" in r.output
    # a manifest name resolves through the folder and its sha256 is checked by pull
    r = CliRunner().invoke(main, ["models", "pull", "resnet8-cifar10"])
    assert r.exit_code == 0 and "sha256 ok" in r.output


def test_unknown_model_name_is_a_clear_error():
    r = CliRunner().invoke(main, ["inspect", "no-such-model"])
    assert r.exit_code != 0
    assert "no-such-model" in r.output and "manifest" in r.output
