"""Layer-by-layer comparison of this engine with TFLite Micro's preserved intermediate tensors."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TunableError


@dataclass
class DiffRow:
    layer: str
    op: str
    tensor: int
    name: str
    size: int
    differing: int
    max_abs: int


@dataclass
class DiffReport:
    rows: list[DiffRow]

    @property
    def first(self) -> DiffRow | None:
        return next((r for r in self.rows if r.differing), None)


def compare_layers(path: str | Path, x: np.ndarray | None = None, seed: int = 0) -> DiffReport:
    """Runs the model once op by op (each op compiled as its own graph output) and compares every op's
    output tensor with TFLM's preserved copy."""
    try:
        from tflite_micro import runtime as R
    except ImportError:
        raise TunableError("tunable diff needs tflite-micro (pip install tflite-micro)") from None
    from .compiler import compile_graph
    from .peers import tflm_arena_guess
    from .session import Model
    from .tflite_reader import read_tflite
    path = Path(path)
    g = read_tflite(path)
    # make every op output a graph output so the arena keeps it alive after the run
    outs = [o for op in g.ops for o in op.outputs]
    g.outputs = list(dict.fromkeys(g.outputs + outs))
    model = Model(compile_graph(g), str(path))
    s = model.session()
    t = model.inputs[0]
    if x is None:
        rng = np.random.default_rng(seed)
        x = rng.integers(np.iinfo(t.dtype).min, np.iinfo(t.dtype).max + 1, t.shape).astype(t.dtype)
    s.set_input(x)
    s.invoke()
    it = R.Interpreter.from_file(str(path), arena_size=tflm_arena_guess(str(path)),
                                 intrepreter_config=R.InterpreterConfig.kPreserveAllTensors)
    it.set_input(x, 0)
    it.invoke()
    by_name = {model.tensor_info(i).name: i for i in
               (model.outputs[k].index for k in range(len(model.outputs)))}
    g2 = read_tflite(path)
    rows = []
    for op in g2.ops:
        for o in op.outputs:
            name = g2.tensors[o].name
            ti = by_name.get(name)
            if ti is None:
                continue
            ours = s.tensor(ti).reshape(-1).astype(np.int64)
            ref = np.asarray(it.GetTensor(o, 0)["tensor_data"]).reshape(-1).astype(np.int64)
            d = np.abs(ours - ref) if ours.shape == ref.shape else np.array([np.iinfo(np.int64).max])
            rows.append(DiffRow(_layer_for(model, ti), op.opname, o, name, int(ref.size),
                                int(np.count_nonzero(d)), int(d.max()) if d.size else 0))
    return DiffReport(rows)


def _layer_for(model, tensor_index: int) -> str:
    ffi, lib = model._ffi, model._lib
    info = ffi.new("tn_op_info *")
    for k, layer in enumerate(model.layers):
        lib.tn_model_op_info(model._m, k, info)
        if info.out[0] == tensor_index:
            return layer.name
    return "?"
