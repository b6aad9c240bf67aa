/* threadpool.c — vlm_pool: workers wait on a generation counter (spin, then a condition
 * variable) and claim tasks from one atomic word holding (generation, next task, task count),
 * so a worker that wakes late cannot claim tasks of a later run; the caller claims tasks too
 * and waits only for the tasks to be done, never for idle workers to check in (which matters
 * when the machine has more runnable threads than cores). */
#include "util/threadpool.h"

#include "util/alloc.h"

#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

/* How long an idle worker spins before it sleeps: long enough to bridge the gap between
 * the matmuls of one decode step, short enough not to burn a core between requests. */
#define SPIN_NS 300000L

struct vlm_pool {
    int              n_threads;       /* caller + workers */
    pthread_t       *threads;         /* n_threads - 1 */
    int              n_started;
    pthread_mutex_t  run_mu;          /* serializes concurrent vlm_pool_run callers */
    pthread_mutex_t  mu;              /* guards sleeping */
    pthread_cond_t   cv;
    _Atomic unsigned gen;             /* bumped once per run (and on stop) */
    _Atomic int      sleepers;
    _Atomic int      stop;
    /* the current run */
    vlm_pool_fn      fn;
    void            *ctx;
    _Atomic uint64_t claim;           /* gen:24 | next:20 | n_tasks:20 */
    _Atomic int      done;            /* tasks of this run finished */
};

#define CLAIM_TASK_BITS 20
#define CLAIM_MAX_TASKS ((1 << CLAIM_TASK_BITS) - 1)
#define CLAIM_GEN(g)    ((uint64_t)((g) & 0xffffffu) << (2 * CLAIM_TASK_BITS))

struct worker_arg {
    struct vlm_pool *pool;
    int              id;
};

static _Thread_local int in_pool_task;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Claims and runs tasks of run gen until none is left (or a later run has begun). */
static void run_tasks(struct vlm_pool *p, unsigned gen, int thread) {
    uint64_t w = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        uint64_t mask = (1u << CLAIM_TASK_BITS) - 1;
        int t = (int)((w >> CLAIM_TASK_BITS) & mask), n = (int)(w & mask);
        if ((w & ~((1ull << (2 * CLAIM_TASK_BITS)) - 1)) != CLAIM_GEN(gen) || t >= n) return;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &w, w + (1ull << CLAIM_TASK_BITS),
                                                   memory_order_acq_rel, memory_order_acquire))
            continue;   /* w was reloaded */
        p->fn(p->ctx, t, thread);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        w = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

/* Waits until gen differs from seen; returns the new generation. */
static unsigned wait_gen(struct vlm_pool *p, unsigned seen) {
    long t0 = 0;
    for (int i = 0;; i++) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
        if ((i & 255) == 255) {
            long t = now_ns();
            if (!t0) t0 = t;
            else if (t - t0 > SPIN_NS) break;
        }
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->sleepers, 1);
    unsigned g;
    while ((g = atomic_load(&p->gen)) == seen) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->sleepers, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker_main(void *arg) {
    struct worker_arg wa = *(struct worker_arg *)arg;
    vlm_free(arg);
    struct vlm_pool *p = wa.pool;
    in_pool_task = 1;
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(p, seen);
        if (atomic_load(&p->stop)) break;
        run_tasks(p, seen, wa.id);
    }
    return NULL;
}

static void wake_all(struct vlm_pool *p) {
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

struct vlm_pool *vlm_pool_new(int n_threads) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 1024) n_threads = 1024;
    struct vlm_pool *p = vlm_calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n_threads = n_threads;
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = vlm_calloc((size_t)n_threads - 1, sizeof *p->threads);
        if (!p->threads) goto fail;
        for (int i = 1; i < n_threads; i++) {
            struct worker_arg *wa = vlm_malloc(sizeof *wa);
            if (!wa) goto fail;
            wa->pool = p;
            wa->id = i;
            if (pthread_create(&p->threads[i - 1], NULL, worker_main, wa) != 0) {
                vlm_free(wa);
                goto fail;
            }
            p->n_started++;
        }
    }
    return p;
fail:
    vlm_pool_free(p);
    return NULL;
}

void vlm_pool_free(struct vlm_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, 1);
    atomic_fetch_add(&p->gen, 1);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_started; i++) pthread_join(p->threads[i], NULL);
    vlm_free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->run_mu);
    vlm_free(p);
}

int vlm_pool_size(const struct vlm_pool *pool) {
    return pool ? pool->n_threads : 1;
}

/* Runs past CLAIM_MAX_TASKS tasks go in chunks; later chunks shift the task index. */
struct chunk_ctx {
    vlm_pool_fn fn;
    void       *ctx;
    int         base;
};
static void chunk_fn(void *ctx, int task, int thread) {
    struct chunk_ctx *c = ctx;
    c->fn(c->ctx, c->base + task, thread);
}

void vlm_pool_run(struct vlm_pool *p, int n_tasks, vlm_pool_fn fn, void *ctx) {
    if (n_tasks <= 0) return;
    if (!p || p->n_threads == 1 || n_tasks == 1 || in_pool_task) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&p->run_mu);
    in_pool_task = 1;
    for (int base = 0; base < n_tasks; base += CLAIM_MAX_TASKS) {
        int n = n_tasks - base < CLAIM_MAX_TASKS ? n_tasks - base : CLAIM_MAX_TASKS;
        struct chunk_ctx cc = {fn, ctx, base};
        p->fn = base ? chunk_fn : fn;
        p->ctx = base ? (void *)&cc : ctx;
        atomic_store_explicit(&p->done, 0, memory_order_relaxed);
        unsigned gen = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
        atomic_store_explicit(&p->claim, CLAIM_GEN(gen) | (uint64_t)n, memory_order_release);
        atomic_store(&p->gen, gen);   /* seq_cst: publishes the run before sleepers is read */
        wake_all(p);
        run_tasks(p, gen, 0);
        for (int i = 0; atomic_load_explicit(&p->done, memory_order_acquire) < n; i++) {
            cpu_relax();
            if (i > 2048) sched_yield();
        }
    }
    in_pool_task = 0;
    pthread_mutex_unlock(&p->run_mu);
}
