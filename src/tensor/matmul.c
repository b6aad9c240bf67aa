/* matmul.c — the matmul driver behind vlm_matmul, vlm_matmul_multi and vlm_matmul_strided:
 * prepares the activations once per call (as given; rounded to bf16 for VLM_COMPUTE_BF16
 * weights; int8 blocks for block-type weights), splits the products over the thread pool and
 * tells the kernels the whole call's row count, so that no result depends on the split. */
#include "tensor/kernels.h"
#include "tensor/tensor.h"
#include "util/alloc.h"
#include "util/threadpool.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Few rows: the weights are streamed once per call, split by output rows. Many rows: tiles of
 * NC output columns times a share of the rows, so each tile's weights stay in L2. */
#define MM_SMALL_M 8
#define MM_NC      128
#define MULTI_MAX_M 16

struct mm_part {
    enum vlm_dtype wt;
    const void *w;
    size_t ldw;          /* elements (f32/f16/bf16) or bytes (block types) */
    int n, ldy, bf16;
    const float *bias;
    float *y;
    int first, n_nblocks;  /* first task, column chunks */
};

struct mm_job {
    const struct vlm_kernels *kt;
    const float *x, *xb;           /* f32 activations; the same rounded to bf16 (ld = k) */
    const struct vlm_q8_act *xa;   /* the same as int8 blocks */
    int ldx, m, k;
    int n_chunk, m_chunk, np;
    struct mm_part p[3];
};

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

static void mm_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct mm_job *j = ctx;
    int i = j->np - 1;
    while (i > 0 && task < j->p[i].first) i--;
    const struct mm_part *p = &j->p[i];
    int t = task - p->first, nb = t % p->n_nblocks, mb = t / p->n_nblocks;
    int n0 = nb * j->n_chunk, n1 = n0 + j->n_chunk < p->n ? n0 + j->n_chunk : p->n;
    int m0 = mb * j->m_chunk, m1 = m0 + j->m_chunk < j->m ? m0 + j->m_chunk : j->m;
    if (n0 >= n1 || m0 >= m1) return;
    float *y = p->y + (size_t)m0 * p->ldy;
    if (vlm_dtype_block_elems(p->wt) > 1) {
        j->kt->matmul_q(j->xa, m0, m1 - m0, p->wt, p->w, p->ldw, n0, n1, p->bias, y, p->ldy);
    } else if (p->bf16) {
        j->kt->matmul(j->xb + (size_t)m0 * j->k, j->k, m1 - m0, j->k, p->wt, p->w, p->ldw, n0, n1,
                      p->bias, y, p->ldy, j->m, 1);
    } else {
        j->kt->matmul(j->x + (size_t)m0 * j->ldx, j->ldx, m1 - m0, j->k, p->wt, p->w, p->ldw, n0,
                      n1, p->bias, y, p->ldy, j->m, 0);
    }
}

/* ---- activation preparation ---- */

struct prep_job {
    const struct mm_job *j;
    float *xb;
    const struct vlm_q8_act *xa;
    int per;
};

static void prep_rows(const struct prep_job *pj, int r0, int r1) {
    const struct mm_job *j = pj->j;
    if (pj->xa) j->kt->q8_act(pj->xa, j->x, j->ldx, r0, r1);
    if (pj->xb)
        for (int r = r0; r < r1; r++) j->kt->round_bf16(pj->xb + (size_t)r * j->k, j->x + (size_t)r * j->ldx, (size_t)j->k);
}

static void prep_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct prep_job *pj = ctx;
    int r0 = task * pj->per, r1 = r0 + pj->per < pj->j->m ? r0 + pj->per : pj->j->m;
    if (r0 < r1) prep_rows(pj, r0, r1);
}

static void fill_nan(const struct mm_job *j) {
    for (int q = 0; q < j->np; q++)
        for (int i = 0; i < j->m; i++)
            for (int c = 0; c < j->p[q].n; c++) j->p[q].y[(size_t)i * j->p[q].ldy + c] = NAN;
}

/* Splits the parts into tasks and runs them. */
static void mm_run(struct vlm_pool *pool, struct mm_job *j) {
    int T = vlm_pool_size(pool), m = j->m, total = 0;
    for (int q = 0; q < j->np; q++) total += j->p[q].n;
    if (T == 1) {
        j->n_chunk = total;
        j->m_chunk = m;
    } else if (m <= MULTI_MAX_M) {
        /* ~4 chunks per thread for balance, each a multiple of 16 rows of W. */
        int chunk = ceil_div(total, 4 * T);
        j->n_chunk = ceil_div(chunk < 16 ? 16 : chunk, 16) * 16;
        j->m_chunk = m;
    } else {   /* one part */
        int n = j->p[0].n;
        j->n_chunk = n < MM_NC ? n : MM_NC;
        int mparts = ceil_div(4 * T, ceil_div(n, j->n_chunk));
        int mchunk = ceil_div(m, mparts);
        j->m_chunk = ceil_div(mchunk < 16 ? 16 : mchunk, 16) * 16;
    }
    int tasks = 0;
    for (int q = 0; q < j->np; q++) {
        j->p[q].first = tasks;
        j->p[q].n_nblocks = ceil_div(j->p[q].n, j->n_chunk);
        tasks += j->p[q].n_nblocks * ceil_div(m, j->m_chunk);
    }
    vlm_pool_run(pool, tasks, mm_task, j);
}

