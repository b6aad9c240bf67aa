/* attention.c — scaled dot-product attention over a (possibly strided) K/V, with GQA, causal
 * and key masks, softmax in f32 with a running max (online), so no n_q x n_kv score matrix is
 * ever stored. Few queries (decode): one row at a time with dots/axpys; past 64 keys the keys
 * go in chunks, one task per chunk for every head (its K/V rows prefetched whole), and the
 * chunks' partial softmaxes are merged in key order. Many queries (vision, prefill): blocks of
 * queries x keys through the matmul kernel (S = Q K^T, O += P V). */
#include "tensor/tensor.h"

#include "tensor/kernels.h"
#include "util/alloc.h"
#include "util/threadpool.h"

#include <math.h>
#include <string.h>

#define ATT_KB   64    /* keys per block */
#define ATT_QB   16    /* query rows per task */
#define ATT_MAXD 512
#define ATT_KC   64    /* decode: keys per task (a multiple of ATT_KB) */
#define ATT_MAXCH 64   /* decode: at most this many chunks (longer caches get longer chunks) */
#define ATT_CHUNK_MAXQ 4      /* decode: chunked from 1 up to this many query rows */
#define ATT_PART_STACK 8192   /* floats of partials kept on the stack (a decode step's, typically) */

struct att_job {
    const struct vlm_kernels *kt;
    float *out;
    const float *q;
    const void *k, *v;       /* kv_type elements */
    enum vlm_dtype kv_type;
    size_t kv_es;            /* bytes per K/V element */
    const uint8_t *mask;
    int n_q, n_kv, n_head, n_kv_head, hd, causal, q_pos0, n_qblocks;
    int blocked, qblock;   /* blocked path and its query rows per task */
    size_t stride;
    float scale;
    const int32_t *lo, *hi;  /* per-query visible key range [lo, hi) (spans), else NULL */
    float softcap;           /* > 0: scores become softcap * tanh(score / softcap) */
    int n_chunks, chunk;     /* row path: keys per task (n_kv: one chunk, no partials) */
    float *part;             /* n_chunks > 1: (n_q, n_head, n_chunks) x (hd acc, max, sum) */
};

/* Row `row` of a K or V array (kh/vh already point at the head's columns). */
static inline const void *kv_at(const struct att_job *j, const void *base, int row) {
    return (const char *)base + (size_t)row * j->stride * j->kv_es;
}

/* Whole K and V rows r0 .. r1 (every head) asked for at once, in address order: a decode step
 * finds its cache evicted by the weights streamed since the last step, and one head's part of a
 * row is a short strided piece that the hardware prefetchers follow poorly. */
static void prefetch_keys(const struct att_job *j, int r0, int r1) {
    size_t a = (size_t)r0 * j->stride * j->kv_es, e = (size_t)r1 * j->stride * j->kv_es;
    for (size_t o = a; o < e; o += 64) {
        __builtin_prefetch((const char *)j->k + o);
        __builtin_prefetch((const char *)j->v + o);
    }
}

/* One query row of one head over n_vis keys, unnormalised: acc = sum_t exp(s_t - mx) v_t, *sum
 * = sum_t exp(s_t - mx), *mx = the largest score (-inf when every key is hidden). mask, when
 * given, is indexed like kh's rows. */
static void att_part(const struct att_job *j, const float *qr, const void *kh, const void *vh,
                     const uint8_t *mask, int n_vis, float *acc, float *mx_out, float *sum_out) {
    const struct vlm_kernels *kt = j->kt;
    float s[ATT_KB];
    float mx = -INFINITY, sum = 0.0f;
    memset(acc, 0, (size_t)j->hd * sizeof *acc);
    for (int b0 = 0; b0 < n_vis; b0 += ATT_KB) {
        int nb = n_vis - b0 < ATT_KB ? n_vis - b0 : ATT_KB;
        float bmx = -INFINITY;
        kt->dots(s, qr, kv_at(j, kh, b0), j->kv_type, j->stride, nb, j->hd);
        for (int t = 0; t < nb; t++) {
            float sc = s[t] * j->scale;
            if (j->softcap > 0.0f) sc = j->softcap * tanhf(sc / j->softcap);
            s[t] = mask && !mask[b0 + t] ? -INFINITY : sc;
            if (s[t] > bmx) bmx = s[t];
        }
        if (bmx == -INFINITY) continue;          /* the whole block is masked */
        if (bmx > mx) {
            float c = expf(mx - bmx);            /* 0 on the first visible block */
            sum *= c;
            kt->scale(acc, c, j->hd);
            mx = bmx;
        }
        sum += kt->exp_sum(s, mx, nb);           /* masked keys get 0 */
        kt->axpys(acc, s, kv_at(j, vh, b0), j->kv_type, j->stride, nb, j->hd);
    }
    *mx_out = mx;
    *sum_out = sum;
}

