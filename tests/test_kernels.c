/* test_kernels.c — every kernel-table variant against the scalar reference (matmul over f32,
 * f16, bf16 with odd shapes and tails, dot/axpy/norms/activations), attention against a direct
 * two-pass reference (causal, GQA, masks, strided KV), RoPE, pixel shuffle, conversions and
 * the thread pool. `test_kernels --perf` prints GFLOP/s and GB/s against the probed limits. */
#include "test.h"

#include "tensor/kernels.h"
#include "tensor/quant.h"
#include "tensor/probe.h"
#include "tensor/tensor.h"
#include "util/alloc.h"
#include "util/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) {   /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1ull << 23))) - 1.0f;
}
static void fill(float *x, size_t n, float amp) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * amp;
}

/* ---- thread pool ---- */

struct pool_ctx {
    _Atomic int hits[1000];
    _Atomic int bad_thread;
    int n_threads;
};
static void pool_fn(void *ctx, int task, int thread) {
    struct pool_ctx *c = ctx;
    atomic_fetch_add(&c->hits[task], 1);
    if (thread < 0 || thread >= c->n_threads) atomic_store(&c->bad_thread, 1);
}
/* Nested runs (from inside a task) execute serially on that thread. */
struct nest_ctx {
    struct vlm_pool *pool;
    _Atomic int inner;
};
static void inner_fn(void *ctx, int task, int thread) {
    (void)task; (void)thread;
    atomic_fetch_add(&((struct nest_ctx *)ctx)->inner, 1);
}
static void outer_fn(void *ctx, int task, int thread) {
    (void)task; (void)thread;
    struct nest_ctx *c = ctx;
    vlm_pool_run(c->pool, 5, inner_fn, c);
}

/* Several threads sharing one pool: each run must still see every task exactly once. */
struct caller_arg {
    struct vlm_pool *pool;
    int ok;
};
static void count_fn(void *ctx, int task, int thread) {
    (void)thread;
    atomic_fetch_add(&((_Atomic int *)ctx)[task], 1);
}
static void *caller_main(void *arg) {
    struct caller_arg *a = arg;
    _Atomic int hits[37];
    a->ok = 1;
    for (int rep = 0; rep < 300; rep++) {
        for (int i = 0; i < 37; i++) atomic_store(&hits[i], 0);
        vlm_pool_run(a->pool, 37, count_fn, (void *)hits);
        for (int i = 0; i < 37; i++) a->ok &= atomic_load(&hits[i]) == 1;
    }
    return NULL;
}

static void test_pool(void) {
    for (int nt = 1; nt <= 4; nt++) {
        struct vlm_pool *p = vlm_pool_new(nt);
        CHECK(p != NULL);
        CHECK_EQ_INT(vlm_pool_size(p), nt);
        static struct pool_ctx c;
        for (int rep = 0; rep < 200; rep++) {
            int n = 1 + rep * 5 % 1000;
            for (int i = 0; i < 1000; i++) atomic_store(&c.hits[i], 0);
            c.n_threads = nt;
            atomic_store(&c.bad_thread, 0);
            vlm_pool_run(p, n, pool_fn, &c);
            int ok = 1;
            for (int i = 0; i < 1000; i++) ok &= atomic_load(&c.hits[i]) == (i < n);
            if (!ok || atomic_load(&c.bad_thread)) {
                CHECK_MSG(0, "pool %d threads, run %d tasks", nt, n);
                break;
            }
        }
        CHECK(1);
        vlm_pool_free(p);
    }
    struct vlm_pool *p = vlm_pool_new(3);
    /* runs after the workers went to sleep (longer than their spin) still see every task */
    for (int rep = 0; rep < 3; rep++) {
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
        _Atomic int hits[9];
        for (int i = 0; i < 9; i++) atomic_store(&hits[i], 0);
        vlm_pool_run(p, 9, count_fn, (void *)hits);
        int ok = 1;
        for (int i = 0; i < 9; i++) ok &= atomic_load(&hits[i]) == 1;
        CHECK_MSG(ok, "run after sleep %d", rep);
    }
    struct nest_ctx nc = {.pool = p};
    vlm_pool_run(p, 7, outer_fn, &nc);
    CHECK_EQ_INT(atomic_load(&nc.inner), 35);
    pthread_t th[3];
    struct caller_arg ca[3];
    for (int i = 0; i < 3; i++) {
        ca[i].pool = p;
        pthread_create(&th[i], NULL, caller_main, &ca[i]);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(ca[i].ok, "concurrent caller %d saw a task run twice or not at all", i);
    }
    vlm_pool_free(p);
    CHECK_EQ_INT(vlm_pool_size(NULL), 1);
    static struct pool_ctx c0;
    c0.n_threads = 1;
    vlm_pool_run(NULL, 3, pool_fn, &c0);
    CHECK(atomic_load(&c0.hits[2]) == 1);
}

/* ---- conversions ---- */

