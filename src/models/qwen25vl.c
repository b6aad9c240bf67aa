/* qwen25vl.c — the Qwen2.5-VL / Qwen2-VL family tables: reading both config styles (published
 * flat keys with rope_scaling {type: mrope}, and transformers-5 re-saved text_config /
 * rope_parameters), binding and checking every tensor, image encoding, and the decoder step
 * with M-RoPE positions rebuilt per sequence (see qwen25vl.h). */
#include "models/qwen25vl.h"

#include <stdio.h>
#include <string.h>

#include "models/batch.h"
#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto fail; } while (0)

/* Sets key to v in o when o lacks it (transformers' class defaults for keys real configs omit). */
static void dflt(json_t *o, const char *key, json_t *v) {
    if (!json_object_get(o, key)) json_object_set(o, key, v);
    json_decref(v);
}

/* The text config as llama.c reads it: a shallow copy of text_config (or of the root, for the
 * flat style) with Qwen2-VL's defaults filled in and the "mrope" rope type named "default" (as
 * transformers rewrites it); mrope_section read from rope_parameters or rope_scaling. */
static int text_config(const struct vlm_config *c, json_t **out, int sec[3], struct vlm_error *err) {
    json_t *tc = json_object_get(c->root, "text_config");
    if (!json_is_object(tc) || !json_object_get(tc, "hidden_size")) tc = c->root;
    json_t *t = json_copy(tc);
    if (!t) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    dflt(t, "vocab_size", json_integer(152064));
    dflt(t, "rope_theta", json_real(1000000.0));
    dflt(t, "max_position_embeddings", json_integer(32768));
    sec[0] = 16; sec[1] = 24; sec[2] = 24;
    const char *keys[2] = {"rope_parameters", "rope_scaling"};
    for (int i = 0; i < 2; i++) {
        json_t *r = json_object_get(t, keys[i]);
        if (!json_is_object(r)) continue;
        json_t *ms = json_object_get(r, "mrope_section");
        if (ms && (!json_is_array(ms) || json_array_size(ms) != 3)) {
            json_decref(t);
            return vlm_error_set(err, VLM_E_FORMAT, "%s: %s.mrope_section must be a list of 3 integers", c->path, keys[i]);
        }
        for (int k = 0; ms && k < 3; k++) {
            json_t *e = json_array_get(ms, (size_t)k);
            if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 256) {
                json_decref(t);
                return vlm_error_set(err, VLM_E_FORMAT, "%s: %s.mrope_section[%d] out of range", c->path, keys[i], k);
            }
            sec[k] = (int)json_integer_value(e);
        }
        json_t *r2 = json_copy(r);
        const char *ty = json_string_value(json_object_get(r, "rope_type"));
        const char *ty2 = json_string_value(json_object_get(r, "type"));
        if (!r2) { json_decref(t); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
        if ((ty && !strcmp(ty, "mrope")) || (ty2 && !strcmp(ty2, "mrope")) || (!ty && !ty2)) {
            json_object_set_new(r2, "rope_type", json_string("default"));
            json_object_del(r2, "type");
        }
        json_object_set_new(t, keys[i], r2);
    }
    *out = t;
    return VLM_OK;
}

/* Qwen2's sliding window is off in every published checkpoint; refuse configs that turn it on. */
static int check_no_sliding(const struct vlm_config *c, json_t *t, int n_layer, struct vlm_error *err) {
    int rc, sliding = 0;
    long long mwl;
    json_t *lt = json_object_get(t, "layer_types"), *e;
    size_t i;
    if (json_is_array(lt)) {
        json_array_foreach(lt, i, e) sliding |= json_is_string(e) && !strcmp(json_string_value(e), "sliding_attention");
    } else {
        int use = 0;
        if ((rc = vlm_config_bool(c, t, "use_sliding_window", 0, &use, err)) != VLM_OK) return rc;
        if ((rc = vlm_config_int(c, t, "max_window_layers", 80, 0, 1 << 20, &mwl, err)) != VLM_OK) return rc;
        sliding = use && mwl < n_layer;
    }
    if (sliding) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: sliding-window attention layers are not supported", c->path);
    return VLM_OK;
}