/* orow = acc / sum, or zeros when no key was visible (sum 0). */
static void att_finish(const float *acc, float sum, int hd, float *orow) {
    if (sum > 0.0f) {
        float inv = 1.0f / sum;
        for (int d = 0; d < hd; d++) orow[d] = acc[d] * inv;
    } else {
        memset(orow, 0, (size_t)hd * sizeof *orow);
    }
}

/* One query row of one head: out_row = softmax(scale * q.K^T) V over the visible keys. */
static void att_row(const struct att_job *j, const float *qr, const void *kh, const void *vh,
                    const uint8_t *mask, int n_vis, float *orow) {
    float acc[ATT_MAXD], mx, sum;
    att_part(j, qr, kh, vh, mask, n_vis, acc, &mx, &sum);
    att_finish(acc, sum, j->hd, orow);
}

/* Blocked path: per task a block of up to BQ query rows of one head, keys in blocks of BK.
 * Scores are kept transposed, S^T (keys, queries), so that the softmax steps run across
 * queries with vector ops and both products need no transposition of K or V:
 *   S^T = K_blk @ Qs^T  (Qs^T packed once per task, scale folded in)
 *   O  += P @ V_blk     (P read as the transpose of S^T; V rows used in place).
 * About 100 KB of stack. */
#define BQ 64
#define BK 128
#define KVBUF 4096   /* floats of one converted K (and V) block of a 16-bit KV cache */

/* Rows k0 .. k0+nk of a 16-bit K or V head as f32 rows of hd (the blocked path's GEMM input). */
static void kv_block_f32(const struct att_job *j, const void *base, int k0, int nk, float *dst) {
    for (int t = 0; t < nk; t++) {
        const uint16_t *src = kv_at(j, base, k0 + t);
        if (j->kv_type == VLM_DT_BF16) j->kt->bf16_to_f32(dst + (size_t)t * j->hd, src, (size_t)j->hd);
        else j->kt->f16_to_f32(dst + (size_t)t * j->hd, src, (size_t)j->hd);
    }
}