static void test_convert(void) {
    CHECK_EQ_INT(vlm_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(vlm_f32_to_bf16(1.00390625f), 0x3f80);          /* tie -> even */
    CHECK_EQ_INT(vlm_f32_to_bf16(1.01171875f), 0x3f82);          /* tie -> even (up) */
    CHECK_EQ_INT(vlm_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ_INT(vlm_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ_INT(vlm_f32_to_f16(65520.0f), 0x7c00);
    CHECK_EQ_INT(vlm_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ_INT(vlm_f32_to_f16(5.9604645e-8f), 0x0001);          /* smallest subnormal */
    CHECK_EQ_INT(vlm_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);        /* tie -> even */
    CHECK(vlm_f16_to_f32(0x7c00) == INFINITY);
    CHECK(isnan(vlm_f16_to_f32(0x7e00)));
    CHECK(isnan(vlm_bf16_to_f32(vlm_f32_to_bf16(NAN))));
    CHECK(vlm_f16_to_f32(0x0001) == 0x1p-24f);
    /* every f16 round-trips through f32 */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        uint32_t e = (h >> 10) & 31;
        if (e == 31 && (h & 0x3ff)) continue;
        if (vlm_f32_to_f16(vlm_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        uint16_t src[37];
        float a[37], b[37];
        for (int i = 0; i < 37; i++) src[i] = (uint16_t)(i * 1777 + 3);
        kt->bf16_to_f32(a, src, 37);
        vlm_kernels_variant(0)->bf16_to_f32(b, src, 37);
        CHECK(memcmp(a, b, sizeof a) == 0);
        for (int i = 0; i < 37; i++) src[i] = (uint16_t)(0x3c00 + i * 311 - 5000);
        kt->f16_to_f32(a, src, 37);
        vlm_kernels_variant(0)->f16_to_f32(b, src, 37);
        CHECK(memcmp(a, b, sizeof a) == 0);
    }
}

/* ---- matmul ---- */

/* Weights (n, k) of dtype wt built from f32 values (rounded into the dtype), returned in *wf
 * as the exact f32 values the kernel should see. */
static void *make_weights(enum vlm_dtype wt, int n, int k, float **wf) {
    size_t cnt = (size_t)n * k;
    float *f = vlm_malloc(cnt * sizeof *f);
    if (vlm_dtype_block_elems(wt) > 1) {   /* block types: quantized, f = dequantized */
        size_t rb = vlm_dtype_row_bytes(wt, k);
        uint8_t *q = vlm_malloc(rb * n);
        fill(f, cnt, 0.5f);
        for (int j = 0; j < n; j++) {
            vlm_quantize_row(wt, f + (size_t)j * k, k, q + rb * j);
            vlm_dequantize_row(wt, q + rb * j, f + (size_t)j * k, k);
        }
        *wf = f;
        return q;
    }
    void *w = vlm_malloc(cnt * (wt == VLM_DT_F32 ? 4 : 2));
    fill(f, cnt, 0.5f);
    for (size_t i = 0; i < cnt; i++) {
        if (wt == VLM_DT_F32) ((float *)w)[i] = f[i];
        else if (wt == VLM_DT_F16) f[i] = vlm_f16_to_f32(((uint16_t *)w)[i] = vlm_f32_to_f16(f[i]));
        else f[i] = vlm_bf16_to_f32(((uint16_t *)w)[i] = vlm_f32_to_bf16(f[i]));
    }
    *wf = f;
    return w;
}

static void check_matmul_case(const struct vlm_kernels *kt, enum vlm_dtype wt, int m, int n, int k,
                              int use_bias) {
    float *wf;
    void *w = make_weights(wt, n, k, &wf);
    int ldx = k + 3, ldy = n + 5;
    float *x = vlm_malloc((size_t)m * ldx * sizeof *x), *bias = vlm_malloc((size_t)n * sizeof *bias);
    float *y = vlm_malloc((size_t)m * ldy * sizeof *y);
    fill(x, (size_t)m * ldx, 1.0f);
    fill(bias, (size_t)n, 1.0f);
    for (size_t i = 0; i < (size_t)m * ldy; i++) y[i] = 1234.5f;  /* sentinel for untouched cells */
    /* columns [n0, n1) only, to test partial ranges */
    int n0 = n > 3 ? 1 : 0, n1 = n;
    kt->matmul(x, ldx, m, k, wt, w, (size_t)k, n0, n1, use_bias ? bias : NULL, y, ldy, m,
               !strcmp(kt->name, "avx512bf16"));
    double maxerr = 0;
    int sentinel_ok = 1;
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < ldy; j++) {
            float got = y[(size_t)i * ldy + j];
            if (j < n0 || j >= n1) {
                sentinel_ok &= got == 1234.5f;
                continue;
            }
            double ref = use_bias ? bias[j] : 0, mag = 0;
            for (int t = 0; t < k; t++) {
                ref += (double)x[(size_t)i * ldx + t] * wf[(size_t)j * k + t];
                mag += fabs((double)x[(size_t)i * ldx + t] * wf[(size_t)j * k + t]);
            }
            double err = fabs(got - ref) / (mag + 1.0);
            if (err > maxerr) maxerr = err;
        }
    }
    /* f32 accumulation: error grows ~ eps * sqrt(k) relative to sum |x*w|; 2e-6*k is loose
     * enough for any summation order and far below one wrong term (>= 1/k of mag). */
    /* avx512bf16 rounds x to bf16 in its many-row bf16 path: error up to 2^-9 of sum |x*w| */
    double tol = 1e-6 * (k + 16);
    if (!strcmp(kt->name, "avx512bf16") && wt == VLM_DT_BF16 && m >= 128) tol = 2.5e-3;
    CHECK_MSG(maxerr <= tol && sentinel_ok, "%s %s m=%d n=%d k=%d bias=%d: rel err %g sentinel %d",
              kt->name, vlm_dtype_name(wt), m, n, k, use_bias, maxerr, sentinel_ok);
    vlm_free(w); vlm_free(wf); vlm_free(x); vlm_free(bias); vlm_free(y);
}

/* Every table x dtype over 3 row counts x 2 column counts x 3 depths (a third under
 * VLM_TEST_QUICK), with and without bias. */
static void matmul_sweep_3x2x3(const int m[3], const int n[2], const int k[3]) {
    enum vlm_dtype dts[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16};
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        for (int d = 0; d < 3; d++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 2; b++)
                    for (int c = 0; c < 3; c++) {
                        if (test_quick() && (a + b + c + d) % 3) continue;
                        check_matmul_case(kt, dts[d], m[a], n[b], k[c], (a + c) & 1);
                    }
    }
}

static void test_matmul(void) {
    static const int ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 17, 33, 64};
    static const int ns[] = {1, 3, 16, 31, 33, 64, 97};
    static const int ksz[] = {1, 5, 16, 31, 32, 33, 64, 100, 257};
    enum vlm_dtype dts[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16};
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        for (int d = 0; d < 3; d++)
            for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
                for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                    for (size_t c = 0; c < sizeof ksz / sizeof *ksz; c++) {
                        if (test_quick() && (a + b + c) % 3) continue;
                        check_matmul_case(kt, dts[d], ms[a], ns[b], ksz[c], (int)((a + b + c) & 1));
                    }
    }
    /* 5..127 rows with k past the tiled GEMV's 1024-deep block (sums carried across blocks) */
    static const int tm[] = {9, 16, 19}, tn[] = {5, 33}, tk[] = {1024, 1100, 2071};
    matmul_sweep_3x2x3(tm, tn, tk);
    /* many rows: the packed GEMM paths (k past one 256-deep block, column and row tails) */
    static const int bm[] = {128, 131, 200}, bn[] = {33, 97}, bk[] = {31, 257, 300};
    matmul_sweep_3x2x3(bm, bn, bk);
    /* the threaded driver on bigger shapes, against the generic kernel */
    struct vlm_pool *pool = vlm_pool_new(3);
    static const int big[][3] = {{1, 300, 130}, {3, 257, 64}, {100, 200, 96}, {130, 70, 250}, {9, 1000, 33},
                                 {1024, 768, 768}};   /* SigLIP-B at 512 px */
    for (size_t s = 0; s < sizeof big / sizeof *big; s++)
        for (int d = 0; d < 3; d++) {
            int m = big[s][0], n = big[s][1], k = big[s][2];
            if (m >= 1024 && (test_quick() || d != 2)) continue;
            float *wf;
            void *w = make_weights(dts[d], n, k, &wf);
            float *x = vlm_malloc((size_t)m * k * 4), *y = vlm_malloc((size_t)m * n * 4),
                  *r = vlm_malloc((size_t)m * n * 4);
            fill(x, (size_t)m * k, 1.0f);
            struct vlm_tensor t = {.type = dts[d], .n_dims = 2, .ne = {n, k}, .data = w};
            vlm_matmul(pool, x, m, &t, NULL, y);
            vlm_kernels_variant(0)->matmul(x, k, m, k, dts[d], w, (size_t)k, 0, n, NULL, r, n, m, 0);
            double me = 0;
            for (size_t i = 0; i < (size_t)m * n; i++) me = fmax(me, fabs(y[i] - r[i]));
            CHECK_MSG(me < 1e-4, "threaded matmul %s m=%d n=%d k=%d err %g", vlm_dtype_name(dts[d]), m, n, k, me);
            vlm_free(w); vlm_free(wf); vlm_free(x); vlm_free(y); vlm_free(r);
        }
    vlm_pool_free(pool);
}

