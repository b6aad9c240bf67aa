/* test_kernels_q.c — the block-type matmul (Q8_0 .. Q6_K): every kernel table (and AVX-512
 * with and without VNNI) against the scalar reference on random shapes with odd row counts
 * and block-count tails; the reference against f32 math on the dequantized weights within the
 * bound that quantizing the activations allows; the threaded driver identical for 1, 2 and 3
 * threads and whatever the number of rows in the call; bf16 arithmetic (VLM_COMPUTE_BF16). */
#include "test.h"

#include <stdint.h>

#include "tensor/kernels.h"
#include "tensor/quant.h"
#include "tensor/tensor.h"
#include "util/alloc.h"
#include "util/threadpool.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static float frand(void) {   /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static void fill(float *x, size_t n, float amp) {
    for (size_t i = 0; i < n; i++) x[i] = frand() * amp * (i % 53 == 0 ? 6.0f : 1.0f);
}

static const enum vlm_dtype qtypes[] = {VLM_DT_Q8_0, VLM_DT_Q4_0, VLM_DT_Q4_1, VLM_DT_Q5_0,
                                        VLM_DT_Q5_1, VLM_DT_Q4_K, VLM_DT_Q5_K, VLM_DT_Q6_K};
#define N_QT (int)(sizeof qtypes / sizeof *qtypes)

/* (n, k) weights of type t from random floats; *wf gets them dequantized (n*k floats). */
static uint8_t *make_qweights(enum vlm_dtype t, int n, int k, float **wf) {
    size_t rb = vlm_dtype_row_bytes(t, k);
    uint8_t *w = vlm_malloc(rb * n);
    float *f = vlm_malloc((size_t)n * k * sizeof *f);
    fill(f, (size_t)n * k, 0.05f);
    for (int j = 0; j < n; j++) {
        vlm_quantize_row(t, f + (size_t)j * k, k, w + rb * j);
        vlm_dequantize_row(t, w + rb * j, f + (size_t)j * k, k);
    }
    *wf = f;
    return w;
}

struct act {
    struct vlm_q8_act a;
    void *buf;
};
static void act_make(struct act *A, const float *x, int m, int k) {
    size_t mk = (size_t)m * k;
    A->buf = vlm_malloc(mk + mk / 32 * 4 + mk / 16 * 2);
    A->a = (struct vlm_q8_act){.q = A->buf, .d = (float *)((char *)A->buf + mk),
                               .s = (int16_t *)((char *)A->buf + mk + mk / 32 * 4), .k = k};
    vlm_q8_act_quantize(&A->a, x, k, 0, m);
}

/* The tables to check: every variant, plus AVX-512 without VNNI when the CPU has VNNI. */
static int tables(const struct vlm_kernels **out, struct vlm_kernels *novnni) {
    int n = 0;
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++)
        if (vlm_kernels_variant(v)) out[n++] = vlm_kernels_variant(v);
    if (vlm_kernels_variant(2)) {
        *novnni = *vlm_kernels_variant(2);
        vlm_kernels_init_q_avx512(novnni, 0);
        novnni->name = "avx512-novnni";
        out[n++] = novnni;
    }
    return n;
}

/* One shape: kernel vs reference (float reordering only: 2e-6 per block of sum |terms|), and
 * reference vs f32 math on the dequantized weights. The activation rounding moves each x by at
 * most d/2 (d = its block's amax/127), so |ref - exact| <= sum_t |w_t| d_t / 2, plus f32
 * rounding of the sums (1e-5 of sum |x w|). */
