"""Operating points for `tunable run` when no profile is given: a ladder of knob settings from all off to
aggressive, each costed by running the model on a sample input (modeled energy from the counters, measured
latency). Accuracy is unknown without labelled data: the ladder order stands for it (see
governor.points.default_front), and `tunable profile` measures the real thing."""
from __future__ import annotations

import statistics
import time

import numpy as np

from .knobs import Knobs

# most accurate first; channel granularity because it is the drowsy form that saves time on SIMD kernels
LADDER: tuple[tuple[str, dict], ...] = (
    ("off", {}),
    ("aip-1/2", {"aip": 0.5}),
    ("aip-1/4", {"aip": 0.25}),
    ("drowsy-0.1", {"aip": 0.25, "drowsy": 0.1, "drowsy_granularity": "channel"}),
    ("drowsy-0.2", {"aip": 0.25, "drowsy": 0.2, "drowsy_granularity": "channel"}),
    ("drowsy-0.3", {"aip": 0.125, "drowsy": 0.3, "drowsy_granularity": "channel"}),
    ("drowsy-0.5", {"aip": 0.125, "drowsy": 0.5, "drowsy_granularity": "channel"}),
    ("drowsy-0.7", {"aip": 0.0625, "drowsy": 0.7, "drowsy_granularity": "channel"}),
)


def ladder_points(model, energy_model, sample: np.ndarray, repeats: int = 15):
    """OperatingPoints (governor.points) for the LADDER settings this model supports, with modeled energy
    and the median latency of `repeats` runs on `sample`."""
    from governor.points import OperatingPoint
    s = model.session()
    layers = {l.op for l in model.layers}
    pts = []
    for name, kw in LADDER:
        if "drowsy" in kw and not layers & {"CONV_2D", "DEPTHWISE_CONV_2D"}:
            continue
        if "aip" in kw and "FULLY_CONNECTED" not in layers:
            kw = {k: v for k, v in kw.items() if k != "aip"}
            if not kw and name != "off":
                continue
        knobs = Knobs(**kw)
        s.set_knobs(knobs)
        lat = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            s.run(sample)
            lat.append(time.perf_counter() - t0)
        latency = statistics.median(lat)
        totals = s.totals()
        pts.append(OperatingPoint(name, knobs.to_dict(), None, energy_model.joules(totals, latency), latency,
                                  int(totals["macs"])))
    return pts