static void qwen_free(struct vlm_model *m) {
    struct vlm_qwen25vl *f = m->impl;
    if (!f) return;
    vlm_qwen_vision_free(&f->vision);
    vlm_llama_free(&f->text);
    vlm_free(f);
    m->impl = NULL;
}

static int qwen_load(struct vlm_model *m, struct vlm_error *err) {
    int v2 = m->family == &vlm_family_qwen2vl, rc, tie_top, sec[3];
    struct vlm_qwen25vl *f = vlm_calloc(1, sizeof *f);
    if (!f) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->impl = f;
    const struct vlm_config *c = &m->cfg;
    json_t *vc = NULL, *tc = NULL;
    struct vlm_qwen_vision_hparams vh;
    struct vlm_llama_hparams th;
    long long itok;
    CHK(vlm_config_sub(c, "vision_config", &vc, err));
    CHK(vlm_qwen_vision_hparams_read(c, vc, v2, &vh, err));
    CHK(text_config(c, &tc, sec, err));
    CHK(vlm_llama_hparams_read(c, tc, 1e-6f, &th, err));
    CHK(check_no_sliding(c, tc, th.n_layer, err));
    if (sec[0] + sec[1] + sec[2] != th.d_head / 2 || th.rope.rot_dim != th.d_head) {
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: mrope_section [%d, %d, %d] must add up to head_dim/2 = %d", c->path,
                           sec[0], sec[1], sec[2], th.d_head / 2);
        goto fail;
    }
    memcpy(th.mrope_section, sec, sizeof sec);
    CHK(vlm_config_bool(c, c->root, "tie_word_embeddings", 0, &tie_top, err));
    th.tied = th.tied || tie_top;
    CHK(vlm_config_int(c, c->root, "image_token_id", 151655, 0, th.n_vocab - 1, &itok, err));
    if (vh.d_out != th.d_model) {
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: the vision merger's output width %d is not the text hidden_size %d",
                           c->path, vh.d_out, th.d_model);
        goto fail;
    }
    const struct vlm_weights *w = &m->weights;
    const char *tp = vlm_weights_get(w, "model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
    const char *vp = vlm_weights_get(w, "model.visual.patch_embed.proj.weight") ? "model.visual." : "visual.";
    CHK(vlm_qwen_vision_load(&f->vision, &vh, w, vp, err));
    CHK(vlm_llama_load(&f->text, &th, w, tp, "lm_head.weight", err));
    m->info.n_vocab = th.n_vocab;
    m->info.d_model = th.d_model;
    m->info.n_layer = th.n_layer;
    m->info.kv_dim = th.n_head_kv * th.d_head;
    m->info.n_ctx_train = th.max_pos;
    m->info.image_token_id = (int32_t)itok;
    json_decref(tc);
    return VLM_OK;
fail:
    json_decref(tc);
    qwen_free(m);
    return rc;
}

static int qwen_encode(const struct vlm_model *m, struct vlm_pool *pool, const struct vlm_image_input *in,
                       float *embd, struct vlm_error *err) {
    const struct vlm_qwen25vl *f = m->impl;
    const struct vlm_qwen_vision_hparams *vh = &f->vision.hp;
    int P = vh->patch_size, M = vh->merge;
    long n = in ? (long)in->grid_thw[0] * in->grid_thw[1] * in->grid_thw[2] : 0;
    if (!in || !in->pixels || n <= 0 || in->n_tiles != n || in->channels != vh->n_channels * vh->temporal ||
        in->height != P || in->width != P || in->grid_thw[1] % M || in->grid_thw[2] % M ||
        in->n_image_tokens != n / (M * M))
        return vlm_error_set(err, VLM_E_INVALID, "image input does not fit the vision tower (%d patches of %dx%dx%d, grid %dx%dx%d, %d tokens; need patches of %dx%dx%d and a grid of multiples of %d)",
                             in ? in->n_tiles : 0, in ? in->channels : 0, in ? in->height : 0, in ? in->width : 0,
                             in ? in->grid_thw[0] : 0, in ? in->grid_thw[1] : 0, in ? in->grid_thw[2] : 0,
                             in ? in->n_image_tokens : 0, vh->n_channels * vh->temporal, P, P, M);
    return vlm_qwen_vision_forward(&f->vision, pool, in->pixels, in->grid_thw, embd, err);
}