static void check_case(const struct vlm_kernels **tb, int ntb, enum vlm_dtype t, int m, int n, int k) {
    float *wf, *x = vlm_malloc((size_t)m * k * sizeof *x), *bias = vlm_malloc((size_t)n * sizeof *bias);
    uint8_t *w = make_qweights(t, n, k, &wf);
    fill(x, (size_t)m * k, 1.0f);
    fill(bias, (size_t)n, 0.5f);
    struct act A;
    act_make(&A, x, m, k);
    size_t rb = vlm_dtype_row_bytes(t, k);
    int ldy = n + 3, n0 = n > 2 ? 1 : 0;
    float *ref = vlm_malloc((size_t)m * ldy * sizeof *ref), *got = vlm_malloc((size_t)m * ldy * sizeof *got);
    vlm_kernels_variant(0)->matmul_q(&A.a, 0, m, t, w, rb, n0, n, bias, ref, ldy);
    double worst_exact = 0;
    for (int i = 0; i < m; i++)
        for (int j = n0; j < n; j++) {
            double exact = bias[j], bound = 0, mag = 0;
            for (int e = 0; e < k; e++) {
                double wv = wf[(size_t)j * k + e], xv = x[(size_t)i * k + e];
                exact += wv * xv;
                mag += fabs(wv * xv);
                bound += fabs(wv) * A.a.d[(size_t)i * (k / 32) + e / 32] * 0.5;
            }
            double err = fabs(ref[(size_t)i * ldy + j] - exact), lim = bound * 1.0001 + 1e-5 * mag + 1e-6 * fabs(bias[j]);
            if (err / (lim + 1e-30) > worst_exact) worst_exact = err / (lim + 1e-30);
        }
    CHECK_MSG(worst_exact <= 1.0, "reference %s m=%d n=%d k=%d: error %.3g of the bound", vlm_dtype_name(t), m, n, k, worst_exact);
    for (int v = 1; v < ntb; v++) {
        for (size_t i = 0; i < (size_t)m * ldy; i++) got[i] = 1234.5f;
        tb[v]->matmul_q(&A.a, 0, m, t, w, rb, n0, n, bias, got, ldy);
        double worst = 0;
        int sentinel = 1;
        for (int i = 0; i < m; i++)
            for (int j = 0; j < ldy; j++) {
                float g = got[(size_t)i * ldy + j];
                if (j < n0 || j >= n) {
                    sentinel &= g == 1234.5f;
                    continue;
                }
                double mag = fabs(bias[j]);
                for (int e = 0; e < k; e++) mag += fabs((double)wf[(size_t)j * k + e] * x[(size_t)i * k + e]);
                double e = fabs(g - ref[(size_t)i * ldy + j]) / (mag + 1e-30);
                if (e > worst) worst = e;
            }
        double tol = 2e-6 * (k / 32 + 4);
        CHECK_MSG(worst <= tol && sentinel, "%s %s m=%d n=%d k=%d: rel err %g (tol %g) sentinel %d", tb[v]->name,
                  vlm_dtype_name(t), m, n, k, worst, tol, sentinel);
    }
    vlm_free(A.buf); vlm_free(w); vlm_free(wf); vlm_free(x); vlm_free(bias); vlm_free(ref); vlm_free(got);
}

