/* test_quant.c — block types against gguf-py (tests/fixtures/quant/quant.bin, made by
 * scripts/make_quant_fixtures.py): dequantization bit for bit for every type (extreme and
 * non-finite scales included), the embedding lookup of quantized rows, quantization byte for
 * byte where gguf-py has a quantizer, and round-trip error bounds for every quantizer. */
#include "test.h"

#include <stdint.h>

#include "tensor/quant.h"
#include "tensor/tensor.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/threadpool.h"
#include "vlm.h"

static int ggml_to_vlm(uint32_t g) {
    switch (g) {
    case 0: return VLM_DT_F32;
    case 1: return VLM_DT_F16;
    case 30: return VLM_DT_BF16;
    case 2: return VLM_DT_Q4_0;
    case 3: return VLM_DT_Q4_1;
    case 6: return VLM_DT_Q5_0;
    case 7: return VLM_DT_Q5_1;
    case 8: return VLM_DT_Q8_0;
    case 12: return VLM_DT_Q4_K;
    case 13: return VLM_DT_Q5_K;
    case 14: return VLM_DT_Q6_K;
    default: return -1;
    }
}

static int same_float(float a, float b) {
    uint32_t x, y;
    memcpy(&x, &a, 4);
    memcpy(&y, &b, 4);
    return x == y || (isnan(a) && isnan(b));
}

struct rd { const uint8_t *p, *end; int bad; };
static uint32_t rd_u32(struct rd *r) {
    if (r->end - r->p < 4) { r->bad = 1; return 0; }
    uint32_t v;
    memcpy(&v, r->p, 4);
    r->p += 4;
    return v;
}
static const uint8_t *rd_bytes(struct rd *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) { r->bad = 1; return NULL; }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

/* Dequantization bit for bit, through vlm_dequantize_row and, row by row, vlm_tensor_row_f32. */
static void check_dequant(enum vlm_dtype t, uint32_t n, const uint8_t *blob, size_t nbytes, const float *want) {
    CHECK_EQ_INT(vlm_dtype_row_bytes(t, n), nbytes);
    float *got = vlm_malloc(n * sizeof *got);
    vlm_dequantize_row(t, blob, got, n);
    int bad = 0;
    for (uint32_t i = 0; i < n && bad < 5; i++)
        if (!same_float(got[i], want[i])) {
            bad++;
            fprintf(stderr, "%s elem %u: got %.9g want %.9g\n", vlm_dtype_name(t), i, got[i], want[i]);
        }
    CHECK_MSG(bad == 0, "dequantize %s", vlm_dtype_name(t));
    /* the same bytes as a (rows, 2 blocks) tensor: the embedding lookup */
    int row = 2 * vlm_dtype_block_elems(t);
    struct vlm_tensor w = {.type = t, .n_dims = 2, .ne = {n / row, row}, .data = blob, .nbytes = nbytes};
    bad = 0;
    for (int64_t r = 0; r < w.ne[0]; r++) {
        vlm_tensor_row_f32(&w, r, got);
        for (int i = 0; i < row; i++) bad += !same_float(got[i], want[r * row + i]);
    }
    CHECK_MSG(bad == 0, "vlm_tensor_row_f32 %s: %d differ", vlm_dtype_name(t), bad);
    vlm_free(got);
}

static void check_quant(enum vlm_dtype t, uint32_t n, const uint8_t *blob, size_t nbytes, const float *x) {
    CHECK_EQ_INT(vlm_dtype_row_bytes(t, n), nbytes);
    uint8_t *got = vlm_malloc(nbytes);
    CHECK_EQ_INT(vlm_quantize_row(t, x, n, got), VLM_OK);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < nbytes; i++)
        if (got[i] != blob[i] && !bad++) first = i;
    CHECK_MSG(bad == 0, "quantize %s: %zu bytes differ, first at %zu (got %02x want %02x)",
              vlm_dtype_name(t), bad, first, got[first], blob[first]);
    vlm_free(got);
}

static void test_fixture(void) {
    char *buf = NULL;
    size_t len = 0;
    struct vlm_error err = {0};
    int rc = vlm_read_file(test_path("tests/fixtures/quant/quant.bin"), (size_t)1 << 26, &buf, &len, &err);
    CHECK_EQ_INT(rc, VLM_OK);
    if (rc) return;
    struct rd r = {(const uint8_t *)buf, (const uint8_t *)buf + len, 0};
    const uint8_t *magic = rd_bytes(&r, 4);
    CHECK(magic && !memcmp(magic, "VQNT", 4));
    uint32_t n_rec = rd_u32(&r);
    int seen[VLM_DT_COUNT][2] = {{0}};
    for (uint32_t k = 0; k < n_rec && !r.bad; k++) {
        uint32_t kind = rd_u32(&r), g = rd_u32(&r), n = rd_u32(&r), nb = rd_u32(&r);
        const uint8_t *blob = rd_bytes(&r, nb);
        const uint8_t *fl = rd_bytes(&r, (size_t)n * 4);
        int t = ggml_to_vlm(g);
        CHECK(t >= 0 && kind < 2);
        if (r.bad || t < 0 || kind > 1) break;
        float *f = vlm_malloc((size_t)n * 4);
        memcpy(f, fl, (size_t)n * 4);
        if (kind == 0) check_dequant((enum vlm_dtype)t, n, blob, nb, f);
        else check_quant((enum vlm_dtype)t, n, blob, nb, f);
        seen[t][kind] = 1;
        vlm_free(f);
    }
    CHECK(!r.bad);
    for (int t = VLM_DT_Q8_0; t < VLM_DT_COUNT; t++) CHECK_MSG(seen[t][0], "no dequant record for %s", vlm_dtype_name(t));
    for (int t = VLM_DT_Q8_0; t <= VLM_DT_Q5_1; t++) CHECK_MSG(seen[t][1], "no quant record for %s", vlm_dtype_name(t));
    vlm_free(buf);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void) {   /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}
