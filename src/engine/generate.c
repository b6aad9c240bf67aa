/* generate.c — vlm_generate, the one-call path of include/vlm.h (and `vlm generate`): decode
 * the images, prepare the prompt, encode the images, prefill in chunks, then sample token by
 * token with streaming text, stop strings, EOS and max tokens. The server does the same per
 * sequence through the scheduler. */
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/prompt.h"
#include "engine/sampler.h"
#include "engine/stop.h"
#include "image/image.h"
#include "models/mllama_processor.h"
#include "models/model.h"
#include "models/processor.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

#define GEN_CHUNK 512   /* prompt rows per prefill step */

struct vlm_generate_params vlm_generate_default_params(void) {
    struct vlm_generate_params p;
    memset(&p, 0, sizeof p);
    p.max_tokens = 256;
    p.temperature = -1.0f;   /* < 0: the model's generation_config.json */
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    return p;
}

void vlm_generate_result_free(struct vlm_generate_result *r) {
    if (!r) return;
    vlm_free(r->text);
    vlm_free(r->token_ids);
    vlm_free(r->logprobs);
    vlm_free(r->prompt_ids);
    memset(r, 0, sizeof *r);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct gen {
    struct vlm_model *m;
    const struct vlm_generate_params *p;
    struct vlm_prompt prompt;
    struct vlm_ctx *ctx;
    float **emb;
    struct vlm_sampler *sampler;
    struct vlm_detok *detok;
    struct vlm_buf text;      /* all generated text */
    size_t emitted;           /* bytes of text handed to on_text */
};

static int prefill(struct gen *g, struct vlm_error *err) {
    const struct vlm_prompt *pr = &g->prompt;
    int32_t pos[GEN_CHUNK], seq[GEN_CHUNK];
    const float *rows[GEN_CHUNK];
    const struct vlm_image_input *img[GEN_CHUNK];
    int rc = VLM_OK;
    const float **all = vlm_malloc(sizeof *all * (pr->n_ids ? pr->n_ids : 1));
    if (!all) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    for (size_t k = 0; k < pr->n_ids; k++)
        all[k] = pr->image_of[k] >= 0 && !g->m->info.cross_image_rows   /* cross-attention: <|image|> stays a token */
            ? g->emb[pr->image_of[k]] + (size_t)pr->row_of[k] * g->m->info.d_model : NULL;
    for (size_t at = 0, n = 0; at < pr->n_ids && rc == VLM_OK; at += n) {
        n = (size_t)vlm_prefill_take(&g->m->info, all, at, pr->n_ids - at, GEN_CHUNK);
        if (n == 0) { rc = vlm_error_set(err, VLM_E_TOO_LARGE, "an image has more than %d tokens", GEN_CHUNK); break; }
        for (size_t i = 0; i < n; i++) {
            pos[i] = (int32_t)(at + i);
            seq[i] = 0;
            rows[i] = all[at + i];
            img[i] = pr->image_of[at + i] >= 0 ? &pr->images[pr->image_of[at + i]] : NULL;
        }
        struct vlm_batch b = {(int)n, pr->ids + at, rows, pos, seq, NULL, img};
        rc = vlm_ctx_decode(g->ctx, &b, err);
    }
    vlm_free(all);
    return rc;
}

/* Emits text that no stop string can still claim; returns 1 when a stop string matched. */
static int push_text(struct gen *g, const char *piece, size_t n, const struct vlm_stop *st, int final, int *cancel) {
    size_t before = g->text.len;
    if (n && vlm_buf_append(&g->text, piece, n) != VLM_OK) return -1;
    long hit = vlm_stop_find(st, g->text.data ? g->text.data : "", g->text.len, before);
    int stopped = hit >= 0;
    if (stopped) g->text.len = (size_t)hit;
    size_t safe = g->text.len;
    if (!stopped && !final) safe -= vlm_stop_holdback(st, g->text.data ? g->text.data : "", g->text.len);
    if (g->p->on_text && safe > g->emitted) {
        if (g->p->on_text(g->text.data + g->emitted, safe - g->emitted, g->p->user)) *cancel = 1;
        g->emitted = safe;
    }
    return stopped;
}

/* mm_processor_kwargs JSON -> processor overrides (the keys vLLM's processors take). */
static int parse_overrides(const char *kw, struct vlm_processor_overrides *o, struct vlm_error *err) {
    json_error_t je;
    json_t *j = json_loads(kw, JSON_REJECT_DUPLICATES, &je), *v;
    memset(o, 0, sizeof *o);
    o->do_image_splitting = -1;
    if (!json_is_object(j)) {
        json_decref(j);
        return vlm_error_set(err, VLM_E_INVALID, "mm_processor_kwargs: expected a JSON object");
    }
    int rc = VLM_OK;
    if ((v = json_object_get(j, "do_image_splitting"))) {
        if (json_is_boolean(v)) o->do_image_splitting = json_is_true(v);
        else rc = vlm_error_set(err, VLM_E_INVALID, "mm_processor_kwargs: do_image_splitting must be true or false");
    }
    v = json_object_get(json_object_get(j, "size"), "longest_edge");
    if (!v) v = json_object_get(j, "longest_edge");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 65536))
        rc = vlm_error_set(err, VLM_E_INVALID, "mm_processor_kwargs: longest_edge must be 1..65536");
    else if (v) o->longest_edge = (int)json_integer_value(v);
    const char *px[2] = {"min_pixels", "max_pixels"};
    for (int i = 0; i < 2; i++) {
        v = json_object_get(j, px[i]);
        if (v && (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1LL << 40)))
            rc = vlm_error_set(err, VLM_E_INVALID, "mm_processor_kwargs: %s must be a positive integer", px[i]);
        else if (v) *(i ? &o->max_pixels : &o->min_pixels) = (long)json_integer_value(v);
    }
    json_decref(j);
    return rc;
}