static void test_kernels_vs_reference(void) {
    const struct vlm_kernels *tb[8];
    struct vlm_kernels novnni;
    int ntb = tables(tb, &novnni);
    static const int ms[] = {1, 2, 3, 4, 5, 7, 9};
    static const int ns[] = {1, 3, 17};
    static const int k32[] = {32, 64, 96, 288, 576, 8224}, k256[] = {256, 512, 1536};
    for (int q = 0; q < N_QT; q++) {
        int kq = vlm_dtype_block_elems(qtypes[q]) == 256;
        const int *ks = kq ? k256 : k32;
        int nk = kq ? 3 : 6;   /* 8224: past the AVX2 kernel's offset-product buffer (its other path) */
        for (size_t a = 0; a < sizeof ms / sizeof *ms; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (int c = 0; c < nk; c++) {
                    if ((a + b + c + q) % (test_quick() ? 6 : 2)) continue;
                    check_case(tb, ntb, qtypes[q], ms[a], ns[b], ks[c]);
                }
    }
}

/* gemm_q (the many-row path) equals matmul_q of the same table bit for bit: every type, row
 * counts around the register tile (4) with an offset first row, column ranges around the
 * panel width (2), with and without bias, weights with extreme values (|w| = 127, d_x large). */
static void test_gemm_q_same_bits(void) {
    const struct vlm_kernels *tb[8];
    struct vlm_kernels novnni;
    int ntb = tables(tb, &novnni);
    static const int ms[] = {1, 3, 4, 9, 22, 37}, ns[] = {1, 2, 5, 8, 13};
    for (int q = 0; q < N_QT; q++)
        for (int a = 0; a < 6; a++)
            for (int b = 0; b < 5; b++) {
                if (test_quick() && (a + b + q) % 3) continue;
                enum vlm_dtype t = qtypes[q];
                int m = ms[a], n = ns[b], k = vlm_dtype_block_elems(t) == 256 ? (a & 1 ? 1536 : 512) : (a & 1 ? 1568 : 96 + 32 * (b & 1));
                int i0 = 2, mt = m + i0, ldy = n + 3, n0 = n > 2 ? 1 : 0;
                float *wf, *x = vlm_malloc((size_t)mt * k * 4), *bias = vlm_malloc((size_t)n * 4);
                uint8_t *w = make_qweights(t, n, k, &wf);
                fill(x, (size_t)mt * k, (a + b) % 2 ? 100.0f : 1.0f);
                fill(bias, (size_t)n, 0.5f);
                struct act A;
                act_make(&A, x, mt, k);
                float *r = vlm_malloc((size_t)m * ldy * 4), *g = vlm_malloc((size_t)m * ldy * 4);
                size_t rb = vlm_dtype_row_bytes(t, k);
                for (int v = 0; v < ntb; v++) {
                    for (size_t i = 0; i < (size_t)m * ldy; i++) r[i] = g[i] = 1234.5f;
                    const float *bs = b & 1 ? bias : NULL;
                    tb[v]->matmul_q(&A.a, i0, m, t, w, rb, n0, n, bs, r, ldy);
                    tb[v]->gemm_q(&A.a, i0, m, t, w, rb, n0, n, bs, g, ldy);
                    CHECK_MSG(!memcmp(r, g, (size_t)m * ldy * 4), "%s %s m=%d n=%d k=%d: gemm_q differs from matmul_q",
                              tb[v]->name, vlm_dtype_name(t), m, n, k);
                }
                vlm_free(A.buf); vlm_free(w); vlm_free(wf); vlm_free(x); vlm_free(bias); vlm_free(r); vlm_free(g);
            }
}

/* The AVX-512 gemm_q without memory for its panel: the row kernel's results all the same. */
static void test_gemm_q_no_memory(void) {
    const struct vlm_kernels *tb[8];
    struct vlm_kernels novnni;
    int ntb = tables(tb, &novnni);
    for (int q = 0; q < N_QT; q++) {
        enum vlm_dtype t = qtypes[q];
        int m = 21, n = 7, k = vlm_dtype_block_elems(t) == 256 ? 512 : 160, ldy = n;
        float *wf, *x = vlm_malloc((size_t)m * k * 4);
        uint8_t *w = make_qweights(t, n, k, &wf);
        fill(x, (size_t)m * k, 1.0f);
        struct act A;
        act_make(&A, x, m, k);
        float *r = vlm_malloc((size_t)m * ldy * 4), *g = vlm_malloc((size_t)m * ldy * 4);
        size_t rb = vlm_dtype_row_bytes(t, k);
        for (int v = 0; v < ntb; v++) {
            if (strncmp(tb[v]->name, "avx512", 6)) continue;   /* AVX2's gives NaN instead */
            tb[v]->matmul_q(&A.a, 0, m, t, w, rb, 0, n, NULL, r, ldy);
            vlm_alloc_fail_after(1);
            tb[v]->gemm_q(&A.a, 0, m, t, w, rb, 0, n, NULL, g, ldy);
            vlm_alloc_fail_after(0);
            CHECK_MSG(!memcmp(r, g, (size_t)m * ldy * 4), "%s %s: gemm_q without memory differs from matmul_q",
                      tb[v]->name, vlm_dtype_name(t));
        }
        vlm_free(A.buf); vlm_free(w); vlm_free(wf); vlm_free(x); vlm_free(r); vlm_free(g);
    }
}

/* q8_act_quantize of every table: vlm_q8_act_quantize's bytes, with ties, NaN, inf, subnormal
 * blocks (1/d overflows), all-zero blocks and large values, over an offset row range. */
static void test_act_quantize(void) {
    enum { M = 5, K = 320 };
    static float x[M * (K + 7)];
    int ldx = K + 7;
    fill(x, sizeof x / sizeof *x, 3.0f);
    x[3] = NAN; x[40] = INFINITY; x[70] = -INFINITY;            /* row 0: blocks 0, 1, 2 */
    for (int i = 96; i < 128; i++) x[i] = i == 100 ? 1e-40f : 0.0f;   /* subnormal block */
    for (int i = 128; i < 160; i++) x[i] = 0.0f;                /* zero block */
    for (int i = 0; i < 32; i++) x[ldx + i] = (float)(i - 16) * 0.5f + (i == 3 ? 127.0f : 0.0f);   /* ties */
    for (int i = 0; i < 32; i++) x[2 * ldx + 32 + i] = 3e38f * (i & 1 ? -1.0f : 1.0f);
    size_t mk = (size_t)M * K, bytes = mk + mk / 32 * 4 + mk / 16 * 2;
    char *ref = vlm_malloc(bytes), *got = vlm_malloc(bytes);
    struct vlm_q8_act a = {.q = (int8_t *)ref, .d = (float *)(ref + mk), .s = (int16_t *)(ref + mk + mk / 32 * 4), .k = K};
    memset(ref, 0x5a, bytes);
    vlm_q8_act_quantize(&a, x, ldx, 1, M);
    vlm_q8_act_quantize(&a, x, ldx, 0, 1);
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        struct vlm_q8_act b = {.q = (int8_t *)got, .d = (float *)(got + mk), .s = (int16_t *)(got + mk + mk / 32 * 4), .k = K};
        memset(got, 0x5a, bytes);
        kt->q8_act_quantize(&b, x, ldx, 1, M);
        kt->q8_act_quantize(&b, x, ldx, 0, 1);
        CHECK_MSG(!memcmp(ref, got, bytes), "%s q8_act_quantize differs from vlm_q8_act_quantize", kt->name);
    }
    vlm_free(ref);
    vlm_free(got);
}