static float gauss(void) { return (frand() + frand() + frand() + frand()) * 0.8660254f; }

/* Round trip of weight-like rows (gaussian, one 8x outlier in every 97 elements): RMS error
 * relative to the RMS of the row, below bounds ~15% above what these quantizers reach on this
 * row (measured: Q8_0 0.84%, Q6_K 2.5%, Q5_K 4.4%, Q5_1 4.5%, Q5_0 6.8%, Q4_K 8.8%, Q4_1 9.5%,
 * Q4_0 13.4%; the K-quant bytes equal llama.cpp's quantize_row_q*_K_ref on such rows), and
 * each K-quant beats the 32-element type of its width. Zero rows come back zero. */
static void test_round_trip(void) {
    static const struct { enum vlm_dtype t; double bound; } cases[] = {
        {VLM_DT_Q8_0, 0.0095}, {VLM_DT_Q4_0, 0.155}, {VLM_DT_Q4_1, 0.11}, {VLM_DT_Q5_0, 0.078},
        {VLM_DT_Q5_1, 0.052}, {VLM_DT_Q4_K, 0.10}, {VLM_DT_Q5_K, 0.051}, {VLM_DT_Q6_K, 0.029},
        {VLM_DT_F16, 0.0003}, {VLM_DT_BF16, 0.002},
    };
    enum { N = 4096 };
    static float x[N], y[N];
    static uint8_t q[N * 2];
    double rel_of[VLM_DT_COUNT] = {0};
    for (int i = 0; i < N; i++) x[i] = gauss() * 0.02f * (i % 97 == 0 ? 8.0f : 1.0f);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        enum vlm_dtype t = cases[c].t;
        CHECK_EQ_INT(vlm_quantize_row(t, x, N, q), VLM_OK);
        vlm_dequantize_row(t, q, y, N);
        double se = 0, sx = 0;
        for (int i = 0; i < N; i++) se += (double)(x[i] - y[i]) * (x[i] - y[i]), sx += (double)x[i] * x[i];
        double rel = sqrt(se / sx);
        CHECK_MSG(rel < cases[c].bound, "%s round trip: relative RMS error %.4f >= %.4f",
                  vlm_dtype_name(t), rel, cases[c].bound);
        rel_of[t] = rel;
        if (getenv("VLM_QUANT_VERBOSE")) fprintf(stderr, "%-5s rel rms %.5f\n", vlm_dtype_name(t), rel);
        float z[256] = {0}, back[256];
        CHECK_EQ_INT(vlm_quantize_row(t, z, 256, q), VLM_OK);
        vlm_dequantize_row(t, q, back, 256);
        int nz = 0;
        for (int i = 0; i < 256; i++) nz += back[i] != 0.0f;
        CHECK_MSG(nz == 0, "%s: zeros come back as %d non-zeros", vlm_dtype_name(t), nz);
    }
    CHECK(rel_of[VLM_DT_Q4_K] < rel_of[VLM_DT_Q4_0] && rel_of[VLM_DT_Q5_K] < rel_of[VLM_DT_Q5_0]);
    CHECK(rel_of[VLM_DT_Q6_K] < rel_of[VLM_DT_Q5_K] && rel_of[VLM_DT_Q5_K] < rel_of[VLM_DT_Q4_K]);
    /* wrong sizes are refused, nothing written */
    CHECK_EQ_INT(vlm_quantize_row(VLM_DT_Q4_K, x, 100, q), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_quantize_row(VLM_DT_Q8_0, x, 33, q), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_quantize_row(VLM_DT_COUNT, x, 32, q), VLM_E_INVALID);
}

/* vlm_quantize_rows over a pool equals row-by-row vlm_quantize_row, from f32 and from bf16. */
static void test_rows_pool(void) {
    enum { R = 37, N = 512 };
    static float x[R * N];
    static uint16_t xb[R * N];
    for (int i = 0; i < R * N; i++) x[i] = gauss(), xb[i] = vlm_f32_to_bf16(x[i]);
    struct vlm_pool *pool = vlm_pool_new(2);
    size_t rb = vlm_dtype_row_bytes(VLM_DT_Q4_K, N);
    uint8_t *a = vlm_malloc(R * rb), *b = vlm_malloc(R * rb);
    float row[N];
    CHECK_EQ_INT(vlm_quantize_rows(pool, VLM_DT_Q4_K, a, VLM_DT_BF16, xb, R, N), VLM_OK);
    for (int r = 0; r < R; r++) {
        for (int i = 0; i < N; i++) row[i] = vlm_bf16_to_f32(xb[r * N + i]);
        vlm_quantize_row(VLM_DT_Q4_K, row, N, b + r * rb);
    }
    CHECK(!memcmp(a, b, R * rb));
    CHECK_EQ_INT(vlm_quantize_rows(NULL, VLM_DT_Q4_K, a, VLM_DT_F32, x, R, N), VLM_OK);
    for (int r = 0; r < R; r++) vlm_quantize_row(VLM_DT_Q4_K, x + r * N, N, b + r * rb);
    CHECK(!memcmp(a, b, R * rb));
    CHECK_EQ_INT(vlm_quantize_rows(pool, VLM_DT_Q4_K, a, VLM_DT_Q8_0, x, R, N), VLM_E_INVALID);
    vlm_free(a);
    vlm_free(b);
    vlm_pool_free(pool);
}

int main(void) {
    test_fixture();
    test_round_trip();
    test_rows_pool();
    TEST_MAIN_END();
}