/* Prepares the activations the parts need, then runs them. */
static void mm_call(struct vlm_pool *pool, struct mm_job *j) {
    int need_q = 0, need_b = 0;
    for (int q = 0; q < j->np; q++) {
        if (vlm_dtype_block_elems(j->p[q].wt) > 1) need_q = 1;
        else if (j->p[q].bf16) need_b = 1;
    }
    if (!need_q && !need_b) {
        mm_run(pool, j);
        return;
    }
    size_t mk = (size_t)j->m * (size_t)j->k, qbytes = need_q ? mk + mk / 32 * 4 + mk / 16 * 2 : 0;
    qbytes = (qbytes + 63) / 64 * 64;
    char *raw = vlm_malloc(qbytes + (need_b ? mk * sizeof(float) : 0) + 63), *buf;
    if (!raw) {
        fill_nan(j);
        return;
    }
    buf = raw + (-(uintptr_t)raw & 63);   /* rows on cache-line boundaries, as the kernels' callers' */
    struct vlm_q8_act xa = {.q = (int8_t *)buf, .d = (float *)(buf + mk),
                            .s = (int16_t *)(buf + mk + mk / 32 * 4), .k = j->k};
    struct prep_job pj = {.j = j, .xa = need_q ? &xa : NULL, .xb = need_b ? (float *)(buf + qbytes) : NULL};
    int T = vlm_pool_size(pool);
    /* a pool run ends in a barrier, which costs more than preparing a few hundred thousand
       activations on this thread (bf16 rounding is a few vector ops per 16) */
    if (T > 1 && need_q && mk >= ((size_t)1 << 20)) {
        pj.per = ceil_div(j->m, T);
        vlm_pool_run(pool, T, prep_task, &pj);
    } else {
        prep_rows(&pj, 0, j->m);
    }
    j->xa = pj.xa;
    j->xb = pj.xb;
    mm_run(pool, j);
    vlm_free(raw);
}

/* A part for W (n, k) of type wt, row stride ldw elements; 0 if it cannot be computed. */
static int make_part(struct mm_part *p, enum vlm_dtype wt, const void *w, size_t ldw, int n, int k,
                     enum vlm_compute c, const float *bias, float *y, int ldy) {
    if (!vlm_matmul_supported(wt)) return 0;
    *p = (struct mm_part){.wt = wt, .w = w, .ldw = ldw, .n = n, .ldy = ldy, .bias = bias, .y = y,
                          .bf16 = c == VLM_COMPUTE_BF16};
    if (vlm_dtype_block_elems(wt) > 1) {
        p->ldw = vlm_dtype_row_bytes(wt, (int64_t)ldw);
        if (k % 32 || vlm_dtype_row_bytes(wt, k) == 0 || p->ldw == 0) return 0;
    }
    return 1;
}

int vlm_matmul_supported(enum vlm_dtype t) { return (unsigned)t < VLM_DT_COUNT; }

static void strided(struct vlm_pool *pool, const float *x, int ldx, int m, int k, enum vlm_dtype wt,
                    const void *w, size_t ldw, int n, enum vlm_compute c, const float *bias, float *y,
                    int ldy) {
    if (m <= 0 || n <= 0) return;
    struct mm_job j = {.kt = vlm_kernels(), .x = x, .ldx = ldx, .m = m, .k = k, .np = 1};
    if (!make_part(&j.p[0], wt, w, ldw, n, k, c, bias, y, ldy)) {
        j.p[0] = (struct mm_part){.n = n, .ldy = ldy, .y = y};
        fill_nan(&j);
        return;
    }
    mm_call(pool, &j);
}

void vlm_matmul_strided(struct vlm_pool *pool, const float *x, int ldx, int m, int k,
                        enum vlm_dtype wt, const void *w, size_t ldw, int n,
                        const float *bias, float *y, int ldy) {
    strided(pool, x, ldx, m, k, wt, w, ldw, n, VLM_COMPUTE_F32, bias, y, ldy);
}

void vlm_matmul(struct vlm_pool *pool, const float *x, int m, const struct vlm_tensor *w,
                const float *bias, float *y) {
    int n = (int)w->ne[0], k = (int)w->ne[w->n_dims - 1];
    strided(pool, x, k, m, k, w->type, w->data, (size_t)k, n, w->compute, bias, y, n);
}

void vlm_matmul_multi(struct vlm_pool *pool, const float *x, int m, int np,
                      const struct vlm_tensor *const *w, const float *const *bias, float *const *y) {
    if (np > 3 || m > MULTI_MAX_M) {
        for (int i = 0; i < np; i++) vlm_matmul(pool, x, m, w[i], bias[i], y[i]);
        return;
    }
    if (m <= 0 || np <= 0) return;
    int k = (int)w[0]->ne[w[0]->n_dims - 1];
    struct mm_job j = {.kt = vlm_kernels(), .x = x, .ldx = k, .m = m, .k = k, .np = 0};
    for (int i = 0; i < np; i++) {
        int n = (int)w[i]->ne[0];
        if ((int)w[i]->ne[w[i]->n_dims - 1] != k ||
            !make_part(&j.p[j.np], w[i]->type, w[i]->data, (size_t)k, n, k, w[i]->compute, bias[i], y[i], n)) {
            vlm_matmul(pool, x, m, w[i], bias[i], y[i]);   /* fills NaN where it cannot compute */
            continue;
        }
        j.np++;
    }
    if (j.np) mm_call(pool, &j);
}
