"""Compile-time knob artefacts from calibration data: drowsy importance ranks for conv layers and AIP
column orders for FC layers. Computed on a calibration split only (never on evaluation data)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .compiler import CompileOptions, compile_graph
from .session import Model
from .tflite_reader import read_tflite


def calibrate(model_path: str | Path, inputs: np.ndarray, max_samples: int = 512) -> CompileOptions:
    """Runs `inputs` (int8/uint8 arrays shaped like the model input, stacked on axis 0) through the model
    and returns CompileOptions carrying:
    - conv_ranks[layer] = (rank_channel, rank_row): units ranked by mean |y - zero point| of their outputs
      (rank 0 = least active = dropped first);
    - aip_order[layer]: FC columns by E|x_j - zp| * ||W[:, j]||_1, most important first (AIP)."""
    g = read_tflite(model_path)
    g.outputs = list(dict.fromkeys(g.outputs + [o for op in g.ops for o in op.outputs]))
    model = Model(compile_graph(g), str(model_path))
    s = model.session()
    xs = np.asarray(inputs)[:max_samples]
    conv = [l for l in model.layers if l.op in ("CONV_2D", "DEPTHWISE_CONV_2D")]
    fcs = [l for l in model.layers if l.op == "FULLY_CONNECTED"]
    act = {l.name: np.zeros(l.output_shape[1:], np.float64) for l in conv}
    fin = {l.name: None for l in fcs}
    for x in xs:
        s.run(x.reshape(model.inputs[0].shape))
        for l in conv:
            t = model.tensor_info(l.out_tensor)
            act[l.name] += np.abs(s.tensor(l.out_tensor).astype(np.int32) - t.zero_point)[0]
        for l in fcs:
            t = model.tensor_info(l.in_tensors[0])
            v = np.abs(s.tensor(l.in_tensors[0]).astype(np.int32) - t.zero_point).reshape(-1, l.input_shapes[0][-1]
                                                                                          if l.input_shapes else 1)
            fin[l.name] = v.sum(0) if fin[l.name] is None else fin[l.name] + v.sum(0)
    ranks = {}
    for l in conv:
        a = act[l.name]  # (OH, OW, C)
        per_channel = a.sum(axis=(0, 1))
        per_row = a.sum(axis=1).reshape(-1)  # (OH * C), unit = oy * C + c
        ranks[l.name] = (_rank(per_channel), _rank(per_row))
    orders = {}
    plain = read_tflite(model_path)
    fc_ops = [op for op in plain.ops if op.opname == "FULLY_CONNECTED"]
    for l, op in zip(fcs, fc_ops):
        w = np.abs(plain.tensors[op.inputs[1]].data.astype(np.int64))
        e = fin[l.name]
        if e is None or e.shape[0] != w.shape[1]:
            continue
        orders[l.name] = np.argsort(-(e * w.sum(axis=0)), kind="stable").astype(np.int32)
    # the approximate knobs' input statistics and default look-up tables (tunable/artefacts.py)
    from .artefacts import calibrate as approx_calibrate
    return approx_calibrate(model_path, xs, CompileOptions(conv_ranks=ranks, aip_order=orders, lut="default"))


def _rank(importance: np.ndarray) -> np.ndarray:
    """rank[i] = position of unit i when sorted by ascending importance (ties by index)."""
    order = np.argsort(importance, kind="stable")
    rank = np.empty(len(order), np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return rank
