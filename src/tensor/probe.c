/* probe.c — the machine-limit probes: a parallel streaming read (dot of a buffer with
 * itself, one load stream per thread) over a buffer far larger than L3, and parallel
 * register-only FMA loops from the kernel table in use. */
#include "tensor/probe.h"

#include "tensor/kernels.h"
#include "util/alloc.h"
#include "util/threadpool.h"

#include <string.h>
#include <time.h>

#define BW_BYTES  ((size_t)256 << 20)
#define BW_PASSES 8

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread. */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct bw_job {
    const float *buf;
    size_t n, chunk;
    float sink[64];
    double rate[64];   /* per task: bytes / CPU seconds of the thread that ran it */
    const struct vlm_kernels *kt;
};

static void bw_task(void *ctx, int task, int thread) {
    struct bw_job *j = ctx;
    size_t a = (size_t)task * j->chunk, b = a + j->chunk < j->n ? a + j->chunk : j->n;
    const float *p = j->buf + a;
    float s = 0;
    double c0 = cpu_s();
    /* dot takes an int count: walk the chunk in pieces */
    for (size_t off = 0; off < b - a; off += (size_t)1 << 24) {
        size_t len = b - a - off < ((size_t)1 << 24) ? b - a - off : ((size_t)1 << 24);
        s += j->kt->dot(p + off, p + off, (int)len);
    }
    j->sink[thread & 63] += s;
    double dc = cpu_s() - c0;
    j->rate[task & 63] = dc > 0 ? (double)(b - a) * sizeof(float) / dc : 0;
}

/* Sum of the per-task rates: what the threads do while they run, whether or not other
 * processes let them run at the same time. */
static double sum_rates(const double *r, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += r[i];
    return s;
}

double vlm_probe_mem_bandwidth(struct vlm_pool *pool) {
    float *buf = vlm_malloc(BW_BYTES);
    if (!buf) return 0.0;
    memset(buf, 0, BW_BYTES);   /* touch every page before timing */
    struct bw_job j = {.buf = buf, .n = BW_BYTES / sizeof(float), .kt = vlm_kernels()};
    int T = vlm_pool_size(pool);
    if (T > 64) T = 64;
    j.chunk = (j.n + T - 1) / T;
    double best = 0;
    for (int pass = 0; pass < BW_PASSES; pass++) {
        double t0 = now_s();
        vlm_pool_run(pool, T, bw_task, &j);
        double dt = now_s() - t0, cpu_rate = sum_rates(j.rate, T);
        if (dt > 0 && BW_BYTES / dt > best) best = BW_BYTES / dt;
        if (cpu_rate > best) best = cpu_rate;
    }
    vlm_free(buf);
    return best;
}

struct fl_job {
    const struct vlm_kernels *kt;
    long iters;
    double flops[64], rate[64];
    float acc[64][16];
};

static void fl_task(void *ctx, int task, int thread) {
    (void)thread;
    struct fl_job *j = ctx;
    double c0 = cpu_s();
    j->flops[task & 63] = j->kt->fma_loop(j->acc[task & 63], j->iters);
    double dc = cpu_s() - c0;
    j->rate[task & 63] = dc > 0 ? j->flops[task & 63] / dc : 0;
}

double vlm_probe_peak_flops(struct vlm_pool *pool) {
    struct fl_job *j = vlm_calloc(1, sizeof *j);
    if (!j) return 0.0;
    j->kt = vlm_kernels();
    int T = vlm_pool_size(pool);
    if (T > 64) T = 64;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < 16; i++) j->acc[t][i] = 0.5f + 0.01f * (float)i;
    /* calibrate: grow iters until one pass takes ~5 ms, then keep the best of many short
     * passes (short, so that some land in time slices where other processes are idle) */
    j->iters = 1 << 12;
    double best = 0;
    for (int pass = 0; pass < 40; pass++) {
        double t0 = now_s();
        vlm_pool_run(pool, T, fl_task, j);
        double dt = now_s() - t0, flops = 0;
        for (int t = 0; t < T; t++) flops += j->flops[t];
        if (dt < 0.005 && pass < 10) {
            j->iters *= 2;
            continue;
        }
        if (dt > 0 && flops / dt > best) best = flops / dt;
        double cpu_rate = sum_rates(j->rate, T);
        if (cpu_rate > best) best = cpu_rate;
    }
    vlm_free(j);
    return best;
}
