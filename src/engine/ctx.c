/* ctx.c — a decoding context: the KV store of n_seq_max sequences, the family's scratch, a
 * thread pool and the logits of the last step. vlm_ctx_decode validates a batch of rows from
 * several sequences, reserves KV room for all of them first (so a full cache changes nothing),
 * then runs one forward step over every row. */
#include <string.h>

#include "engine/engine.h"
#include "models/model.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"

struct vlm_ctx {
    const struct vlm_model *model;
    struct vlm_ctx_params   p;
    struct vlm_kv           kv;
    struct vlm_pool        *pool;
    void                   *scratch;
    float                  *logits;     /* (n_batch_max, n_vocab) */
    int                     n_logits;
    int8_t                 *want;       /* (n_batch_max) */
    int32_t                *next_pos;   /* (n_seq_max) scratch for validation */
};

struct vlm_ctx_params vlm_ctx_default_params(void) {
    struct vlm_ctx_params p;
    memset(&p, 0, sizeof p);
    p.n_seq_max = 1;
    p.n_batch_max = 512;
    return p;
}

void vlm_ctx_free(struct vlm_ctx *c) {
    if (!c) return;
    vlm_kv_free(&c->kv);
    if (c->scratch) c->model->family->scratch_free(c->scratch);
    vlm_pool_free(c->pool);
    vlm_free(c->logits);
    vlm_free(c->want);
    vlm_free(c->next_pos);
    vlm_free(c);
}

int vlm_ctx_new(const struct vlm_model *m, const struct vlm_ctx_params *pp, struct vlm_ctx **out,
                struct vlm_error *err) {
    *out = NULL;
    struct vlm_ctx_params p = pp ? *pp : vlm_ctx_default_params();
    if (p.n_ctx <= 0) p.n_ctx = m->info.n_ctx_train;
    if (p.n_seq_max <= 0 || p.n_seq_max > 4096 || p.n_batch_max <= 0 || p.n_batch_max > 65536 ||
        p.n_ctx > (1 << 24) || p.n_kv_tokens < 0)
        return vlm_error_set(err, VLM_E_INVALID, "context parameters out of range (n_seq_max %d, n_batch_max %d, n_ctx %d)",
                             p.n_seq_max, p.n_batch_max, p.n_ctx);
    long cap = p.n_kv_tokens > 0 ? p.n_kv_tokens : (long)p.n_ctx * p.n_seq_max;
    struct vlm_ctx *c = vlm_calloc(1, sizeof *c);
    if (!c) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    c->model = m;
    c->p = p;
    if (p.kv_dtype == VLM_KV_AUTO) p.kv_dtype = VLM_KV_F32;
    c->p.kv_dtype = p.kv_dtype;
    enum vlm_dtype kt = p.kv_dtype == VLM_KV_F16 ? VLM_DT_F16 : p.kv_dtype == VLM_KV_BF16 ? VLM_DT_BF16 : VLM_DT_F32;
    int rc = vlm_kv_init(&c->kv, m->info.n_layer, m->info.kv_dim, p.n_seq_max, p.n_ctx, cap, kt, err);
    if (rc != VLM_OK) { vlm_ctx_free(c); return rc; }
    c->kv.state_free = m->family->seq_state_free;
    c->pool = vlm_pool_new(p.n_threads > 0 ? p.n_threads : m->n_threads);
    c->scratch = m->family->scratch_new(m, p.n_batch_max);
    c->logits = vlm_malloc(sizeof(float) * (size_t)p.n_batch_max * (size_t)m->info.n_vocab);
    c->want = vlm_malloc((size_t)p.n_batch_max);
    c->next_pos = vlm_malloc(sizeof(int32_t) * (size_t)p.n_seq_max);
    if (!c->scratch || !c->logits || !c->want || !c->next_pos) {
        vlm_ctx_free(c);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory for a context of %d rows", p.n_batch_max);
    }
    *out = c;
    return VLM_OK;
}

const struct vlm_model *vlm_ctx_model(const struct vlm_ctx *c) { return c->model; }
enum vlm_kv_dtype vlm_ctx_kv_dtype(const struct vlm_ctx *c) { return c->p.kv_dtype; }

static const struct { const char *name; enum vlm_kv_dtype t; } kv_names[] = {
    {"auto", VLM_KV_AUTO}, {"float32", VLM_KV_F32}, {"fp32", VLM_KV_F32}, {"float", VLM_KV_F32},
    {"float16", VLM_KV_F16}, {"fp16", VLM_KV_F16}, {"half", VLM_KV_F16},
    {"bfloat16", VLM_KV_BF16}, {"bf16", VLM_KV_BF16},
};

int vlm_kv_dtype_parse(const char *s, enum vlm_kv_dtype *out) {
    for (size_t i = 0; s && i < sizeof kv_names / sizeof *kv_names; i++)
        if (!strcmp(s, kv_names[i].name)) {
            *out = kv_names[i].t;
            return 0;
        }
    return -1;
}

const char *vlm_kv_dtype_name(enum vlm_kv_dtype t) {
    return t == VLM_KV_F32 ? "float32" : t == VLM_KV_F16 ? "float16" : t == VLM_KV_BF16 ? "bfloat16" : "auto";
}
struct vlm_pool *vlm_ctx_pool(struct vlm_ctx *c) { return c->pool; }
int vlm_ctx_n_ctx(const struct vlm_ctx *c) { return c->p.n_ctx; }
int vlm_ctx_kv_capacity(const struct vlm_ctx *c) { return (int)c->kv.cap_tokens; }
int vlm_ctx_n_logits(const struct vlm_ctx *c) { return c->n_logits; }