/* vlm_matmul over pools of 1, 2 and 3 threads, and row r computed alone (m = 1) or within
 * m = 37 rows: all bit-identical. Also against the generic table's result (tolerance). */
static void test_driver(void) {
    struct vlm_pool *pools[3] = {vlm_pool_new(1), vlm_pool_new(2), vlm_pool_new(3)};
    static const int shapes[][2] = {{300, 576}, {77, 1536}};
    for (int q = 0; q < N_QT; q++)
        for (int s = 0; s < 2; s++) {
            int n = shapes[s][0], k = shapes[s][1], m = 37;
            if (k % vlm_dtype_block_elems(qtypes[q])) continue;
            if (test_quick() && (q + s) % 2) continue;
            float *wf, *x = vlm_malloc((size_t)m * k * 4), *y[3], *one = vlm_malloc((size_t)n * 4);
            uint8_t *w = make_qweights(qtypes[q], n, k, &wf);
            fill(x, (size_t)m * k, 1.0f);
            struct vlm_tensor t = {.type = qtypes[q], .n_dims = 2, .ne = {n, k}, .data = w,
                                   .nbytes = vlm_dtype_row_bytes(qtypes[q], k) * n};
            for (int p = 0; p < 3; p++) {
                y[p] = vlm_malloc((size_t)m * n * 4);
                vlm_matmul(pools[p], x, m, &t, NULL, y[p]);
            }
            CHECK_MSG(!memcmp(y[0], y[1], (size_t)m * n * 4) && !memcmp(y[0], y[2], (size_t)m * n * 4),
                      "%s n=%d k=%d: results differ between 1, 2 and 3 threads", vlm_dtype_name(qtypes[q]), n, k);
            int same = 1;
            for (int r = 0; r < m; r += 6) {
                vlm_matmul(pools[1], x + (size_t)r * k, 1, &t, NULL, one);
                same &= !memcmp(one, y[0] + (size_t)r * n, (size_t)n * 4);
            }
            CHECK_MSG(same, "%s n=%d k=%d: a row alone differs from the same row among 37", vlm_dtype_name(qtypes[q]), n, k);
            for (int p = 0; p < 3; p++) vlm_free(y[p]);
            vlm_free(w); vlm_free(wf); vlm_free(x); vlm_free(one);
        }
    for (int p = 0; p < 3; p++) vlm_pool_free(pools[p]);
    CHECK(vlm_matmul_supported(VLM_DT_Q4_K) && vlm_matmul_supported(VLM_DT_Q6_K) && !vlm_matmul_supported(VLM_DT_COUNT));
}

/* VLM_COMPUTE_BF16 (--dtype auto on a bf16 checkpoint): the same bits as f32 arithmetic on x
 * rounded by vlm_f32_to_bf16 (ties, subnormals, inf and NaN included), for few and many rows,
 * and identical for 1, 2 and 3 threads. */
