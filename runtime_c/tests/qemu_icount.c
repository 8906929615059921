/* A qemu-user TCG plugin that counts guest instructions executed (Debian's qemu-user has plugin support but
 * ships no plugins). Build: cc -shared -fPIC -O2 -o libicount.so qemu_icount.c
 * Use:   qemu-aarch64 -cpu cortex-a72 -plugin ./libicount.so -d plugin -D count.txt ./prog
 * Writes "insns N" through qemu's log (-d plugin; -D FILE sends it to a file, else stderr).
 * With -plugin ./libicount.so,pcs=FILE it also writes one line per translated block to FILE:
 * "start-address instructions executions" (hex, decimal, decimal), for a per-function profile (map the
 * addresses to symbols with nm on the static binary: bench/instructions.py --profile does).
 *
 * Only the few stable entry points of qemu's plugin API (include/qemu/qemu-plugin.h, API version 1 and
 * later) are declared here, so building it needs no qemu headers. Counting is inline (no helper call per
 * block): one 64-bit add per executed translation block. qemu-user runs each guest thread on its own host
 * thread; the runtime is single-threaded, so one counter suffices. */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, enum qemu_plugin_op op, void *ptr,
                                              uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
void qemu_plugin_outs(const char *string);

#define EXPORT __attribute__((visibility("default")))

EXPORT int qemu_plugin_version = 1;

static uint64_t insns;

/* per translated block, for the optional profile (a block translated twice gets two records) */
typedef struct block { uint64_t pc, n, execs; struct block *next; } block;
static block *blocks;
static const char *pcs_path;

static void tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb) {
    const size_t n = qemu_plugin_tb_n_insns(tb);
    qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns, n);
    if (pcs_path) {
        block *b = calloc(1, sizeof *b);
        if (!b) return;
        b->pc = qemu_plugin_tb_vaddr(tb);
        b->n = n;
        b->next = blocks;
        blocks = b;
        qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64, &b->execs, 1);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p) {
    char buf[64];
    snprintf(buf, sizeof buf, "insns %" PRIu64 "\n", insns);
    qemu_plugin_outs(buf);
    if (pcs_path) {
        FILE *f = fopen(pcs_path, "w");
        for (block *b = blocks; f && b; b = b->next)
            if (b->execs) fprintf(f, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", b->pc, b->n, b->execs);
        if (f) fclose(f);
    }
}

EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strncmp(argv[i], "pcs=", 4)) pcs_path = argv[i] + 4;
    qemu_plugin_register_vcpu_tb_trans_cb(id, tb_trans);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
