"""cffi (API mode) build of the C runtime into tunable._tunable_c; run by the package build (setup.py)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from cffi import FFI

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime_c"

_spec = importlib.util.spec_from_file_location("_tn_planspec", Path(__file__).with_name("planspec.py"))
planspec = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(planspec)

_counter_fields = "\n".join(f"    uint64_t {c};" for c in planspec.COUNTERS)
CDEF = f"""
typedef struct tn_model tn_model;
typedef struct tn_session tn_session;
typedef struct {{
{_counter_fields}
}} tn_counters;
typedef struct {{
    int32_t dtype; int32_t ndim; int32_t dims[{planspec.MAX_DIMS}]; int32_t zero_point; float scale;
    int32_t storage; uint32_t nbytes; const char *name;
}} tn_tensor_info;
typedef struct {{
    int32_t opcode; int32_t n_in, n_out; int32_t in[{planspec.MAX_OP_INPUTS}]; int32_t out[{planspec.MAX_OP_OUTPUTS}];
    const char *name; uint64_t analytic_macs; int32_t params[{planspec.OP_PARAMS}];
}} tn_op_info;
typedef struct {{
    uint32_t drowsy_threshold; int32_t drowsy_drop_count; int32_t drowsy_granularity; int32_t drowsy_select;
    int32_t drowsy_rescale; int32_t aip_cols; int32_t aip_topm; int32_t aip_mode; int32_t aip_margin;
    int32_t conv_preview_cin;
    int32_t sign_exact; int32_t lut_enable; int32_t prune_threshold; int32_t weight_lsb_drop;
    ...;
}} tn_layer_knobs;
int tn_model_load(const void *plan, size_t size, tn_model **out, char *errbuf, size_t errlen);
void tn_model_free(tn_model *m);
int tn_model_num_tensors(const tn_model *m);
int tn_model_num_ops(const tn_model *m);
int tn_model_num_inputs(const tn_model *m);
int tn_model_num_outputs(const tn_model *m);
int tn_model_input(const tn_model *m, int i);
int tn_model_output(const tn_model *m, int i);
int tn_model_tensor_info(const tn_model *m, int tensor, tn_tensor_info *info);
int tn_model_op_info(const tn_model *m, int op, tn_op_info *info);
size_t tn_model_arena_bytes(const tn_model *m);
int tn_session_create(const tn_model *m, void *arena, size_t arena_bytes, tn_session **out, char *errbuf, size_t errlen);
void tn_session_free(tn_session *s);
void *tn_session_tensor(tn_session *s, int tensor);
int tn_session_run(tn_session *s);
const char *tn_session_error(const tn_session *s);
const tn_counters *tn_session_counters(const tn_session *s);
int tn_session_totals(const tn_session *s, tn_counters *out);
const uint64_t *tn_session_op_ns(const tn_session *s);
int tn_session_set_threads(tn_session *s, int threads);
int tn_session_threads(const tn_session *s);
int tn_session_set_knobs(tn_session *s, int op, const tn_layer_knobs *k);
int tn_session_set_all_knobs(tn_session *s, const tn_layer_knobs *k);
int tn_session_set_seed(tn_session *s, uint64_t seed);
const char *tn_isa(void);
int tn_force_isa(const char *name);
const char *tn_error_name(int code);
"""


def _sources() -> list[str]:
    src = RUNTIME / "src"
    files = sorted(src.glob("*.c")) + sorted((src / "arch").glob("*.c"))
    return [os.path.relpath(f, ROOT) for f in files]


# the flags every runtime source is compiled with in the package build (tests reuse them)
EXTRA_COMPILE_ARGS = ["-O3", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wno-unused-parameter"]

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "tunable._tunable_c",
    '#include "tunable.h"',
    sources=_sources(),
    include_dirs=[os.path.relpath(RUNTIME / "include", ROOT), os.path.relpath(RUNTIME / "src", ROOT)],
    extra_compile_args=EXTRA_COMPILE_ARGS,
    libraries=["m", "pthread"],
)

if __name__ == "__main__":
    os.chdir(ROOT)
    ffibuilder.compile(verbose=False)