static void test_bf16_compute(void) {
    struct vlm_pool *pools[3] = {vlm_pool_new(1), vlm_pool_new(2), vlm_pool_new(3)};
    /* 33, 36, 37: 2 or 3 threads split them 16 + 16 + 1, 4 or 5 rows */
    static const int ms[] = {1, 7, 33, 36, 37, 160};
    static const int ks[] = {320, 333};   /* 333: an odd last pair for the vdpbf16ps GEMM */
    int n = 97;
    for (size_t kk = 0; kk < 2; kk++) {
    int k = ks[kk];
    uint16_t *w = vlm_malloc((size_t)n * k * 2);
    for (int i = 0; i < n * k; i++) w[i] = vlm_f32_to_bf16(frand() * 0.1f);
    for (size_t a = 0; a < sizeof ms / sizeof *ms; a++) {
        int m = ms[a];
        float *x = vlm_malloc((size_t)m * k * 4), *xr = vlm_malloc((size_t)m * k * 4), *y[3],
              *ref = vlm_malloc((size_t)m * n * 4);
        fill(x, (size_t)m * k, 1.0f);
        x[0] = 1.0f + 0x1p-8f;                 /* a tie: rounds to even (1.0) */
        x[1] = 1.0f + 3 * 0x1p-8f;             /* a tie: rounds up */
        x[2] = 1e-40f;                         /* subnormal */
        if (m > 1) x[k] = INFINITY;             /* a row with inf and a row with NaN give inf/NaN */
        if (m > 2) x[2 * k + 5] = NAN;
        for (int i = 0; i < m * k; i++) xr[i] = vlm_bf16_to_f32(vlm_f32_to_bf16(x[i]));
        struct vlm_tensor t = {.type = VLM_DT_BF16, .n_dims = 2, .ne = {n, k}, .data = w};
        vlm_matmul(pools[1], xr, m, &t, NULL, ref);
        t.compute = VLM_COMPUTE_BF16;
        for (int p = 0; p < 3; p++) {
            y[p] = vlm_malloc((size_t)m * n * 4);
            vlm_matmul(pools[p], x, m, &t, NULL, y[p]);
        }
        int same = 1;
        for (size_t i = 0; i < (size_t)m * n; i++) {
            uint32_t a0, b0;
            memcpy(&a0, &y[0][i], 4);
            memcpy(&b0, &ref[i], 4);
            same &= a0 == b0 || (isnan(y[0][i]) && isnan(ref[i]));
        }
        /* the avx512bf16 table sums the same products in its own order from 128 rows: there,
           within f32 rounding of the sum of |products| (and inf/NaN where the reference has them) */
        if (strcmp(vlm_kernels()->name, "avx512bf16") || m < 128) {
            CHECK_MSG(same, "bf16 compute m=%d k=%d: not f32 arithmetic on bf16-rounded x", m, k);
        } else {
            int bad = 0;
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double mag = 0, r = ref[(size_t)i * n + j], g = y[0][(size_t)i * n + j];
                    for (int e = 0; e < k; e++) mag += fabs((double)xr[(size_t)i * k + e] * vlm_bf16_to_f32(w[(size_t)j * k + e]));
                    if (isnan(r) || isinf(r)) bad += !(isnan(g) == isnan(r) && isinf(g) == isinf(r));
                    else bad += !(fabs(g - r) <= 1e-5 * mag + 1e-30);
                }
            CHECK_MSG(bad == 0, "bf16 compute m=%d k=%d (avx512bf16): %d results off the f32 sum", m, k, bad);
        }
        CHECK_MSG(!memcmp(y[0], y[1], (size_t)m * n * 4) && !memcmp(y[0], y[2], (size_t)m * n * 4),
                  "bf16 compute m=%d: differs between 1, 2 and 3 threads", m);
        for (int p = 0; p < 3; p++) vlm_free(y[p]);
        vlm_free(x); vlm_free(xr); vlm_free(ref);
    }
    vlm_free(w);
    }
    for (int p = 0; p < 3; p++) vlm_pool_free(pools[p]);
}

/* q8_act_quantize of every table over a row range: vlm_q8_act_quantize's bytes, with ties,
 * zero blocks, a subnormal block (1/d overflows), inf, NaN in every lane and rows at a stride. */
