/* threadpool.h — a fixed set of worker threads running blocking parallel-for loops
 * (vlm_pool_run). Workers spin briefly between loops, then sleep, so that the many short
 * loops of one decode step do not pay a wake-up each. */
#ifndef VLM_UTIL_THREADPOOL_H
#define VLM_UTIL_THREADPOOL_H

struct vlm_pool;

/* One task of a parallel-for: task in [0, n_tasks), thread in [0, vlm_pool_size(pool))
 * (0 is the calling thread). Tasks of one run may execute in any order, concurrently. */
typedef void (*vlm_pool_fn)(void *ctx, int task, int thread);

/* Creates a pool of n_threads threads in all, the caller included (n_threads - 1 workers are
 * started). n_threads <= 0 means the number of online CPUs. Returns NULL on failure (out of
 * memory or threads); a NULL pool is valid everywhere and means "run serially". */
struct vlm_pool *vlm_pool_new(int n_threads);

/* Stops and joins the workers and frees the pool. NULL is fine. Not while a run is active. */
void vlm_pool_free(struct vlm_pool *pool);

/* Threads a run uses: 1 for a NULL pool. */
int vlm_pool_size(const struct vlm_pool *pool);

/* Runs fn(ctx, t, thread) for every t in [0, n_tasks) and returns when all have finished.
 * The caller runs tasks too. Thread-safe: concurrent callers are serialized; a call made from
 * inside a task (nested) runs its tasks serially on that thread. */
void vlm_pool_run(struct vlm_pool *pool, int n_tasks, vlm_pool_fn fn, void *ctx);

#endif