/* params->raw_prompt: BOS + the text's ids, no template, no images (llama-completion's prompt). */
static int raw_prompt(const struct vlm_model *m, const char *text, struct vlm_prompt *pr, struct vlm_error *err) {
    if (!m->tok) return vlm_error_set(err, VLM_E_INVALID, "the model has no tokenizer");
    pr->text = vlm_strdup(text);
    if (!pr->text) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int rc = vlm_tokenize(m->tok, text, strlen(text), VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL, &pr->ids, &pr->n_ids, err);
    if (rc != VLM_OK) return rc;
    if (!pr->n_ids) return vlm_error_set(err, VLM_E_INVALID, "the prompt is empty");
    pr->image_of = vlm_malloc(sizeof(int32_t) * pr->n_ids);
    pr->row_of = vlm_malloc(sizeof(int32_t) * pr->n_ids);
    if (!pr->image_of || !pr->row_of) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    for (size_t i = 0; i < pr->n_ids; i++) pr->image_of[i] = pr->row_of[i] = -1;
    return VLM_OK;
}

static int run_prompt(struct gen *g, struct vlm_generate_result *out, struct vlm_error *err);

static int run(struct gen *g, const char *messages_json, const struct vlm_image_bytes *images, int n_images,
               struct vlm_generate_result *out, struct vlm_error *err) {
    struct vlm_model *m = g->m;
    const struct vlm_generate_params *p = g->p;
    if (p->raw_prompt) {
        int rc = raw_prompt(m, p->raw_prompt, &g->prompt, err);
        return rc == VLM_OK ? run_prompt(g, out, err) : rc;
    }
    json_error_t je;
    json_t *msgs = json_loads(messages_json ? messages_json : "", JSON_REJECT_DUPLICATES, &je);
    if (!msgs) return vlm_error_set(err, VLM_E_INVALID, "messages: not valid JSON (%s)", je.text);
    struct vlm_image *imgs = vlm_calloc((size_t)(n_images > 0 ? n_images : 1), sizeof *imgs);
    const struct vlm_image **ip = vlm_calloc((size_t)(n_images > 0 ? n_images : 1), sizeof *ip);
    int rc = (!imgs || !ip) ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
    for (int i = 0; i < n_images && rc == VLM_OK; i++) {
        rc = vlm_image_decode(images[i].data, images[i].len, NULL, &imgs[i], err);
        if (rc != VLM_OK) vlm_error_prefix(err, "image %d", i + 1);
        ip[i] = &imgs[i];
    }
    struct vlm_processor_overrides po;
    struct vlm_prompt_opts po_opts = vlm_prompt_default_opts();
    if (rc == VLM_OK && p->mm_processor_kwargs) {
        rc = parse_overrides(p->mm_processor_kwargs, &po, err);
        po_opts.proc = &po;
    }
    if (rc == VLM_OK) rc = vlm_prompt_prepare(m, msgs, ip, n_images, &po_opts, &g->prompt, err);
    for (int i = 0; i < n_images && imgs; i++) vlm_image_free(&imgs[i]);
    vlm_free(imgs);
    vlm_free(ip);
    json_decref(msgs);
    return rc == VLM_OK ? run_prompt(g, out, err) : rc;
}