int vlm_mrope_positions(const struct vlm_batch *b, int merge, struct vlm_mrope_seq *st, int n_st, int32_t *mpos,
                        struct vlm_error *err) {
    for (int i = 0; i < b->n_tokens; i++) {
        int s = b->seq_id[i];
        if (s < 0 || s >= n_st) return vlm_error_set(err, VLM_E_INTERNAL, "row %d: sequence %d has no M-RoPE state", i, s);
        struct vlm_mrope_seq *q = &st[s];
        if (b->pos[i] == 0) memset(q, 0, sizeof *q);
        if (b->pos[i] != q->len)
            return vlm_error_set(err, VLM_E_INTERNAL, "row %d: sequence %d at %d, its M-RoPE state at %d", i, s, b->pos[i], q->len);
        const struct vlm_image_input *img = b->embd && b->embd[i] && b->image ? b->image[i] : NULL;
        int32_t *p = mpos + 3 * (size_t)i;
        if (b->embd && b->embd[i] && !img)
            return vlm_error_set(err, VLM_E_INVALID, "row %d: an image row without its image (vlm_batch.image): M-RoPE needs the image's grid", i);
        if (img && (q->n == 0 || q->img != img)) {
            if (q->n) return vlm_error_set(err, VLM_E_INVALID, "row %d: an image starts before the previous one ended", i);
            int t = img->grid_thw[0], gh = img->grid_thw[1] / merge, gw = img->grid_thw[2] / merge;
            if (t < 1 || gh < 1 || gw < 1 || (long)t * gh * gw != img->n_image_tokens)
                return vlm_error_set(err, VLM_E_INVALID, "row %d: image grid %dx%dx%d does not give its %d tokens", i,
                                     img->grid_thw[0], img->grid_thw[1], img->grid_thw[2], img->n_image_tokens);
            q->img = img; q->start = q->next; q->k = 0; q->n = img->n_image_tokens; q->gh = gh; q->gw = gw;
        }
        if (img) {
            int k = q->k, hw = q->gh * q->gw;
            p[0] = q->start + k / hw;
            p[1] = q->start + (k / q->gw) % q->gh;
            p[2] = q->start + k % q->gw;
            if (++q->k == q->n) {   /* get_rope_index: current_pos += max(h, w) // merge */
                q->next = q->start + (q->gh > q->gw ? q->gh : q->gw);
                q->n = 0;
                q->img = NULL;
            }
        } else {
            if (q->n) return vlm_error_set(err, VLM_E_INVALID, "row %d: text inside an image's rows", i);
            p[0] = p[1] = p[2] = q->next++;
        }
        q->len++;
    }
    return VLM_OK;
}

struct qwen_scratch {
    void *text;                 /* llama.c's scratch */
    int n_max;
    int32_t *mpos;              /* (n_max, 3) */
    struct vlm_mrope_seq *seq;  /* (n_seq) one per sequence slot of the context */
    struct vlm_mrope_seq *tmp;  /* (n_seq) the next step's states while they are computed */
    int n_seq;
};

static void qwen_scratch_free(void *p) {
    struct qwen_scratch *s = p;
    if (!s) return;
    vlm_llama_scratch_free(s->text);
    vlm_free(s->mpos);
    vlm_free(s->seq);
    vlm_free(s->tmp);
    vlm_free(s);
}

static void *qwen_scratch_new(const struct vlm_model *m, int n) {
    const struct vlm_qwen25vl *f = m->impl;
    struct qwen_scratch *s = vlm_calloc(1, sizeof *s);
    if (!s || n <= 0) { vlm_free(s); return NULL; }
    s->n_max = n;
    s->text = vlm_llama_scratch_new(&f->text, n);
    s->mpos = vlm_malloc(sizeof(int32_t) * 3 * (size_t)n);
    if (!s->text || !s->mpos) { qwen_scratch_free(s); return NULL; }
    return s;
}