/* ---- row and elementwise ops ---- */

static double max_rel(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]) / (fabs(b[i]) + 1e-2));
    return m;
}

static void test_rowops(void) {
    const struct vlm_kernels *g = vlm_kernels_variant(0);
    /* references against libm in double */
    float x[1031], y[1031], w[1031], b[1031];
    double dmax;
    fill(x, 1031, 6.0f);
    for (int i = 0; i < 1031; i++) y[i] = x[i];
    g->gelu_erf(y, 1031);
    dmax = 0;
    for (int i = 0; i < 1031; i++) dmax = fmax(dmax, fabs(y[i] - 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)))));
    CHECK_MSG(dmax < 2e-6, "gelu_erf generic err %g", dmax);
    for (int i = 0; i < 1031; i++) y[i] = x[i];
    g->gelu_tanh(y, 1031);
    dmax = 0;
    for (int i = 0; i < 1031; i++) {
        double v = x[i];
        dmax = fmax(dmax, fabs(y[i] - 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)))));
    }
    CHECK_MSG(dmax < 2e-6, "gelu_tanh generic err %g", dmax);
    for (int i = 0; i < 1031; i++) y[i] = x[i];
    g->silu(y, 1031);
    dmax = 0;
    for (int i = 0; i < 1031; i++) dmax = fmax(dmax, fabs(y[i] - x[i] / (1 + exp(-(double)x[i]))));
    CHECK_MSG(dmax < 2e-6, "silu generic err %g", dmax);
    for (int i = 0; i < 1031; i++) y[i] = x[i];
    g->gelu_quick(y, 1031);
    dmax = 0;
    for (int i = 0; i < 1031; i++) dmax = fmax(dmax, fabs(y[i] - x[i] / (1 + exp(-1.702 * (double)x[i]))));
    CHECK_MSG(dmax < 2e-6, "gelu_quick generic err %g", dmax);

    static const int sizes[] = {1, 7, 16, 17, 64, 100, 1031};
    for (int v = 1; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            int n = sizes[s];
            float r[1031], o[1031];
            fill(x, (size_t)n, 8.0f); fill(w, (size_t)n, 1.0f); fill(b, (size_t)n, 1.0f);
            #define ELEM(fn, tol) do { \
                memcpy(r, x, n * 4); memcpy(o, x, n * 4); g->fn(r, n); kt->fn(o, n); \
                CHECK_MSG(max_rel(o, r, n) < tol, "%s " #fn " n=%d err %g", kt->name, n, max_rel(o, r, n)); \
            } while (0)
            /* polynomial erf/exp: |err| <= 1e-6 absolute + 1e-5 relative (x up to +-8) */
            #define ELEM_ABS(fn) do { \
                memcpy(r, x, n * 4); memcpy(o, x, n * 4); g->fn(r, n); kt->fn(o, n); \
                double e_ = 0; \
                for (int i_ = 0; i_ < n; i_++) e_ = fmax(e_, fabs(o[i_] - r[i_]) - 1e-5 * fabs(r[i_])); \
                CHECK_MSG(e_ <= 1e-6, "%s " #fn " n=%d abs err %g", kt->name, n, e_); \
            } while (0)
            ELEM_ABS(gelu_erf);
            ELEM_ABS(gelu_tanh);
            ELEM(silu, 1e-5);
            ELEM(gelu_quick, 1e-5);
            ELEM(softmax, 1e-5);
            memcpy(r, x, n * 4); memcpy(o, x, n * 4);
            o[n / 2] = r[n / 2] = -INFINITY;
            float s1 = g->exp_sum(r, 3.0f, n), s2 = kt->exp_sum(o, 3.0f, n);
            CHECK_MSG(max_rel(o, r, n) < 1e-5 && fabsf(s1 - s2) <= 1e-5f * s1 && o[n / 2] == 0.0f,
                      "%s exp_sum n=%d err %g", kt->name, n, max_rel(o, r, n));
            memcpy(r, x, n * 4); memcpy(o, x, n * 4);
            g->silu_mul(r, w, n); kt->silu_mul(o, w, n);
            CHECK_MSG(max_rel(o, r, n) < 1e-5, "%s silu_mul n=%d", kt->name, n);
            memcpy(r, x, n * 4); memcpy(o, x, n * 4);
            g->add(r, w, n); kt->add(o, w, n);
            CHECK_MSG(max_rel(o, r, n) < 1e-6, "%s add n=%d", kt->name, n);
            g->rmsnorm(r, x, w, n, 1e-6f); kt->rmsnorm(o, x, w, n, 1e-6f);
            CHECK_MSG(max_rel(o, r, n) < 1e-5, "%s rmsnorm n=%d err %g", kt->name, n, max_rel(o, r, n));
            g->layernorm(r, x, w, b, n, 1e-6f); kt->layernorm(o, x, w, b, n, 1e-6f);
            CHECK_MSG(max_rel(o, r, n) < 1e-4, "%s layernorm n=%d err %g", kt->name, n, max_rel(o, r, n));
            float d1 = g->dot(x, w, n), d2 = kt->dot(x, w, n);
            CHECK_MSG(fabsf(d1 - d2) < 1e-4f * (1 + n), "%s dot n=%d", kt->name, n);
            memcpy(r, b, n * 4); memcpy(o, b, n * 4);
            g->axpy(r, 0.37f, x, n); kt->axpy(o, 0.37f, x, n);
            CHECK_MSG(max_rel(o, r, n) < 1e-5, "%s axpy n=%d", kt->name, n);
            memcpy(r, x, n * 4); memcpy(o, x, n * 4);
            g->scale(r, -1.7f, n); kt->scale(o, -1.7f, n);
            CHECK_MSG(max_rel(o, r, n) < 1e-6, "%s scale n=%d", kt->name, n);
        }
    }
    /* attention-row kernels: key counts with and without a 4-key remainder, head dims with
       16-lane tails and over 64 columns, rows strided wider than the head */
    {
        static const int dims[] = {1, 15, 64, 80, 128, 200};
        static const int keys[] = {1, 3, 4, 13, 64};
        static float kv[64 * 256], p[64], acc_r[256], acc_o[256], s_r[64], s_o[64], qv[256];
        static uint16_t kv16[64 * 256];
        fill(kv, sizeof kv / sizeof *kv, 1.0f);
        fill(qv, 256, 1.0f);
        fill(p, 64, 1.0f);
        static const enum vlm_dtype kvt[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16};
        for (int v = 1; v < VLM_KERNELS_N_VARIANTS; v++) {
            const struct vlm_kernels *kt = vlm_kernels_variant(v);
            if (!kt) continue;
            for (int ty = 0; ty < 3; ty++) {
                const void *src = kv;
                if (kvt[ty] == VLM_DT_F16) { vlm_f32_to_f16_row(kv16, kv, 64 * 256); src = kv16; }
                if (kvt[ty] == VLM_DT_BF16) { vlm_f32_to_bf16_row(kv16, kv, 64 * 256); src = kv16; }
                for (size_t di = 0; di < sizeof dims / sizeof *dims; di++)
                    for (size_t ki = 0; ki < sizeof keys / sizeof *keys; ki++) {
                        int d = dims[di], n = keys[ki];
                        size_t ld = (size_t)d + 37;   /* 64 rows of ld <= 237 elements fit kv */
                        g->dots(s_r, qv, src, kvt[ty], ld, n, d);
                        kt->dots(s_o, qv, src, kvt[ty], ld, n, d);
                        double e = 0;
                        for (int t = 0; t < n; t++) e = fmax(e, fabs(s_o[t] - s_r[t]) / (1 + fabs(s_r[t])));
                        CHECK_MSG(e < 1e-5, "%s dots %s d=%d n=%d err %g", kt->name, vlm_dtype_name(kvt[ty]), d, n, e);
                        for (int i = 0; i < 256; i++) acc_r[i] = acc_o[i] = 0.25f * (float)(i % 7);
                        g->axpys(acc_r, p, src, kvt[ty], ld, n, d);
                        kt->axpys(acc_o, p, src, kvt[ty], ld, n, d);
                        e = 0;
                        for (int i = 0; i < 256; i++) e = fmax(e, fabs(acc_o[i] - acc_r[i]) / (1 + fabs(acc_r[i])));
                        CHECK_MSG(e < 1e-5, "%s axpys %s d=%d n=%d err %g (columns past d untouched)", kt->name,
                                  vlm_dtype_name(kvt[ty]), d, n, e);
                    }
            }
        }
    }
    /* softmax extremes: large values do not overflow, -inf entries get 0 */
    float sm[5] = {1000.0f, 1000.0f, -INFINITY, 999.0f, -1000.0f};
    vlm_softmax(sm, 1, 5);
    CHECK_NEAR(sm[0], 1.0 / (2 + exp(-1.0) + exp(-2000.0)), 1e-6);
    CHECK(sm[2] == 0.0f);
    CHECK_NEAR(sm[0] + sm[1] + sm[2] + sm[3] + sm[4], 1.0, 1e-6);
    /* rmsnorm/layernorm against hand values */
    float hx[4] = {1, 2, 3, 4}, hw[4] = {1, 1, 2, 1}, hb[4] = {0, 0, 0, 1}, hy[4];
    vlm_rmsnorm(hy, hx, hw, 1, 4, 0.0f);
    CHECK_NEAR(hy[2], 3 * 2 / sqrt(7.5), 1e-6);
    vlm_layernorm(hy, hx, hw, hb, 1, 4, 0.0f);
    CHECK_NEAR(hy[3], 1.5 / sqrt(1.25) + 1, 1e-6);
    CHECK_NEAR(hy[0], -1.5 / sqrt(1.25), 1e-6);
}

