"""Generates the embedded default frames (tunable/data/default_frames.npz): handwriting-like digits drawn
from a small stroke font with random slant, rotation, scale, position and stroke width, rendered
anti-aliased at 28x28 like MNIST (white on black, digit in a 20x20 box). Made here, from nothing: no data set
is copied. `tunable run` streams them, labelled, when no source is given.

    python models/make_default_frames.py [-n 300] [--seed 0] [-o tunable/data/default_frames.npz]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

# polylines per digit in a unit box (x right, y down)
STROKES = {
    0: [[(0.5, 0.0), (0.15, 0.2), (0.1, 0.5), (0.15, 0.8), (0.5, 1.0), (0.85, 0.8), (0.9, 0.5), (0.85, 0.2),
         (0.5, 0.0)]],
    1: [[(0.3, 0.2), (0.55, 0.0), (0.55, 1.0)]],
    2: [[(0.15, 0.25), (0.3, 0.05), (0.6, 0.0), (0.85, 0.2), (0.8, 0.45), (0.15, 1.0), (0.9, 1.0)]],
    3: [[(0.15, 0.1), (0.5, 0.0), (0.8, 0.15), (0.75, 0.4), (0.45, 0.5), (0.8, 0.62), (0.85, 0.85),
         (0.5, 1.0), (0.12, 0.9)]],
    4: [[(0.7, 1.0), (0.7, 0.0), (0.1, 0.7), (0.9, 0.7)]],
    5: [[(0.85, 0.0), (0.2, 0.0), (0.15, 0.45), (0.55, 0.38), (0.85, 0.6), (0.8, 0.88), (0.45, 1.0),
         (0.12, 0.9)]],
    6: [[(0.75, 0.02), (0.35, 0.2), (0.15, 0.6), (0.3, 0.95), (0.65, 0.95), (0.82, 0.7), (0.6, 0.48),
         (0.3, 0.52), (0.17, 0.65)]],
    7: [[(0.1, 0.0), (0.9, 0.0), (0.45, 1.0)]],
    8: [[(0.5, 0.48), (0.2, 0.3), (0.25, 0.06), (0.5, 0.0), (0.75, 0.06), (0.8, 0.3), (0.5, 0.48),
         (0.15, 0.7), (0.25, 0.95), (0.5, 1.0), (0.75, 0.95), (0.85, 0.7), (0.5, 0.48)]],
    9: [[(0.83, 0.35), (0.6, 0.5), (0.3, 0.47), (0.17, 0.25), (0.35, 0.03), (0.65, 0.03), (0.83, 0.3),
         (0.8, 0.65), (0.55, 1.0)]],
}


def render(digit: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    slant = rng.uniform(-0.25, 0.25)
    angle = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.8, 1.05) * 20
    aspect = rng.uniform(0.7, 1.0)
    width = rng.uniform(1.8, 3.0)
    c, s = np.cos(angle), np.sin(angle)
    cx, cy = size / 2 + rng.uniform(-1.5, 1.5), size / 2 + rng.uniform(-1.5, 1.5)
    segs = []
    for line in STROKES[digit]:
        pts = np.array(line, dtype=np.float64) - 0.5
        pts[:, 0] = (pts[:, 0] * aspect + slant * -pts[:, 1]) * scale
        pts[:, 1] = pts[:, 1] * scale
        pts = pts @ np.array([[c, s], [-s, c]]) + (cx, cy)
        segs += [(pts[i], pts[i + 1]) for i in range(len(pts) - 1)]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    d = np.full((size, size), np.inf)
    for a, b in segs:
        ab = b - a
        t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / max(ab @ ab, 1e-9), 0.0, 1.0)
        d = np.minimum(d, np.hypot(xx - (a[0] + t * ab[0]), yy - (a[1] + t * ab[1])))
    img = np.clip(width / 2 + 0.5 - d, 0.0, 1.0)
    return np.round(img * 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", type=Path, default=Path(__file__).resolve().parent.parent / "tunable" / "data" /
                    "default_frames.npz")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    y = np.arange(a.n) % 10
    rng.shuffle(y)
    x = np.stack([render(int(d), rng) for d in y])[..., None]
    a.o.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(a.o, x=x, y=y.astype(np.uint8), names=np.array([str(i) for i in range(10)]))
    print(f"wrote {a.o}: {a.n} digits, {a.o.stat().st_size} bytes")


if __name__ == "__main__":
    main()