static void att_block(const struct att_job *j, int h, int i0, int i1, const void *kh,
                      const void *vh) {
    const struct vlm_kernels *kt = j->kt;
    int hd = j->hd, rows = i1 - i0, ldq = j->n_head * hd;
    /* rows * hd <= BQ * 64 floats in the Q and O buffers: fewer rows for wider heads */
    float Qt[BQ * 64], O[BQ * 64], St[BK * BQ], mcol[BQ], lcol[BQ], sub[BQ];
    /* a 16-bit KV cache: blocks of keys converted to f32 first (fewer keys for wider heads) */
    float Kb[KVBUF], Vb[KVBUF];
    int conv = j->kv_type != VLM_DT_F32, bk = conv && KVBUF / hd < BK ? KVBUF / hd : BK;
    for (int r = 0; r < rows; r++) {
        const float *qr = j->q + (size_t)(i0 + r) * ldq + (size_t)h * hd;
        for (int d = 0; d < hd; d++) Qt[(size_t)d * rows + r] = qr[d] * j->scale;
        mcol[r] = -INFINITY;
        lcol[r] = 0.0f;
    }
    memset(O, 0, (size_t)rows * hd * sizeof *O);
    long last = j->causal ? (long)j->q_pos0 + i1 : j->n_kv;   /* keys < last may be visible */
    int first = 0;
    if (j->lo) {   /* spans: the union of the rows' ranges */
        long f = j->n_kv, l = 0;
        for (int r = i0; r < i1; r++) {
            if (j->lo[r] < f) f = j->lo[r];
            if (j->hi[r] > l) l = j->hi[r];
        }
        first = f < 0 ? 0 : (int)f;
        last = l;
    }
    int n_vis = last < j->n_kv ? (last < 0 ? 0 : (int)last) : j->n_kv;
    for (int k0 = first; k0 < n_vis; k0 += bk) {
        int nk = n_vis - k0 < bk ? n_vis - k0 : bk;
        const float *kb = conv ? Kb : (const float *)kh + (size_t)k0 * j->stride;
        const float *vb = conv ? Vb : (const float *)vh + (size_t)k0 * j->stride;
        size_t ldkv = conv ? (size_t)hd : j->stride;
        if (conv) {
            kv_block_f32(j, kh, k0, nk, Kb);
            kv_block_f32(j, vh, k0, nk, Vb);
        }
        /* St (nk, rows) = K_blk (nk, hd) @ Qt (hd, rows) */
        kt->gemm_f32(nk, rows, hd, kb, ldkv, 1, Qt, (size_t)rows, St, (size_t)rows, 0);
        if (j->softcap > 0.0f)
            for (size_t e = 0; e < (size_t)nk * rows; e++) St[e] = j->softcap * tanhf(St[e] / j->softcap);
        /* masks: a hidden key hides its whole row; causal hides queries before the key */
        for (int t = 0; t < nk; t++) {
            int key = k0 + t;
            float *st = St + (size_t)t * rows;
            if (j->lo) {
                for (int r = 0; r < rows; r++)
                    if (key < j->lo[i0 + r] || key >= j->hi[i0 + r]) st[r] = -INFINITY;
            } else if (j->mask && !j->mask[key]) {
                for (int r = 0; r < rows; r++) st[r] = -INFINITY;
            } else if (j->causal) {
                long first_vis = (long)key - j->q_pos0 - i0;   /* first query row seeing key */
                for (int r = 0; r < rows && r < first_vis; r++) st[r] = -INFINITY;
            }
        }
        float bm[BQ];
        for (int r = 0; r < rows; r++) bm[r] = -INFINITY;
        kt->col_max(St, nk, rows, (size_t)rows, bm);
        for (int r = 0; r < rows; r++) {
            if (bm[r] > mcol[r]) {   /* new running max: rescale what was summed so far */
                float c = expf(mcol[r] - bm[r]);
                lcol[r] *= c;
                if (c != 1.0f) kt->scale(O + (size_t)r * hd, c, hd);
                mcol[r] = bm[r];
            }
            sub[r] = mcol[r] == -INFINITY ? 0.0f : mcol[r];   /* all hidden so far: exp -> 0 */
        }
        kt->exp_cols(St, nk, rows, (size_t)rows, sub, lcol);
        /* O (rows, hd) += P (rows, nk) @ V_blk (nk, hd), P(r, t) = St[t*rows + r] */
        kt->gemm_f32(rows, hd, nk, St, 1, (size_t)rows, vb, ldkv, O, (size_t)hd, 1);
    }
    for (int r = 0; r < rows; r++) {
        float *orow = j->out + ((size_t)(i0 + r) * j->n_head + h) * hd;
        float inv = lcol[r] > 0.0f ? 1.0f / lcol[r] : 0.0f;
        for (int d = 0; d < hd; d++) orow[d] = O[(size_t)r * hd + d] * inv;
    }
}

/* The keys [*lo, *hi) query row i sees on the row path (spans, causal, or all). */
static void row_keys(const struct att_job *j, int i, int *lo, int *hi) {
    int l = 0, h = j->n_kv;
    if (j->lo) {
        l = j->lo[i] < 0 ? 0 : j->lo[i];
        h = j->hi[i] < j->n_kv ? j->hi[i] : j->n_kv;
    } else if (j->causal) {
        long last = (long)j->q_pos0 + i + 1;
        if (last < h) h = last < 0 ? 0 : (int)last;
    }
    *lo = l;
    *hi = h > l ? h : l;
}

/* Decode in chunks: task (chunk c, query block qb) runs every head over the chunk's keys, so
 * the chunk's K and V rows are read whole, once, in address order. */
static void att_chunk_task(const struct att_job *j, int c, int qb) {
    int i0 = qb * j->qblock, i1 = i0 + j->qblock < j->n_q ? i0 + j->qblock : j->n_q, hd = j->hd;
    int k0 = c * j->chunk, k1 = k0 + j->chunk < j->n_kv ? k0 + j->chunk : j->n_kv;
    prefetch_keys(j, k0, k1);
    for (int i = i0; i < i1; i++) {
        int lo, hi;
        row_keys(j, i, &lo, &hi);
        int c0 = k0 > lo ? k0 : lo, c1 = k1 < hi ? k1 : hi;
        for (int h = 0; h < j->n_head; h++) {
            float *pp = j->part + (((size_t)i * j->n_head + h) * j->n_chunks + c) * (size_t)(hd + 2);
            if (c1 <= c0) {   /* no visible key in this chunk */
                pp[hd] = -INFINITY;
                pp[hd + 1] = 0.0f;
                continue;
            }
            size_t head = (size_t)(h / (j->n_head / j->n_kv_head)) * hd * j->kv_es;
            const void *kh = (const char *)j->k + head, *vh = (const char *)j->v + head;
            att_part(j, j->q + ((size_t)i * j->n_head + h) * hd, kv_at(j, kh, c0), kv_at(j, vh, c0),
                     j->mask ? j->mask + c0 : NULL, c1 - c0, pp, &pp[hd], &pp[hd + 1]);
        }
    }
}