/* ---- attention ---- */

static void ref_attention(float *out, const float *q, int n_q, const float *k, const float *v,
                          int n_kv, int n_head, int n_kv_head, int hd, size_t stride, float scale,
                          int causal, int q_pos0, const uint8_t *mask) {
    double *s = vlm_malloc((size_t)n_kv * sizeof *s);
    for (int i = 0; i < n_q; i++)
        for (int h = 0; h < n_head; h++) {
            int g = h / (n_head / n_kv_head);
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < n_kv; j++) {
                int vis = (!mask || mask[j]) && (!causal || j <= q_pos0 + i);
                s[j] = -INFINITY;
                if (!vis) continue;
                double d = 0;
                for (int t = 0; t < hd; t++)
                    d += (double)q[((size_t)i * n_head + h) * hd + t] * k[(size_t)j * stride + (size_t)g * hd + t];
                s[j] = d * scale;
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < n_kv; j++) {
                s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                sum += s[j];
            }
            for (int t = 0; t < hd; t++) {
                double o = 0;
                for (int j = 0; j < n_kv; j++) if (s[j] > 0) o += s[j] * v[(size_t)j * stride + (size_t)g * hd + t];
                out[((size_t)i * n_head + h) * hd + t] = sum > 0 ? (float)(o / sum) : 0.0f;
            }
        }
    vlm_free(s);
}

