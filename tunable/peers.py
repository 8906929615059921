"""Peer runtimes measured beside this engine: LiteRT (default = XNNPACK, builtin = ruy, builtin_ref) and
TFLite Micro. Optional: imported lazily, used by `tunable bench`, `tunable diff`, bench/ and tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np

PEERS = ("litert-default", "litert-builtin", "litert-ref", "tflm")


class PeerUnavailable(Exception):
    pass


class Peer:
    """A peer interpreter with one input and the run()/invoke() shape of Session."""

    def __init__(self, kind: str, path: str | Path, threads: int = 1):
        self.kind = kind
        self.path = str(path)
        if kind == "tflm":
            try:
                from tflite_micro import runtime as R
            except ImportError:
                raise PeerUnavailable("tflite-micro is not installed (pip install tflite-micro)") from None
            self._it = R.Interpreter.from_file(self.path, arena_size=tflm_arena_guess(self.path))
            self._set = lambda x: self._it.set_input(x, 0)
            self._get = lambda: self._it.get_output(0)
            self.invoke = self._it.invoke
        else:
            try:
                from ai_edge_litert.interpreter import Interpreter, OpResolverType
            except ImportError:
                raise PeerUnavailable("ai-edge-litert is not installed (pip install ai-edge-litert)") from None
            resolver = {"litert-default": OpResolverType.AUTO,
                        "litert-builtin": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                        "litert-ref": OpResolverType.BUILTIN_REF}[kind]
            self._it = Interpreter(model_path=self.path, num_threads=threads,
                                   experimental_op_resolver_type=resolver)
            self._it.allocate_tensors()
            din = self._it.get_input_details()[0]
            dout = self._it.get_output_details()[0]
            self._set = lambda x: self._it.set_tensor(din["index"], x)
            self._get = lambda: self._it.get_tensor(dout["index"])
            self.invoke = self._it.invoke

    def run(self, x: np.ndarray) -> np.ndarray:
        self._set(x)
        self.invoke()
        return np.array(self._get())


def tflm_arena_guess(path: str) -> int:
    return max(1 << 20, 4 * Path(path).stat().st_size)


def tflm_arena_used(path: str) -> dict | None:
    """TFLM's arena for the model ({'total': bytes, 'head': bytes of planned activations}), read from its
    allocation report, or None without tflite-micro."""
    import re
    import subprocess
    import sys
    # TFLM prints the report from C++ (stderr) outside Python's streams: run it in a child and capture it
    code = ("import sys; from tflite_micro import runtime as R; "
            "R.Interpreter.from_file(sys.argv[1], arena_size=int(sys.argv[2])).print_allocations()")
    try:
        r = subprocess.run([sys.executable, "-c", code, str(path), str(tflm_arena_guess(str(path)))],
                           capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", r.stdout + r.stderr)
        if m:
            out[key] = int(m.group(1))
    return out or None
