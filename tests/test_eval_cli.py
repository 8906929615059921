"""`tunable eval`: exit codes, --json output, knobs from text and files, calibration, errors named."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import tunable
from tunable.cli import main
from tunable.data import open_dataset
from tunable.energy import load_profile
from tunable.evaluate import Evaluator, prepare_inputs, preprocess_options_for
from tunable.knobs import Knobs
from tunable.paths import shared_dir

RESNET = str(shared_dir() / "models" / "mlperf-tiny" / "pretrainedResnet_quant.tflite")
CIFAR = shared_dir() / "data" / "cifar10"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """First 80 test and 60 train images as small npz files."""
    d = tmp_path_factory.mktemp("data")
    for name, n in (("test_first1000", 80), ("train_first4000", 60)):
        z = np.load(CIFAR / f"{name}.npz")
        np.savez(d / f"{name[:5]}.npz", x=z["x"][:n], y=z["y"][:n])
    return d


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_json_matches_the_library(small):
    r = run("eval", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--profile", "horowitz45", "--json",
            "--knobs", "drowsy=0.25 drowsy_granularity=row")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    m = tunable.load(RESNET)
    x, y = prepare_inputs(m, open_dataset(f"npz:{small / 'test_.npz'}"), preprocess_options_for(RESNET))
    ev = Evaluator(m, x, y, profile=load_profile("horowitz45"))
    lib = ev.evaluate(Knobs(drowsy=0.25, drowsy_granularity="row"))
    assert d["n"] == 80
    assert d["top1"] == pytest.approx(lib.top1)
    assert d["agreement"] == pytest.approx(lib.agreement)
    assert d["counters"]["macs"] == pytest.approx(lib.totals["macs"])
    assert d["knobs"] == {"drowsy": 0.25, "drowsy_granularity": "row"}
    assert d["profile"] == "horowitz45"
    assert d["off"]["counters"]["macs"] == m.macs
    assert 0 < d["energy_j"] < d["off"]["energy_j"]
    assert d["preprocess"].get("color") == "rgb"


def test_text_output_and_limit(small):
    r = run("eval", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--limit", "20", "--profile", "horowitz45",
            "--layers")
    assert r.exit_code == 0, r.output
    assert "top-1" in r.output and "modeled energy" in r.output and "horowitz45" in r.output
    assert "first 20" in r.output and "conv_9" in r.output


def test_importance_needs_calibration_then_works(small, tmp_path):
    knobs = tmp_path / "k.toml"
    knobs.write_text(Knobs(drowsy=0.1, drowsy_granularity="channel", drowsy_select="importance").to_toml())
    args = ["eval", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--limit", "10", "--profile", "horowitz45",
            "--json", "--knobs", str(knobs)]
    r = run(*args)
    assert r.exit_code == 1
    assert "calibration" in r.output
    r = run(*args, "--calib", f"npz:{small / 'train.npz'}")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["calibration"].endswith("train.npz")
    assert d["conv_macs_saved"] > 0.05


@pytest.mark.parametrize("args, code, text", [
    (["--data", "npz:/nonexistent.npz"], 1, "does not exist"),
    (["--data", "bogus:/x"], 1, "expected one of"),
    (["--knobs", "drowsy=2"], 1, "drowsy"),
    (["--knobs", "nonsense=1"], 1, "unknown knob"),
    (["--preprocess", "colour=rgb"], 1, "unknown preprocess option"),
    ([], 2, "--data"),
])
def test_errors_exit_nonzero_with_a_message(small, args, code, text):
    if args and args[0] != "--data":
        args = ["--data", f"npz:{small / 'test_.npz'}"] + args
    r = run("eval", RESNET, *args)
    assert r.exit_code == code, r.output
    assert text in r.output


def test_unknown_model_names_the_manifest():
    r = run("eval", "no-such-model", "--data", "npz:/x.npz")
    assert r.exit_code == 1
    assert "manifest" in r.output


def test_lut_knobs_compile_their_tables(tmp_path):
    """Look-up tables named in --knobs are compiled into the plan; 8-level weights fetch 3 of 8 bits."""
    kws = str(shared_dir() / "models" / "mlperf-tiny" / "kws_ref_model.tflite")
    rng = np.random.default_rng(1)
    data = tmp_path / "kws.npz"
    np.savez(data, x=rng.integers(0, 256, (12, 49, 10, 1), dtype=np.uint8), y=rng.integers(0, 12, 12))
    r = run("eval", kws, "--data", f"npz:{data}", "--preprocess", "int8=pixel-128", "--profile", "horowitz45",
            "--knobs", "lut.conv_2=16x256 lut.fc_1=8x256", "--json", "--layers")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["layers"]["conv_2"]["lut_lookups"] == d["layers"]["conv_2"]["macs"] > 0
    assert d["layers"]["fc_1"]["mults"] == 0
    assert d["fc_weight_bytes_saved"] == pytest.approx(1 - 3 / 8, abs=0.01)
    assert d["layers"]["conv_1"]["lut_lookups"] == 0


def test_threads_change_neither_outputs_nor_counters(small):
    args = ["eval", RESNET, "--data", f"npz:{small / 'test_.npz'}", "--limit", "16", "--profile", "horowitz45",
            "--knobs", "drowsy=0.3 drowsy_granularity=channel", "--json", "--no-agreement"]
    one, two = run(*args), run(*args, "--threads", "2")
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    a, b = json.loads(one.output), json.loads(two.output)
    assert a["top1"] == b["top1"] and a["counters"] == b["counters"]