static void test_attention(void) {
    struct vlm_pool *pool = vlm_pool_new(2);
    struct { int n_q, n_kv, n_head, n_kv_head, hd, causal, q_pos0, masked, extra; } cs[] = {
        {1, 1, 1, 1, 8, 1, 0, 0, 0},
        {5, 5, 4, 4, 16, 1, 0, 0, 0},     /* prefill, causal */
        {7, 20, 6, 2, 64, 1, 13, 0, 8},   /* chunk after a cache of 13, GQA, strided */
        {1, 77, 9, 3, 64, 1, 76, 0, 40},  /* decode step, SmolVLM-256M heads */
        {1, 700, 9, 3, 64, 1, 699, 0, 0}, /* decode in chunks of keys, merged */
        {3, 500, 4, 2, 64, 1, 260, 1, 8}, /* 3 rows, chunks past some rows' last key, mask */
        {1, 9000, 2, 1, 32, 0, 0, 1, 0},  /* longer chunks past 64 of them */
        {4, 5000, 16, 2, 64, 1, 4996, 0, 0}, /* partials too many for the stack */
        {33, 70, 4, 1, 33, 0, 0, 1, 0},   /* vision-like, odd head_dim, key mask */
        {17, 130, 12, 12, 64, 0, 0, 1, 3},
        {4, 100, 2, 2, 128, 1, 96, 1, 0}, /* causal + mask */
        /* blocked path (>= 16 queries): several query and key blocks, causal chunks */
        {100, 300, 4, 2, 64, 1, 200, 0, 5},
        {70, 70, 3, 3, 128, 1, 0, 1, 0},
        {20, 260, 2, 1, 256, 0, 0, 1, 7},
        {40, 200, 2, 2, 48, 1, 0, 0, 0},
        {90, 300, 2, 2, 33, 0, 0, 2, 0},  /* the whole first key block hidden */
        {30, 280, 2, 2, 16, 1, 250, 2, 0},
        /* SigLIP at 512 px: 1024 patches, head_dim 64, padded patches masked */
        {1024, 1024, 2, 2, 64, 0, 0, 1, 64 * 10},
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        if (test_quick() && cs[c].n_q > 500) continue;
        int nq = cs[c].n_q, nkv = cs[c].n_kv, nh = cs[c].n_head, nkh = cs[c].n_kv_head, hd = cs[c].hd;
        size_t stride = (size_t)nkh * hd + cs[c].extra;
        float *q = vlm_malloc((size_t)nq * nh * hd * 4), *k = vlm_malloc(nkv * stride * 4),
              *v = vlm_malloc(nkv * stride * 4), *o = vlm_malloc((size_t)nq * nh * hd * 4),
              *r = vlm_malloc((size_t)nq * nh * hd * 4), *o1t = vlm_malloc((size_t)nq * nh * hd * 4);
        uint8_t *mask = NULL;
        fill(q, (size_t)nq * nh * hd, 2.0f); fill(k, nkv * stride, 2.0f); fill(v, nkv * stride, 1.0f);
        if (cs[c].masked) {
            mask = vlm_malloc((size_t)nkv);
            for (int j = 0; j < nkv; j++)
                mask[j] = cs[c].masked == 2 ? j >= 130 : (j % 7) != 3 && j < nkv - 5;
        }
        float scale = 1.0f / sqrtf((float)hd);
        /* a 16-bit KV cache: the reference gets the same rounded K and V, so only the f32
           arithmetic differs and the bound stays that of the f32 cache */
        size_t nkvs = (size_t)nkv * stride;
        uint16_t *k16 = vlm_malloc(nkvs * 2), *v16 = vlm_malloc(nkvs * 2);
        float *kr = vlm_malloc(nkvs * 4), *vr = vlm_malloc(nkvs * 4);
        static const enum vlm_dtype kvt[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16};
        for (int t = 0; t < 3; t++) {
            if (t && nq > 500) continue;
            const void *ka = k, *va = v;
            const float *kref = k, *vref = v;
            if (kvt[t] != VLM_DT_F32) {
                if (kvt[t] == VLM_DT_F16) { vlm_f32_to_f16_row(k16, k, nkvs); vlm_f32_to_f16_row(v16, v, nkvs);
                                            vlm_f16_to_f32_row(kr, k16, nkvs); vlm_f16_to_f32_row(vr, v16, nkvs); }
                else { vlm_f32_to_bf16_row(k16, k, nkvs); vlm_f32_to_bf16_row(v16, v, nkvs);
                       vlm_bf16_to_f32_row(kr, k16, nkvs); vlm_bf16_to_f32_row(vr, v16, nkvs); }
                ka = k16; va = v16; kref = kr; vref = vr;
            }
            ref_attention(r, q, nq, kref, vref, nkv, nh, nkh, hd, stride, scale, cs[c].causal, cs[c].q_pos0, mask);
            for (int p = 0; p < 2 * VLM_KERNELS_N_VARIANTS; p++) {
                const struct vlm_kernels *kt = vlm_kernels_variant(p / 2);
                if (!kt) continue;
                vlm_attention_with(kt, p % 2 ? pool : NULL, o, q, nq, ka, va, kvt[t], nkv, nh, nkh, hd, stride,
                                   scale, cs[c].causal, cs[c].q_pos0, mask);
                /* the same bits on 1 and 2 threads */
                if (p % 2 == 0) memcpy(o1t, o, (size_t)nq * nh * hd * 4);
                else CHECK_MSG(!memcmp(o1t, o, (size_t)nq * nh * hd * 4), "attention %s kv %s case %zu: 1 and 2 threads differ",
                               kt->name, vlm_dtype_name(kvt[t]), c);
                double me = 0;
                for (size_t i = 0; i < (size_t)nq * nh * hd; i++) me = fmax(me, fabs(o[i] - r[i]));
                CHECK_MSG(me < 2e-5, "attention %s kv %s case %zu pool %d: max err %g", kt->name,
                          vlm_dtype_name(kvt[t]), c, p % 2, me);
            }
        }
        vlm_free(k16); vlm_free(v16); vlm_free(kr); vlm_free(vr);
        vlm_free(q); vlm_free(k); vlm_free(v); vlm_free(o); vlm_free(r); vlm_free(mask); vlm_free(o1t);
    }
    /* a query that sees no key gives zeros */
    float q1[4] = {1, 2, 3, 4}, k1[4] = {1, 1, 1, 1}, o1[4] = {9, 9, 9, 9};
    uint8_t m0 = 0;
    vlm_attention(NULL, o1, q1, 1, k1, k1, 1, 1, 1, 4, 4, 0.5f, 0, 0, &m0);
    CHECK(o1[0] == 0.0f && o1[3] == 0.0f);
    vlm_pool_free(pool);
}