static void att_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct att_job *j = ctx;
    if (j->n_chunks > 1) {
        att_chunk_task(j, task / j->n_qblocks, task % j->n_qblocks);
        return;
    }
    int h = task / j->n_qblocks, qb = task % j->n_qblocks;
    int g = h / (j->n_head / j->n_kv_head);
    size_t head = (size_t)g * j->hd * j->kv_es;   /* kv head g's columns */
    const void *kh = (const char *)j->k + head, *vh = (const char *)j->v + head;
    int i1 = (qb + 1) * j->qblock < j->n_q ? (qb + 1) * j->qblock : j->n_q;
    if (j->blocked) {
        att_block(j, h, qb * j->qblock, i1, kh, vh);
        return;
    }
    for (int i = qb * j->qblock; i < i1; i++) {
        int lo, hi;
        row_keys(j, i, &lo, &hi);
        att_row(j, j->q + ((size_t)i * j->n_head + h) * j->hd, kv_at(j, kh, lo), kv_at(j, vh, lo),
                j->mask ? j->mask + lo : NULL, hi - lo, j->out + ((size_t)i * j->n_head + h) * j->hd);
    }
}

/* The chunks' partials of each row and head, in key order: out = sum_c e^(m_c - M) acc_c /
 * sum_c e^(m_c - M) sum_c, M the largest m_c. A row whose keys fall in one chunk gets exactly
 * att_row's result (factor 1, sums of one term). */
static void att_merge(const struct att_job *j) {
    int hd = j->hd;
    for (int i = 0; i < j->n_q; i++)
        for (int h = 0; h < j->n_head; h++) {
            const float *pp = j->part + ((size_t)i * j->n_head + h) * j->n_chunks * (size_t)(hd + 2);
            float *orow = j->out + ((size_t)i * j->n_head + h) * hd, acc[ATT_MAXD], mx = -INFINITY, sum = 0.0f;
            for (int c = 0; c < j->n_chunks; c++)
                if (pp[(size_t)c * (hd + 2) + hd] > mx) mx = pp[(size_t)c * (hd + 2) + hd];
            memset(acc, 0, (size_t)hd * sizeof *acc);
            for (int c = 0; c < j->n_chunks && mx != -INFINITY; c++) {
                const float *pc = pp + (size_t)c * (hd + 2);
                if (pc[hd] == -INFINITY) continue;
                float f = expf(pc[hd] - mx);
                sum += f * pc[hd + 1];
                for (int d = 0; d < hd; d++) acc[d] += f * pc[d];
            }
            att_finish(acc, sum, hd, orow);
        }
}

void vlm_attention(struct vlm_pool *pool, float *out, const float *q, int n_q, const float *k,
                   const float *v, int n_kv, int n_head, int n_kv_head, int head_dim,
                   size_t kv_row_stride, float scale, int causal, int q_pos0,
                   const uint8_t *kv_mask) {
    vlm_attention_with(vlm_kernels(), pool, out, q, n_q, k, v, VLM_DT_F32, n_kv, n_head, n_kv_head,
                       head_dim, kv_row_stride, scale, causal, q_pos0, kv_mask);
}

void vlm_attention_kv(struct vlm_pool *pool, float *out, const float *q, int n_q, const void *k,
                      const void *v, enum vlm_dtype kv_type, int n_kv, int n_head, int n_kv_head,
                      int head_dim, size_t kv_row_stride, float scale, int causal, int q_pos0,
                      const uint8_t *kv_mask) {
    vlm_attention_with(vlm_kernels(), pool, out, q, n_q, k, v, kv_type, n_kv, n_head, n_kv_head,
                       head_dim, kv_row_stride, scale, causal, q_pos0, kv_mask);
}

