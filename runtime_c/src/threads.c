/* Worker threads of a session (the `threads` option): kernels split their output rows, positions or
 * channels into tasks that tn_parallel runs on the caller and threads - 1 workers. Every output is computed
 * by exactly one task with the same arithmetic, so results do not depend on the thread count.
 *
 * Workers spin (yielding) for a short while after a job (the next op's job usually follows within microseconds),
 * then sleep on a condition variable, so an idle session costs no CPU. Each worker has its own scratch block
 * (the size of the session's), allocated by tn_session_set_threads, never during a run. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* rounds of sched_yield (a microsecond or less each when the core is free) a worker waits for the next job
 * before sleeping. Yielding, not busy-waiting: a worker that shares a core with the thread it works for (a
 * busy machine) must not take half of that core. */
#define TN_SPIN_ROUNDS 200

struct tn_pool {
    int n;                      /* threads, the caller included */
    pthread_t *tid;
    pthread_mutex_t mu;
    pthread_cond_t wake, done_cv;
    /* the current job, under mu: tasks are claimed one at a time, so a worker the OS has not scheduled yet
     * delays nothing (the others, the caller included, take its share) */
    tn_task_fn fn;
    void *arg;
    int ntasks, next, finished;
    volatile unsigned gen;      /* bumped per job */
    volatile int quit;
    uint8_t **scratch;          /* per worker (index 1..n-1) */
    void **scratch_alloc;
};

typedef struct { struct tn_pool *p; int index; } worker_arg;

/* claims and runs tasks of job `gen` until none is left; returns at once if the job is another */
static void run_tasks(struct tn_pool *p, unsigned gen, int index) {
    for (;;) {
        pthread_mutex_lock(&p->mu);
        if (p->gen != gen || p->next >= p->ntasks) {
            pthread_mutex_unlock(&p->mu);
            return;
        }
        const int t = p->next++;
        const tn_task_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, t, index);
        pthread_mutex_lock(&p->mu);
        if (++p->finished == p->ntasks) pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker(void *a) {
    worker_arg *wa = (worker_arg *)a;
    struct tn_pool *p = wa->p;
    const int index = wa->index;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        /* spin, then sleep until a new job or quit */
        int spins = 0;
        while (__atomic_load_n(&p->gen, __ATOMIC_ACQUIRE) == seen && !__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE)) {
            if (++spins < TN_SPIN_ROUNDS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            while (p->gen == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (__atomic_load_n(&p->quit, __ATOMIC_ACQUIRE)) return NULL;
        seen = __atomic_load_n(&p->gen, __ATOMIC_ACQUIRE);
        run_tasks(p, seen, index);
    }
}

static void pool_free(struct tn_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->quit, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        if (p->tid[i]) pthread_join(p->tid[i], NULL);
    for (int i = 1; i < p->n; i++) free(p->scratch_alloc[i]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->tid);
    free(p->scratch);
    free(p->scratch_alloc);
    free(p);
}

void tn_session_free_threads(tn_session *s) {
    pool_free(s->pool);
    s->pool = NULL;
}

int tn_session_set_threads(tn_session *s, int n) {
    if (!s) return TN_ERR_BAD_ARGUMENT;
    if (n < 1 || n > TN_MAX_THREADS)
        return tn_fail(s->err, sizeof s->err, TN_ERR_BAD_ARGUMENT, "threads = %d: must be in [1, %d]", n, TN_MAX_THREADS);
    const char *env = getenv("TUNABLE_PARALLEL_MIN_WORK");
    s->par_min_work = env && *env ? strtoull(env, NULL, 10) : TN_PARALLEL_MIN_WORK;
    if (n == tn_session_threads(s)) return TN_ERR_OK;
    tn_session_free_threads(s);
    if (n == 1) return TN_ERR_OK;
    struct tn_pool *p = (struct tn_pool *)calloc(1, sizeof *p);
    if (!p) return tn_fail(s->err, sizeof s->err, TN_ERR_NO_MEMORY, "out of memory for %d threads", n);
    p->n = n;
    p->tid = (pthread_t *)calloc((size_t)n, sizeof(pthread_t));
    p->scratch = (uint8_t **)calloc((size_t)n, sizeof(uint8_t *));
    p->scratch_alloc = (void **)calloc((size_t)n, sizeof(void *));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    int ok = p->tid && p->scratch && p->scratch_alloc;
    for (int i = 1; ok && i < n; i++) {
        p->scratch_alloc[i] = malloc(s->m->scratch_bytes + 128);
        if (!p->scratch_alloc[i]) ok = 0;
        else p->scratch[i] = (uint8_t *)(((uintptr_t)p->scratch_alloc[i] + 63) & ~(uintptr_t)63);
    }
    if (!ok) {
        p->n = 1;  /* no workers to join */
        pool_free(p);
        return tn_fail(s->err, sizeof s->err, TN_ERR_NO_MEMORY, "out of memory for %d threads' scratch", n);
    }
    for (int i = 1; i < n; i++) {
        worker_arg *wa = (worker_arg *)malloc(sizeof *wa);
        if (wa) {
            wa->p = p;
            wa->index = i;
        }
        const int rc = wa ? pthread_create(&p->tid[i], NULL, worker, wa) : ENOMEM;
        if (rc) {
            free(wa);
            p->n = i;  /* join the ones started */
            pool_free(p);
            return tn_fail(s->err, sizeof s->err, TN_ERR_NO_MEMORY, "cannot start thread %d of %d", i, n);
        }
    }
    s->pool = p;
    return TN_ERR_OK;
}

int tn_session_threads(const tn_session *s) { return s && s->pool ? s->pool->n : 1; }

void *tn_thread_scratch(const tn_session *s, int thread) {
    return thread == 0 || !s->pool ? (void *)s->scratch : (void *)s->pool->scratch[thread];
}

void tn_parallel(tn_session *s, int ntasks, tn_task_fn fn, void *arg) {
    struct tn_pool *p = s->pool;
    if (!p || ntasks <= 1) {
        for (int t = 0; t < ntasks; t++) fn(arg, t, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->ntasks = ntasks;
    p->next = 0;
    p->finished = 0;
    __atomic_add_fetch(&p->gen, 1, __ATOMIC_ACQ_REL);
    const unsigned gen = p->gen;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, gen, 0);
    /* every task claimed: wait for the ones still running on workers */
    pthread_mutex_lock(&p->mu);
    while (p->finished < p->ntasks) pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