/* Per-query key spans and soft-capping (Gemma 3's sliding windows and image blocks) against a
 * direct double-precision reference, every kernel table, blocked and row paths, 16-bit KV. */
static void ref_spans(float *out, const float *q, int n_q, const float *k, const float *v, int n_kv, int nh,
                      int nkh, int hd, size_t stride, float scale, const int32_t *lo, const int32_t *hi, float cap) {
    for (int i = 0; i < n_q; i++)
        for (int h = 0; h < nh; h++) {
            int g = h / (nh / nkh);
            double mx = -INFINITY, sum = 0, o[512] = {0};
            double *s = vlm_malloc(sizeof(double) * (size_t)n_kv);
            for (int j = 0; j < n_kv; j++) {
                s[j] = -INFINITY;
                if (j < lo[i] || j >= hi[i]) continue;
                double d = 0;
                for (int t = 0; t < hd; t++)
                    d += (double)q[((size_t)i * nh + h) * hd + t] * k[(size_t)j * stride + (size_t)g * hd + t];
                d *= scale;
                if (cap > 0) d = cap * tanh(d / cap);
                s[j] = d;
                mx = fmax(mx, d);
            }
            for (int j = 0; j < n_kv; j++) {
                if (s[j] == -INFINITY) continue;
                double e = exp(s[j] - mx);
                sum += e;
                for (int t = 0; t < hd; t++) o[t] += e * v[(size_t)j * stride + (size_t)g * hd + t];
            }
            for (int t = 0; t < hd; t++) out[((size_t)i * nh + h) * hd + t] = sum > 0 ? (float)(o[t] / sum) : 0.0f;
            vlm_free(s);
        }
}

static void test_attention_spans(void) {
    struct vlm_pool *pool = vlm_pool_new(2);
    struct { int n_q, n_kv, nh, nkh, hd, window, img0, img1; float cap; } cs[] = {
        {1, 40, 4, 2, 16, 8, -1, -1, 0},          /* decode, sliding window */
        {1, 40, 4, 2, 16, 0, -1, -1, 30.0f},      /* decode, full, soft-capped */
        {12, 12, 2, 1, 32, 5, 3, 9, 0},           /* row path: window + an image block */
        {70, 90, 4, 2, 64, 16, 40, 66, 0},        /* blocked path: chunk after 20 cached */
        {70, 90, 4, 2, 64, 0, 30, 60, 50.0f},     /* blocked, full attention, image, cap */
        {200, 200, 2, 2, 256, 33, 10, 150, 0},    /* head_dim 256 (Gemma 3), long image block */
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        int nq = cs[c].n_q, nkv = cs[c].n_kv, nh = cs[c].nh, nkh = cs[c].nkh, hd = cs[c].hd;
        size_t stride = (size_t)nkh * hd, nkvs = (size_t)nkv * stride;
        float *q = vlm_malloc((size_t)nq * nh * hd * 4), *k = vlm_malloc(nkvs * 4), *v = vlm_malloc(nkvs * 4),
              *o = vlm_malloc((size_t)nq * nh * hd * 4), *r = vlm_malloc((size_t)nq * nh * hd * 4),
              *kr = vlm_malloc(nkvs * 4), *vr = vlm_malloc(nkvs * 4);
        uint16_t *k16 = vlm_malloc(nkvs * 2), *v16 = vlm_malloc(nkvs * 2);
        int32_t *lo = vlm_malloc(sizeof(int32_t) * (size_t)nq), *hi = vlm_malloc(sizeof(int32_t) * (size_t)nq);
        fill(q, (size_t)nq * nh * hd, 2.0f); fill(k, nkvs, 2.0f); fill(v, nkvs, 1.0f);
        for (int i = 0; i < nq; i++) {   /* queries are the last n_q positions */
            int p = nkv - nq + i;
            lo[i] = cs[c].window > 0 && p - cs[c].window + 1 > 0 ? p - cs[c].window + 1 : 0;
            hi[i] = p >= cs[c].img0 && p < cs[c].img1 ? cs[c].img1 : p + 1;
        }
        struct vlm_attn_spans sp = {lo, hi, cs[c].cap};
        float scale = 1.0f / sqrtf((float)hd);
        static const enum vlm_dtype kvt[] = {VLM_DT_F32, VLM_DT_BF16};
        for (int t = 0; t < 2; t++) {
            const void *ka = k, *va = v;
            const float *kref = k, *vref = v;
            if (t) {
                vlm_f32_to_bf16_row(k16, k, nkvs); vlm_f32_to_bf16_row(v16, v, nkvs);
                vlm_bf16_to_f32_row(kr, k16, nkvs); vlm_bf16_to_f32_row(vr, v16, nkvs);
                ka = k16; va = v16; kref = kr; vref = vr;
            }
            ref_spans(r, q, nq, kref, vref, nkv, nh, nkh, hd, stride, scale, lo, hi, cs[c].cap);
            for (int p = 0; p < 2 * VLM_KERNELS_N_VARIANTS; p++) {
                const struct vlm_kernels *kt = vlm_kernels_variant(p / 2);
                if (!kt) continue;
                vlm_attention_spans_with(kt, p % 2 ? pool : NULL, o, q, nq, ka, va, kvt[t], nkv, nh, nkh, hd,
                                         stride, scale, &sp);
                double me = 0;
                for (size_t i = 0; i < (size_t)nq * nh * hd; i++) me = fmax(me, fabs(o[i] - r[i]));
                CHECK_MSG(me < 2e-5, "attention spans %s kv %s case %zu pool %d: max err %g", kt->name,
                          vlm_dtype_name(kvt[t]), c, p % 2, me);
            }
        }
        vlm_free(q); vlm_free(k); vlm_free(v); vlm_free(o); vlm_free(r); vlm_free(kr); vlm_free(vr);
        vlm_free(k16); vlm_free(v16); vlm_free(lo); vlm_free(hi);
    }
    vlm_pool_free(pool);
}

/* ---- RoPE ---- */