/* Generation from a prepared prompt (g->prompt): image encodes, prefill, sampling. */
static int run_prompt(struct gen *g, struct vlm_generate_result *out, struct vlm_error *err) {
    struct vlm_model *m = g->m;
    const struct vlm_generate_params *p = g->p;
    int rc;
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 1;
    cp.n_batch_max = GEN_CHUNK;
    cp.n_threads = p->n_threads > 0 ? p->n_threads : m->n_threads;
    long need = (long)g->prompt.n_ids + (p->max_tokens > 0 ? p->max_tokens : m->info.n_ctx_train);
    cp.n_ctx = need < m->info.n_ctx_train ? (int)need : m->info.n_ctx_train;
    if ((long)g->prompt.n_ids >= m->info.n_ctx_train)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "the prompt has %zu tokens; the model's context is %d", g->prompt.n_ids, m->info.n_ctx_train);
    cp.n_kv_tokens = cp.n_ctx + g->prompt.n_images * m->info.cross_image_tokens;   /* room for cross-attention images */
    if ((rc = vlm_ctx_new(m, &cp, &g->ctx, err)) != VLM_OK) return rc;

    double t0 = now_ms();
    g->emb = vlm_calloc((size_t)g->prompt.n_images + 1, sizeof *g->emb);
    if (!g->emb) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int cross = m->info.cross_image_rows > 0;   /* Mllama: images enter through cross-attention */
    for (int i = 0; i < g->prompt.n_images; i++) {
        size_t rows = cross ? (size_t)m->info.cross_image_rows : (size_t)g->prompt.images[i].n_image_tokens;
        g->emb[i] = vlm_malloc(sizeof(float) * rows * m->info.d_model);
        if (!g->emb[i]) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        if ((rc = vlm_ctx_encode_image(g->ctx, &g->prompt.images[i], g->emb[i], err)) != VLM_OK) return rc;
    }
    if (cross && g->prompt.n_images > 0) {
        int n = g->prompt.n_images;
        struct vlm_mllama_span *spans = vlm_malloc(sizeof *spans * (size_t)n);
        int *tiles = vlm_malloc(sizeof(int) * (size_t)n);
        rc = !spans || !tiles ? vlm_error_set(err, VLM_E_NOMEM, "out of memory")
                              : vlm_prompt_cross_spans(m, &g->prompt, spans, tiles, err);
        if (rc == VLM_OK)
            rc = vlm_ctx_seq_set_images(g->ctx, 0, n, (const float *const *)g->emb, tiles, spans, (int)g->prompt.n_ids, err);
        vlm_free(spans);
        vlm_free(tiles);
        if (rc != VLM_OK) return rc;
    }
    double t1 = now_ms();
    if ((rc = prefill(g, err)) != VLM_OK) return rc;
    double t2 = now_ms();
    out->t_image_ms = t1 - t0;
    out->t_prefill_ms = t2 - t1;
    out->n_prompt_tokens = (int)g->prompt.n_ids;
    out->prompt_ids = vlm_malloc(sizeof(int32_t) * (g->prompt.n_ids ? g->prompt.n_ids : 1));
    if (!out->prompt_ids) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    memcpy(out->prompt_ids, g->prompt.ids, sizeof(int32_t) * g->prompt.n_ids);

    struct vlm_sampling_params sp = vlm_sampling_default_params();
    sp.temperature = p->temperature >= 0 ? p->temperature : (m->info.gen_do_sample ? m->info.gen_temperature : 0.0f);
    sp.top_k = p->top_k;
    sp.top_p = p->top_p;
    sp.min_p = p->min_p;
    sp.repetition_penalty = p->repetition_penalty;
    sp.presence_penalty = p->presence_penalty;
    sp.frequency_penalty = p->frequency_penalty;
    sp.seed = p->seed;
    sp.has_seed = p->has_seed;
    if ((rc = vlm_sampler_new(&sp, m->info.n_vocab, g->prompt.ids, g->prompt.n_ids, &g->sampler, err)) != VLM_OK) return rc;
    if ((rc = vlm_detok_new(m->tok, 1, &g->detok)) != VLM_OK) return vlm_error_set(err, rc, "out of memory");
    struct vlm_stop st = {m->info.eos_ids, m->info.n_eos, p->stop, p->n_stop, p->max_tokens, 0};
    int cap = p->max_tokens > 0 ? p->max_tokens : cp.n_ctx;
    out->token_ids = vlm_malloc(sizeof(int32_t) * (size_t)cap);
    out->logprobs = vlm_malloc(sizeof(float) * (size_t)cap);
    if (!out->token_ids || !out->logprobs) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    enum vlm_finish fin = VLM_FINISH_NONE;
    int cancel = 0, by_string = 0;
    for (int n = 0; fin == VLM_FINISH_NONE && !cancel; n++) {
        struct vlm_token_info ti;
        vlm_sampler_sample(g->sampler, vlm_ctx_logits(g->ctx, 0), &ti);
        out->token_ids[n] = ti.id;
        out->logprobs[n] = ti.logprob;
        out->n_tokens = n + 1;
        fin = vlm_stop_token(&st, ti.id, n + 1);
        if (fin == VLM_FINISH_STOP) { out->n_tokens = n + 1; break; }
        char *piece = NULL;
        size_t plen = 0;
        if ((rc = vlm_detok_push(g->detok, ti.id, &piece, &plen, err)) != VLM_OK) return rc;
        int s = push_text(g, piece, plen, &st, 0, &cancel);
        vlm_free(piece);
        if (s < 0) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        if (s) { fin = VLM_FINISH_STOP; by_string = 1; break; }
        if (fin != VLM_FINISH_NONE || n + 1 >= cap) { fin = VLM_FINISH_LENGTH; break; }
        if (vlm_ctx_seq_len(g->ctx, 0) >= cp.n_ctx) { fin = VLM_FINISH_LENGTH; break; }
        int32_t pos = vlm_ctx_seq_len(g->ctx, 0), seq = 0;
        struct vlm_batch b = {1, &ti.id, NULL, &pos, &seq, NULL, NULL};
        if ((rc = vlm_ctx_decode(g->ctx, &b, err)) != VLM_OK) return rc;
    }
    char *tail = NULL;
    size_t tlen = 0;
    if (!by_string && vlm_detok_flush(g->detok, &tail, &tlen, err) == VLM_OK) {
        if (push_text(g, tail, tlen, &st, 1, &cancel) > 0) fin = VLM_FINISH_STOP;
    } else {
        push_text(g, NULL, 0, &st, 1, &cancel);   /* hand out what the holdback kept */
    }
    vlm_free(tail);
    out->t_decode_ms = now_ms() - t2;
    out->finish_reason = vlm_finish_reason(fin == VLM_FINISH_NONE ? VLM_FINISH_LENGTH : fin);
    out->text = vlm_strndup(g->text.data ? g->text.data : "", g->text.len);
    if (!out->text) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    return VLM_OK;
}

int vlm_generate(struct vlm_model *m, const char *messages_json, const struct vlm_image_bytes *images,
                 int n_images, const struct vlm_generate_params *params, struct vlm_generate_result *out) {
    struct vlm_error err;
    vlm_error_clear(&err);
    memset(out, 0, sizeof *out);
    struct vlm_generate_params p = params ? *params : vlm_generate_default_params();
    struct gen g;
    memset(&g, 0, sizeof g);
    g.m = m;
    g.p = &p;
    int rc = (n_images < 0 || (n_images > 0 && !images))
        ? vlm_error_set(&err, VLM_E_INVALID, "bad image list") : run(&g, messages_json, images, n_images, out, &err);
    if (rc != VLM_OK) vlm_generate_result_free(out);
    if (g.emb)
        for (int i = 0; i < g.prompt.n_images; i++) vlm_free(g.emb[i]);
    vlm_free(g.emb);
    vlm_prompt_free(&g.prompt);
    vlm_sampler_free(g.sampler);
    vlm_detok_free(g.detok);
    vlm_buf_free(&g.text);
    vlm_ctx_free(g.ctx);
    return rc;
}