static void test_q8_act(void) {
    enum { M = 3, K = 320, LD = 333 };
    static float x[M * LD];
    for (int i = 0; i < M * LD; i++) x[i] = frand() * 4.0f;
    for (int i = 0; i < 32; i++) x[32 + i] = 0.0f;                          /* a zero block */
    for (int i = 0; i < 32; i++) x[64 + i] = (float)(i - 16) * 1e-39f;      /* subnormal block */
    for (int i = 0; i < 32; i++) x[96 + i] = (float)(i - 15) * 0.5f;        /* x/d on .5 ties */
    x[96] = 127.0f * 0.5f;
    x[130] = INFINITY;
    x[170] = NAN;
    x[LD + 200] = -INFINITY;
    x[2 * LD + 7] = NAN;
    x[2 * LD + 8] = -0.0f;
    x[2 * LD + 31] = NAN;                                                   /* NaN in every lane position */
    x[2 * LD + 64 + 28] = NAN;
    x[LD + 96 + 3] = NAN;
    struct act ref;
    size_t mk = (size_t)M * K;
    ref.buf = vlm_malloc(mk + mk / 32 * 4 + mk / 16 * 2);
    ref.a = (struct vlm_q8_act){.q = ref.buf, .d = (float *)((char *)ref.buf + mk),
                                .s = (int16_t *)((char *)ref.buf + mk + mk / 32 * 4), .k = K};
    vlm_q8_act_quantize(&ref.a, x, LD, 0, M);
    void *got = vlm_malloc(mk + mk / 32 * 4 + mk / 16 * 2);
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        memset(got, 0x55, mk + mk / 32 * 4 + mk / 16 * 2);
        struct vlm_q8_act g = {.q = got, .d = (float *)((char *)got + mk), .s = (int16_t *)((char *)got + mk + mk / 32 * 4), .k = K};
        kt->q8_act_quantize(&g, x, LD, 1, M);   /* rows 1, 2 only: row 0 stays untouched */
        int same = !memcmp(g.q + K, ref.a.q + K, mk - K) && !memcmp(g.d + K / 32, ref.a.d + K / 32, (mk - K) / 32 * 4) &&
                   !memcmp(g.s + K / 16, ref.a.s + K / 16, (mk - K) / 16 * 2);
        kt->q8_act_quantize(&g, x, LD, 0, 1);
        same &= !memcmp(got, ref.buf, mk + mk / 32 * 4 + mk / 16 * 2);
        CHECK_MSG(same, "%s q8_act: differs from vlm_q8_act_quantize", kt->name);
    }
    vlm_free(got);
    vlm_free(ref.buf);
}

/* round_bf16 of every table: vlm_f32_to_bf16's bits, special values and tails included. */
static void test_round_bf16(void) {
    enum { N = 203 };
    static float x[N], got[N];
    for (int i = 0; i < N; i++) x[i] = frand() * 100.0f;
    const float sp[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, -1.0f - 0x1p-8f, 1e-40f, -1e-42f, INFINITY,
                        -INFINITY, NAN, -NAN, 3.4e38f, 0.0f, -0.0f};
    for (size_t i = 0; i < sizeof sp / sizeof *sp; i++) x[i * 7] = sp[i];
    uint32_t snan = 0x7f800001u;   /* a signalling NaN comes back quiet */
    memcpy(&x[100], &snan, 4);
    for (int v = 0; v < VLM_KERNELS_N_VARIANTS; v++) {
        const struct vlm_kernels *kt = vlm_kernels_variant(v);
        if (!kt) continue;
        for (int n = 1; n <= N; n += 101) {
            kt->round_bf16(got, x, (size_t)n);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                uint32_t a, b;
                float want = vlm_bf16_to_f32(vlm_f32_to_bf16(x[i]));
                memcpy(&a, &got[i], 4);
                memcpy(&b, &want, 4);
                bad += a != b;
            }
            CHECK_MSG(bad == 0, "%s round_bf16 n=%d: %d differ", kt->name, n, bad);
        }
    }
}

int main(void) {
    printf("in use: %s\n", vlm_kernels()->name);
    test_kernels_vs_reference();
    test_gemm_q_same_bits();
    test_gemm_q_no_memory();
    test_act_quantize();
    test_driver();
    test_bf16_compute();
    test_round_bf16();
    test_q8_act();
    TEST_MAIN_END();
}