static void test_rope(void) {
    int nt = 3, nh = 2, hd = 8;
    float x[48], x0[48];
    int32_t pos[3] = {0, 5, 1000};
    fill(x0, 48, 1.0f);
    memcpy(x, x0, sizeof x);
    vlm_rope(x, nt, nh, hd, pos, 10000.0f, 0);
    for (int t = 0; t < nt; t++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd / 2; i++) {
                double f = 1.0 / pow(10000.0, 2.0 * i / hd), a = pos[t] * f;
                const float *v = x0 + (t * nh + h) * hd;
                double e0 = v[i] * cos(a) - v[i + hd / 2] * sin(a);
                double e1 = v[i + hd / 2] * cos(a) + v[i] * sin(a);
                CHECK_NEAR(x[(t * nh + h) * hd + i], e0, 2e-4);
                CHECK_NEAR(x[(t * nh + h) * hd + i + hd / 2], e1, 2e-4);
            }
    /* partial rotary: dims past rot_dim untouched */
    memcpy(x, x0, sizeof x);
    vlm_rope(x, nt, nh, hd, pos, 10000.0f, 4);
    CHECK(x[(1 * nh + 1) * hd + 5] == x0[(1 * nh + 1) * hd + 5]);
    CHECK(x[(1 * nh + 1) * hd + 0] != x0[(1 * nh + 1) * hd + 0]);
    /* scaling types: inv_freq against transformers' formulas for head_dim 64 */
    float inv[32], base[32];
    struct vlm_rope_params p = {.type = VLM_ROPE_DEFAULT, .theta = 500000.0f, .rot_dim = 64};
    vlm_rope_inv_freq(&p, 0, base);
    CHECK_NEAR(base[1], 1.0 / pow(500000.0, 2.0 / 64), 1e-7);
    p.type = VLM_ROPE_LINEAR; p.factor = 4.0f;
    vlm_rope_inv_freq(&p, 0, inv);
    CHECK_NEAR(inv[3], base[3] / 4.0, 1e-9);
    p.type = VLM_ROPE_LLAMA3; p.factor = 8; p.low_freq_factor = 1; p.high_freq_factor = 4;
    p.original_max_pos = 8192;
    vlm_rope_inv_freq(&p, 0, inv);
    int n_high = 0, n_low = 0, n_mid = 0;
    for (int i = 0; i < 32; i++) {
        double wl = 2 * M_PI / base[i];
        if (wl < 2048) { n_high++; CHECK(inv[i] == base[i]); }
        else if (wl > 8192) { n_low++; CHECK_NEAR(inv[i], base[i] / 8, 1e-12); }
        else { n_mid++; CHECK(inv[i] < base[i] && inv[i] > base[i] / 8); }
    }
    CHECK(n_high > 0 && n_low > 0 && n_mid > 0);
    p.type = VLM_ROPE_DYNAMIC; p.factor = 2; p.max_pos = 100;
    vlm_rope_inv_freq(&p, 50, inv);
    CHECK(inv[5] == base[5]);
    vlm_rope_inv_freq(&p, 400, inv);
    CHECK_NEAR(inv[1], 1.0 / pow(500000.0 * pow(2.0 * 400 / 100 - 1, 64.0 / 62), 2.0 / 64), 1e-7);
}

/* ---- vision helpers ---- */

static void test_vision_helpers(void) {
    /* pixel shuffle: the output of transformers' Idefics3Connector.pixel_shuffle on
     * arange(32).view(1, 16, 2) with scale 2 */
    static const float want[32] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15,
                                   16, 17, 18, 19, 24, 25, 26, 27, 20, 21, 22, 23, 28, 29, 30, 31};
    float x[32], y[32];
    for (int i = 0; i < 32; i++) x[i] = (float)i;
    vlm_pixel_shuffle(y, x, 16, 2, 2);
    CHECK(memcmp(y, want, sizeof y) == 0);
    /* conv2d patch embedding against a direct convolution */
    int C = 3, H = 8, W = 12, p = 4, d = 5, np = (H / p) * (W / p);
    float img[3 * 8 * 12], wt[5 * 3 * 4 * 4], bias[5], out[6 * 5], scratch[6 * 48];
    fill(img, sizeof img / 4, 1.0f); fill(wt, sizeof wt / 4, 1.0f); fill(bias, 5, 1.0f);
    struct vlm_tensor t = {.type = VLM_DT_F32, .n_dims = 4, .ne = {d, C, p, p}, .data = wt};
    vlm_conv2d_patch(NULL, out, img, C, H, W, p, &t, bias, scratch);
    double me = 0;
    for (int py = 0; py < H / p; py++)
        for (int px = 0; px < W / p; px++)
            for (int o = 0; o < d; o++) {
                double s = bias[o];
                for (int c = 0; c < C; c++)
                    for (int dy = 0; dy < p; dy++)
                        for (int dx = 0; dx < p; dx++)
                            s += (double)img[(c * H + py * p + dy) * W + px * p + dx] *
                                 wt[((o * C + c) * p + dy) * p + dx];
                me = fmax(me, fabs(out[(py * (W / p) + px) * d + o] - s));
            }
    CHECK_MSG(me < 1e-5, "conv2d patch err %g", me);
    CHECK_EQ_INT(np, 6);
}

/* ---- perf mode ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* CPU time of the calling thread: with other processes on the machine, flops / cpu time
 * shows what the kernel does while it runs (exact for one thread). */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Times vlm_matmul on (m, k) x (n, k)^T; prints GFLOP/s and weight GB/s with fractions.
 * Decode-sized weights are cycled through enough copies (> 4x L3) that every call streams
 * them from memory, as a real decode step does. */
static void perf_matmul(struct vlm_pool *pool, const char *what, enum vlm_dtype wt, int m, int n,
                        int k, double peak, double bw) {
    double wbytes = (double)n * vlm_dtype_row_bytes(wt, k), flops = 2.0 * m * n * k;
    int ncopy = (int)(128e6 / wbytes) + 1;
    if (ncopy > 64) ncopy = 64;
    void *w[64];
    float *wf;
    for (int c = 0; c < ncopy; c++) {
        w[c] = make_weights(wt, n, k, &wf);
        vlm_free(wf);
    }
    float *x = vlm_malloc((size_t)m * k * 4), *y = vlm_malloc((size_t)m * n * 4);
    fill(x, (size_t)m * k, 1.0f);
    struct vlm_tensor t = {.type = wt, .n_dims = 2, .ne = {n, k}, .data = w[0]};
    vlm_matmul(pool, x, m, &t, NULL, y);
    int reps = (int)(0.3e9 / flops) + 3;
    if (reps > 3000) reps = 3000;
    double times[3000], c0 = cpu_s();
    for (int r = 0; r < reps; r++) {
        t.data = w[r % ncopy];
        double t0 = now_s();
        vlm_matmul(pool, x, m, &t, NULL, y);
        times[r] = now_s() - t0;
    }
    double cpu = (cpu_s() - c0) / reps;
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    double med = times[reps / 2];   /* the median: robust to other processes on the machine */
    /* wall: the median call; cpu (1 thread): the same work over the thread's CPU time */
    int T = vlm_pool_size(pool);
    printf("%-18s %-4s m=%-4d n=%-5d k=%-4d wall %8.1f us %6.1f GFLOP/s %3.0f%% %6.1f GB/s %3.0f%%",
           what, vlm_dtype_name(wt), m, n, k, med * 1e6, flops / med * 1e-9, 100 * flops / med / peak,
           wbytes / med * 1e-9, 100 * wbytes / med / bw);
    if (T == 1)
        printf(" | cpu %8.1f us %6.1f GFLOP/s %3.0f%% %6.1f GB/s %3.0f%%", cpu * 1e6, flops / cpu * 1e-9,
               100 * flops / cpu / peak, wbytes / cpu * 1e-9, 100 * wbytes / cpu / bw);
    printf("\n");
    for (int c = 0; c < ncopy; c++) vlm_free(w[c]);
    vlm_free(x); vlm_free(y);
}