static void attention_run(const struct vlm_kernels *kt, struct vlm_pool *pool, float *out,
                          const float *q, int n_q, const void *k, const void *v, enum vlm_dtype kv_type,
                          int n_kv, int n_head, int n_kv_head, int head_dim, size_t kv_row_stride,
                          float scale, int causal, int q_pos0, const uint8_t *kv_mask,
                          const struct vlm_attn_spans *sp) {
    if (n_q <= 0 || n_head <= 0) return;
    if (n_kv_head <= 0 || n_head % n_kv_head || head_dim > ATT_MAXD || head_dim <= 0 ||
        (kv_type != VLM_DT_F32 && kv_type != VLM_DT_F16 && kv_type != VLM_DT_BF16)) {
        for (size_t i = 0; i < (size_t)n_q * n_head * (head_dim > 0 ? head_dim : 0); i++)
            out[i] = NAN;
        return;
    }
    struct att_job j = {.kt = kt, .out = out, .q = q, .k = k, .v = v, .kv_type = kv_type,
                        .kv_es = vlm_dtype_size(kv_type),
                        .mask = kv_mask, .n_q = n_q, .n_kv = n_kv, .n_head = n_head,
                        .n_kv_head = n_kv_head, .hd = head_dim, .causal = causal,
                        .q_pos0 = q_pos0, .stride = kv_row_stride, .scale = scale,
                        .lo = sp ? sp->lo : NULL, .hi = sp ? sp->hi : NULL,
                        .softcap = sp ? sp->softcap : 0.0f};
    /* Blocked when a task has enough query rows to fill the matmul's register tile. */
    j.blocked = n_q >= 16 && head_dim <= 256;
    j.qblock = j.blocked ? (BQ * 64 / head_dim < BQ ? BQ * 64 / head_dim : BQ) : ATT_QB;
    j.n_qblocks = (n_q + j.qblock - 1) / j.qblock;
    float part_stack[ATT_PART_STACK];
    /* Decode (a few query rows): keys in chunks of ATT_KC (more past ATT_MAXCH chunks), one task
       per chunk with every head, so that the threads share one long cache evenly and read it in
       address order; the split follows n_kv only, never the thread count. */
    j.n_chunks = 1;
    j.chunk = n_kv;
    if (!j.blocked && n_q <= ATT_CHUNK_MAXQ && n_kv > ATT_KC) {
        j.chunk = (n_kv + ATT_MAXCH - 1) / ATT_MAXCH;
        j.chunk = j.chunk < ATT_KC ? ATT_KC : (j.chunk + ATT_KB - 1) / ATT_KB * ATT_KB;
        j.n_chunks = (n_kv + j.chunk - 1) / j.chunk;
        size_t np = (size_t)n_q * n_head * j.n_chunks * (size_t)(head_dim + 2);
        j.part = np <= ATT_PART_STACK ? part_stack : vlm_malloc(np * sizeof(float));
        if (!j.part) {
            for (size_t i = 0; i < (size_t)n_q * n_head * head_dim; i++) out[i] = NAN;
            return;
        }
    }
    vlm_pool_run(pool, (j.n_chunks > 1 ? j.n_chunks : n_head) * j.n_qblocks, att_task, &j);
    if (j.n_chunks > 1) att_merge(&j);
    if (j.part != part_stack) vlm_free(j.part);
}

void vlm_attention_with(const struct vlm_kernels *kt, struct vlm_pool *pool, float *out,
                        const float *q, int n_q, const void *k, const void *v, enum vlm_dtype kv_type,
                        int n_kv, int n_head, int n_kv_head, int head_dim, size_t kv_row_stride,
                        float scale, int causal, int q_pos0, const uint8_t *kv_mask) {
    attention_run(kt, pool, out, q, n_q, k, v, kv_type, n_kv, n_head, n_kv_head, head_dim, kv_row_stride,
                  scale, causal, q_pos0, kv_mask, NULL);
}

void vlm_attention_spans_with(const struct vlm_kernels *kt, struct vlm_pool *pool, float *out,
                              const float *q, int n_q, const void *k, const void *v, enum vlm_dtype kv_type,
                              int n_kv, int n_head, int n_kv_head, int head_dim, size_t kv_row_stride,
                              float scale, const struct vlm_attn_spans *sp) {
    attention_run(kt, pool, out, q, n_q, k, v, kv_type, n_kv, n_head, n_kv_head, head_dim, kv_row_stride,
                  scale, 0, 0, NULL, sp);
}

void vlm_attention_spans(struct vlm_pool *pool, float *out, const float *q, int n_q, const void *k,
                         const void *v, enum vlm_dtype kv_type, int n_kv, int n_head, int n_kv_head,
                         int head_dim, size_t kv_row_stride, float scale, const struct vlm_attn_spans *sp) {
    attention_run(vlm_kernels(), pool, out, q, n_q, k, v, kv_type, n_kv, n_head, n_kv_head, head_dim,
                  kv_row_stride, scale, 0, 0, NULL, sp);
}
