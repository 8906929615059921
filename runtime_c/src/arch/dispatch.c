/* The one place a kernel variant is chosen: from the CPU once, or from TUNABLE_ISA. */
#include <stdlib.h>
#include <string.h>
#include "../arch.h"
#include "../internal.h"

static const tn_arch_table table_generic = {"generic", 0, tn_gemm_generic, tn_dot_generic};
static const tn_arch_table table_reference = {"reference", 1, tn_gemm_generic, tn_dot_generic};

static const tn_arch_table *const all_tables[] = {&table_generic, &table_reference};

const tn_arch_table *tn_arch = NULL;

static const tn_arch_table *best_for_cpu(void) { return &table_generic; }

void tn_arch_init(void) {
    if (tn_arch) return;
    const char *env = getenv("TUNABLE_ISA");
    if (env && *env && tn_force_isa(env) == TN_ERR_OK) return;
    tn_arch = best_for_cpu();
}

int tn_force_isa(const char *name) {
    if (!name) return TN_ERR_BAD_ARGUMENT;
    if (!strcmp(name, "auto")) { tn_arch = best_for_cpu(); return TN_ERR_OK; }
    for (size_t i = 0; i < sizeof all_tables / sizeof all_tables[0]; i++)
        if (!strcmp(all_tables[i]->name, name)) { tn_arch = all_tables[i]; return TN_ERR_OK; }
    return TN_ERR_UNSUPPORTED;
}

const char *tn_isa(void) {
    tn_arch_init();
    return tn_arch->name;
}