int vlm_ctx_kv_free(const struct vlm_ctx *c) {
    long used = 0;   /* tokens held, not capacity reserved ahead: what admission can count on */
    for (int s = 0; s < c->kv.n_seq; s++) used += c->kv.seq[s].len + c->kv.seq[s].state_tokens;
    long f = c->kv.cap_tokens - used;
    return f < 0 ? 0 : (int)f;
}

void vlm_ctx_seq_clear(struct vlm_ctx *c, int s) { vlm_kv_clear(&c->kv, s); }

int vlm_ctx_seq_len(const struct vlm_ctx *c, int s) {
    return (s < 0 || s >= c->kv.n_seq) ? 0 : c->kv.seq[s].len;
}

float *vlm_ctx_logits(struct vlm_ctx *c, int j) {
    if (j < 0 || j >= c->n_logits) return NULL;
    return c->logits + (size_t)j * c->model->info.n_vocab;
}

int vlm_ctx_encode_image(struct vlm_ctx *c, const struct vlm_image_input *in, float *embd, struct vlm_error *err) {
    return vlm_model_encode_image(c->model, c->pool, in, embd, err);
}

int vlm_ctx_seq_set_images(struct vlm_ctx *c, int s, int n_images, const float *const *states, const int *n_tiles,
                           const struct vlm_mllama_span *spans, int n_prompt, struct vlm_error *err) {
    const struct vlm_family *f = c->model->family;
    if (!f->seq_set_images)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "this model takes images as token rows, not per sequence");
    if (s < 0 || s >= c->kv.n_seq) return vlm_error_set(err, VLM_E_INVALID, "sequence id %d out of range", s);
    return f->seq_set_images(c->model, &c->kv, c->pool, s, n_images, states, n_tiles, spans, n_prompt, err);
}

int vlm_ctx_seq_state_tokens(const struct vlm_ctx *c, int s) {
    return (s < 0 || s >= c->kv.n_seq) ? 0 : (int)c->kv.seq[s].state_tokens;
}

int vlm_prefill_take(const struct vlm_model_info *mi, const float *const *rows, size_t at, size_t remaining,
                     int budget) {
    if (budget <= 0) return 0;
    int k = remaining < (size_t)budget ? (int)remaining : budget;
    if (!mi->image_rows_whole || !rows || (size_t)k == remaining) return k;
    while (k > 0 && rows[at + (size_t)k - 1] && rows[at + (size_t)k]) k--;   /* not between two image rows */
    return k;
}

/* Checks ids, seq ids and that each sequence's rows continue it in order. */
static int validate(struct vlm_ctx *c, const struct vlm_batch *b, struct vlm_error *err) {
    const struct vlm_model_info *mi = &c->model->info;
    if (!b || b->n_tokens <= 0 || b->n_tokens > c->p.n_batch_max || !b->pos || !b->seq_id)
        return vlm_error_set(err, VLM_E_INVALID, "batch of %d rows (1..%d, with pos and seq_id)",
                             b ? b->n_tokens : 0, c->p.n_batch_max);
    for (int s = 0; s < c->kv.n_seq; s++) c->next_pos[s] = c->kv.seq[s].len;
    for (int i = 0; i < b->n_tokens; i++) {
        int s = b->seq_id[i];
        if (s < 0 || s >= c->kv.n_seq) return vlm_error_set(err, VLM_E_INVALID, "row %d: sequence id %d out of range", i, s);
        if (!(b->embd && b->embd[i]) && (!b->token || b->token[i] < 0 || b->token[i] >= (mi->n_embd_rows > mi->n_vocab ? mi->n_embd_rows : mi->n_vocab)))
            return vlm_error_set(err, VLM_E_INVALID, "row %d: token id %d out of range", i, b->token ? b->token[i] : -1);
        if (b->pos[i] != c->next_pos[s])
            return vlm_error_set(err, VLM_E_INVALID, "row %d: position %d, sequence %d continues at %d", i, b->pos[i], s, c->next_pos[s]);
        if (b->pos[i] >= c->p.n_ctx)
            return vlm_error_set(err, VLM_E_TOO_LARGE, "sequence %d would pass the context length %d", s, c->p.n_ctx);
        c->next_pos[s]++;
    }
    return VLM_OK;
}

int vlm_ctx_decode(struct vlm_ctx *c, const struct vlm_batch *b, struct vlm_error *err) {
    c->n_logits = 0;
    int rc = validate(c, b, err);
    if (rc != VLM_OK) return rc;
    for (int s = 0; s < c->kv.n_seq && rc == VLM_OK; s++)
        if (c->next_pos[s] > c->kv.seq[s].len) rc = vlm_kv_reserve(&c->kv, s, c->next_pos[s], err);
    for (int s = 0; s < c->kv.n_seq; s++) c->kv.seq[s].keep = 0;   /* reservations of this step are made */
    if (rc != VLM_OK) return rc;   /* nothing was written: lengths are unchanged */
    int n_out = 0;
    for (int i = 0; i < b->n_tokens; i++) {
        if (b->want_logits) c->want[i] = b->want_logits[i] != 0;
        else {   /* the last row of its sequence */
            c->want[i] = 1;
            for (int j = i + 1; j < b->n_tokens && c->want[i]; j++) c->want[i] = b->seq_id[j] != b->seq_id[i];
        }
        n_out += c->want[i];
    }
    rc = c->model->family->forward(c->model, &c->kv, c->pool, c->scratch, b, c->want, c->logits, err);
    if (rc != VLM_OK) return rc;
    for (int s = 0; s < c->kv.n_seq; s++) c->kv.seq[s].len = c->next_pos[s];
    c->n_logits = n_out;
    return VLM_OK;
}