static int perf_main(int argc, char **argv) {
    int nt = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 0;
    struct vlm_pool *pool = vlm_pool_new(nt);
    printf("kernels: %s, threads: %d (fractions: of the probed limits; with 1 thread the cpu\n"
           "columns divide the work by the thread's CPU time, which other processes cannot skew)\n",
           vlm_kernels()->name, vlm_pool_size(pool));
    double bw = vlm_probe_mem_bandwidth(pool), peak = vlm_probe_peak_flops(pool);
    printf("probe: memory bandwidth %.1f GB/s, peak f32 FMA %.1f GFLOP/s\n", bw * 1e-9, peak * 1e-9);
    /* `--perf THREADS quant`: only the block-type section */
    int only_q = argc > 2 && !strcmp(argv[2], "quant");
    enum vlm_dtype dts[] = {VLM_DT_BF16, VLM_DT_F16, VLM_DT_F32};
    for (int d = 0; d < 3 && !only_q; d++) {
        /* SmolVLM-256M text shapes: hidden 576, MLP 1536, vocab 49280 */
        perf_matmul(pool, "decode q/o proj", dts[d], 1, 576, 576, peak, bw);
        perf_matmul(pool, "decode mlp gate+up", dts[d], 1, 3072, 576, peak, bw);
        perf_matmul(pool, "decode mlp down", dts[d], 1, 576, 1536, peak, bw);
        perf_matmul(pool, "decode lm head", dts[d], 1, 49280, 576, peak, bw);
        /* SigLIP-B/16 shapes at 512px: 1024 patches, width 768, MLP 3072 */
        perf_matmul(pool, "vision qkv-like", dts[d], 1024, 768, 768, peak, bw);
        perf_matmul(pool, "vision mlp fc1", dts[d], 1024, 3072, 768, peak, bw);
        perf_matmul(pool, "prefill mlp", dts[d], 128, 1536, 576, peak, bw);
    }
    /* block types at SmolVLM-256M text shapes (n x k): decode (m = 1) and prefill (m = 256);
     * K-quants need k % 256 == 0, so only the MLP down projection (k = 1536) has them */
    enum vlm_dtype qts[] = {VLM_DT_Q8_0, VLM_DT_Q4_0, VLM_DT_Q4_1, VLM_DT_Q5_0, VLM_DT_Q5_1,
                            VLM_DT_Q4_K, VLM_DT_Q5_K, VLM_DT_Q6_K, VLM_DT_BF16};
    static const int qshape[][2] = {{576, 1536}, {1536, 576}, {49280, 576}};
    for (int mi = 0; mi < 2; mi++)
        for (size_t d = 0; d < sizeof qts / sizeof *qts; d++)
            for (int s = 0; s < 3; s++) {
                if (qshape[s][1] % vlm_dtype_block_elems(qts[d])) continue;
                if (mi && s == 2) continue;   /* no prefill through the LM head */
                perf_matmul(pool, mi ? "prefill" : "decode", qts[d], mi ? 256 : 1, qshape[s][0],
                            qshape[s][1], peak, bw);
            }
    /* thread-pool round trip: an empty parallel-for, the fixed cost of each threaded op */
    {
        static struct pool_ctx pc;
        pc.n_threads = vlm_pool_size(pool);
        int reps = 20000;
        double t0 = now_s();
        for (int r = 0; r < reps; r++) vlm_pool_run(pool, vlm_pool_size(pool), pool_fn, &pc);
        printf("%-20s %9.2f us per vlm_pool_run (%d tasks)\n", "pool round trip",
               (now_s() - t0) / reps * 1e6, vlm_pool_size(pool));
    }
    /* attention, vision-sized: 1024 x 1024, 12 heads of 64 */
    int nq = 1024, nh = 12, hd = 64;
    float *q = vlm_malloc((size_t)nq * nh * hd * 4), *kv = vlm_malloc((size_t)nq * nh * hd * 4),
          *o = vlm_malloc((size_t)nq * nh * hd * 4);
    fill(q, (size_t)nq * nh * hd, 1.0f); fill(kv, (size_t)nq * nh * hd, 1.0f);
    double t0 = now_s(), c0 = cpu_s();
    vlm_attention(pool, o, q, nq, kv, kv, nq, nh, nh, hd, (size_t)nh * hd, 0.125f, 0, 0, NULL);
    double dt = now_s() - t0, cpu = cpu_s() - c0, fl = 4.0 * nq * nq * nh * hd;
    int T = vlm_pool_size(pool);
    printf("%-18s wall %8.1f us %6.1f GFLOP/s %3.0f%%", "attention 1024x1024x12x64", dt * 1e6,
           fl / dt * 1e-9, 100 * fl / dt / peak);
    if (T == 1) printf(" | cpu %8.1f us %6.1f GFLOP/s %3.0f%%", cpu * 1e6, fl / cpu * 1e-9, 100 * fl / cpu / peak);
    printf("\n");
    vlm_free(q); vlm_free(kv); vlm_free(o);
    vlm_pool_free(pool);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--perf")) return perf_main(argc - 1, argv + 1);
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++)
        if (vlm_kernels_variant(v)) printf("variant %d: %s\n", v, vlm_kernels_variant(v)->name);
    printf("in use: %s\n", vlm_kernels()->name);
    test_pool();
    test_convert();
    test_matmul();
    test_rowops();
    test_attention();
    test_attention_spans();
    test_rope();
    test_vision_helpers();
    TEST_MAIN_END();
}
