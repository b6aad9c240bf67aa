/* attention.c — scaled dot-product attention over a (possibly strided) K/V, with GQA, causal
 * and key masks. One pass per query row with an online (running-max) softmax in f32, so no
 * score buffer of n_kv floats is needed; keys are taken in blocks to amortize rescaling. */
#include "tensor/tensor.h"

#include "tensor/kernels.h"
#include "util/threadpool.h"

#include <math.h>
#include <string.h>

#define ATT_KB   64    /* keys per block */
#define ATT_QB   16    /* query rows per task */
#define ATT_MAXD 512

struct att_job {
    const struct vlm_kernels *kt;
    float *out;
    const float *q, *k, *v;
    const uint8_t *mask;
    int n_q, n_kv, n_head, n_kv_head, hd, causal, q_pos0, n_qblocks;
    size_t stride;
    float scale;
};

/* One query row of one head: out_row = softmax(scale * q.K^T) V over the visible keys. */
static void att_row(const struct att_job *j, const float *qr, const float *kh, const float *vh,
                    int n_vis, float *orow) {
    const struct vlm_kernels *kt = j->kt;
    float acc[ATT_MAXD], s[ATT_KB];
    float mx = -INFINITY, sum = 0.0f;
    memset(acc, 0, (size_t)j->hd * sizeof *acc);
    for (int b0 = 0; b0 < n_vis; b0 += ATT_KB) {
        int nb = n_vis - b0 < ATT_KB ? n_vis - b0 : ATT_KB;
        float bmx = -INFINITY;
        for (int t = 0; t < nb; t++) {
            int key = b0 + t;
            if (j->mask && !j->mask[key]) {
                s[t] = -INFINITY;
                continue;
            }
            s[t] = kt->dot(qr, kh + (size_t)key * j->stride, j->hd) * j->scale;
            if (s[t] > bmx) bmx = s[t];
        }
        if (bmx == -INFINITY) continue;          /* the whole block is masked */
        if (bmx > mx) {
            float c = expf(mx - bmx);            /* 0 on the first visible block */
            sum *= c;
            kt->scale(acc, c, j->hd);
            mx = bmx;
        }
        for (int t = 0; t < nb; t++) {
            if (s[t] == -INFINITY) continue;
            float p = expf(s[t] - mx);
            sum += p;
            kt->axpy(acc, p, vh + (size_t)(b0 + t) * j->stride, j->hd);
        }
    }
    if (sum > 0.0f) {
        float inv = 1.0f / sum;
        for (int d = 0; d < j->hd; d++) orow[d] = acc[d] * inv;
    } else {
        memset(orow, 0, (size_t)j->hd * sizeof *orow);
    }
}

static void att_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct att_job *j = ctx;
    int h = task / j->n_qblocks, qb = task % j->n_qblocks;
    int g = h / (j->n_head / j->n_kv_head);
    const float *kh = j->k + (size_t)g * j->hd, *vh = j->v + (size_t)g * j->hd;
    int i1 = (qb + 1) * ATT_QB < j->n_q ? (qb + 1) * ATT_QB : j->n_q;
    for (int i = qb * ATT_QB; i < i1; i++) {
        int n_vis = j->n_kv;
        if (j->causal) {
            long last = (long)j->q_pos0 + i + 1;
            if (last < n_vis) n_vis = last < 0 ? 0 : (int)last;
        }
        const float *qr = j->q + ((size_t)i * j->n_head + h) * j->hd;
        float *orow = j->out + ((size_t)i * j->n_head + h) * j->hd;
        att_row(j, qr, kh, vh, n_vis, orow);
    }
}

void vlm_attention(struct vlm_pool *pool, float *out, const float *q, int n_q, const float *k,
                   const float *v, int n_kv, int n_head, int n_kv_head, int head_dim,
                   size_t kv_row_stride, float scale, int causal, int q_pos0,
                   const uint8_t *kv_mask) {
    if (n_q <= 0 || n_head <= 0) return;
    if (n_kv_head <= 0 || n_head % n_kv_head || head_dim > ATT_MAXD || head_dim <= 0) {
        for (size_t i = 0; i < (size_t)n_q * n_head * (head_dim > 0 ? head_dim : 0); i++)
            out[i] = NAN;
        return;
    }
    struct att_job j = {.kt = vlm_kernels(), .out = out, .q = q, .k = k, .v = v,
                        .mask = kv_mask, .n_q = n_q, .n_kv = n_kv, .n_head = n_head,
                        .n_kv_head = n_kv_head, .hd = head_dim, .causal = causal,
                        .q_pos0 = q_pos0, .stride = kv_row_stride, .scale = scale};
    j.n_qblocks = (n_q + ATT_QB - 1) / ATT_QB;
    vlm_pool_run(pool, n_head * j.n_qblocks, att_task, &j);
}