static int qwen_forward(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                        const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    const struct vlm_qwen25vl *f = m->impl;
    struct qwen_scratch *s = scratch;
    if (!s || b->n_tokens > s->n_max) return vlm_error_set(err, VLM_E_INTERNAL, "decoder scratch too small for %d rows", b->n_tokens);
    if (kv->n_seq > s->n_seq) {   /* one state per sequence slot of the context */
        struct vlm_mrope_seq *g = vlm_calloc((size_t)kv->n_seq, sizeof *g), *t = vlm_calloc((size_t)kv->n_seq, sizeof *t);
        if (!g || !t) { vlm_free(g); vlm_free(t); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
        if (s->n_seq) memcpy(g, s->seq, sizeof *g * (size_t)s->n_seq);
        vlm_free(s->seq);
        vlm_free(s->tmp);
        s->seq = g;
        s->tmp = t;
        s->n_seq = kv->n_seq;
    }
    /* positions on a copy of the states, kept only when the whole batch is accepted */
    memcpy(s->tmp, s->seq, sizeof *s->tmp * (size_t)s->n_seq);
    int rc = vlm_mrope_positions(b, f->vision.hp.merge, s->tmp, s->n_seq, s->mpos, err);
    if (rc != VLM_OK) return rc;
    struct vlm_mrope_seq *t = s->seq;
    s->seq = s->tmp;
    s->tmp = t;
    return vlm_llama_forward_mrope(&f->text, kv, pool, s->text, b, s->mpos, want, logits, err);
}

static void qwen_describe(const struct vlm_model *m, FILE *out) {
    const struct vlm_qwen25vl *f = m->impl;
    const struct vlm_qwen_vision_hparams *v = &f->vision.hp;
    const struct vlm_llama_hparams *t = &f->text.hp;
    int n_full = 0;
    for (int i = 0; i < v->n_layer; i++) n_full += v->full_attn[i];
    fprintf(out, "vision         %s: %d layers, d_model %d, %d heads, ffn %d, patch %d x %d frames, %s",
            v->v2 ? "Qwen2-VL ViT (LayerNorm)" : "Qwen2.5-VL ViT (RMSNorm, SwiGLU)", v->n_layer, v->d_model,
            v->n_head, v->d_ff, v->patch_size, v->temporal, v->v2 ? "full attention\n" : "window attention\n");
    if (!v->v2)
        fprintf(out, "               windows of %d px (%d merged patches a side), full attention in %d block(s)\n",
                v->window_size, v->window_units, n_full);
    fprintf(out, "connector      merger: %dx%d patches -> 1 token of %d (dynamic resolution)\n", v->merge, v->merge, v->d_out);
    fprintf(out, "text           Qwen2: %d layers, d_model %d, %d heads (%d kv, head_dim %d), ffn %d, vocab %d,\n"
                 "               M-RoPE sections %d/%d/%d, rope_theta %g, max positions %d, %s embeddings\n",
            t->n_layer, t->d_model, t->n_head, t->n_head_kv, t->d_head, t->d_ff, t->n_vocab, t->mrope_section[0],
            t->mrope_section[1], t->mrope_section[2], t->rope.theta, t->max_pos,
            f->text.lm_head == f->text.embed ? "tied" : "untied");
}

/* The decoder's costs; an image's depend on its grid (vlm bench measures one through the processor). */
static void qwen_costs(const struct vlm_model *m, struct vlm_family_costs *c) {
    const struct vlm_qwen25vl *f = m->impl;
    c->image_size = 0;
    vlm_llama_costs(&f->text, &c->decode_bytes, &c->token_flops, &c->token_flops_ctx);
}

#define QWEN_FAMILY(var, fname)                \
    const struct vlm_family var = {            \
        .name = fname,                         \
        .image_mode = VLM_IMAGES_SPLICED,      \
        .load = qwen_load,                     \
        .free = qwen_free,                     \
        .encode_image = qwen_encode,           \
        .scratch_new = qwen_scratch_new,       \
        .scratch_free = qwen_scratch_free,     \
        .forward = qwen_forward,               \
        .describe = qwen_describe,             \
        .costs = qwen_costs,                   \
    }

QWEN_FAMILY(vlm_family_qwen25vl, "qwen2_5_vl");
QWEN_FAMILY(vlm_family_qwen2vl, "qwen2_vl");
