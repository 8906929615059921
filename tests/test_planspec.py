"""The C header with the plan layout is generated from tunable/planspec.py and must be current."""
from tunable import planspec


def test_header_is_generated_from_planspec():
    assert planspec.HEADER_PATH.read_text() == planspec.header_text(), \
        "runtime_c/include/tunable_format.h is stale: run `python -m tunable.planspec`"


def test_op_params_fit_the_record():
    for name, spec in planspec.OPS.items():
        assert len(spec["params"]) <= planspec.OP_PARAMS, name
        assert len(spec["inputs"]) <= planspec.MAX_OP_INPUTS, name
    codes = [s["code"] for s in planspec.OPS.values()]
    assert len(codes) == len(set(codes))
