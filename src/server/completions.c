/* completions.c — /v1/chat/completions, /v1/completions and /tokenize: request -> images
 * (media.c, image cache) -> prompt (engine/prompt.h) -> embeddings (cached by image hash) ->
 * one scheduler sequence per choice; choices.c turns their events into text, stream.c into SSE. */
#include "server/completions.h"

#include "models/mllama_processor.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>

struct gen_shared {
    atomic_int              refs;
    struct vlm_server      *s;
    struct vlm_prompt       prompt;
    struct vlm_cache_entry **entries;
    int                     n_entries;
    const float           **rows;        /* (n_ids) embedding row per position or NULL */
    const float           **cross;       /* cross-attention models: (n_images) encoded images */
    int                    *cross_tiles; /* (n_images) */
    struct vlm_mllama_span *cross_spans; /* (n_images) */
    const struct vlm_image_input **images; /* (n_ids) the image of each row in rows, or NULL */
    struct vlm_template    *tmpl;        /* a trusted request template */
};

static void shared_unref(void *p) {
    struct gen_shared *sh = p;
    if (!sh || atomic_fetch_sub(&sh->refs, 1) != 1) return;
    vlm_prompt_free(&sh->prompt);
    for (int i = 0; i < sh->n_entries; i++) vlm_image_cache_release(sh->s->cache, sh->entries[i]);
    vlm_free(sh->entries);
    vlm_free(sh->rows);
    vlm_free(sh->cross);
    vlm_free(sh->cross_tiles);
    vlm_free(sh->cross_spans);
    vlm_free(sh->images);
    vlm_template_free(sh->tmpl);
    vlm_free(sh);
}

static int fail_code(struct vlm_api_error *e, int code, const char *param, const char *msg) {
    return vlm_api_fail(e, vlm_api_status_for(code), param, "%s", msg);
}

/* Requested processor overrides clamped to the server's ceilings: a request may turn image
 * splitting off (not on when the server turned it off) and lower size.longest_edge. */
static void proc_overrides(const struct vlm_server *s, json_t *kw, struct vlm_processor_overrides *o) {
    *o = s->proc_ceiling;
    o->max_image_size = 0;
    if (!json_is_object(kw)) return;
    json_t *v = json_object_get(kw, "do_image_splitting");
    if (json_is_boolean(v) && !(s->proc_ceiling.do_image_splitting == 0 && json_is_true(v)))
        o->do_image_splitting = json_is_true(v);
    int ceiling = s->proc_ceiling.longest_edge ? s->proc_ceiling.longest_edge : s->proc_longest_cfg;
    v = json_object_get(json_object_get(kw, "size"), "longest_edge");
    if (json_is_integer(v) && json_integer_value(v) > 0 && ceiling > 0)
        o->longest_edge = json_integer_value(v) < ceiling ? (int)json_integer_value(v) : ceiling;
    /* Qwen2-VL min_pixels / max_pixels: max_pixels at most the server's (else the model's)
       max_pixels, min_pixels at most the resulting max_pixels */
    long top = s->proc_ceiling.max_pixels ? s->proc_ceiling.max_pixels : s->proc_max_pixels_cfg;
    v = json_object_get(kw, "max_pixels");
    if (json_is_integer(v) && json_integer_value(v) > 0 && top > 0)
        o->max_pixels = json_integer_value(v) < top ? (long)json_integer_value(v) : top;
    long max_now = o->max_pixels ? o->max_pixels : top;
    v = json_object_get(kw, "min_pixels");
    if (json_is_integer(v) && json_integer_value(v) > 0 && max_now > 0)
        o->min_pixels = json_integer_value(v) < max_now ? (long)json_integer_value(v) : max_now;
    if (o->min_pixels && !json_is_integer(v) && o->max_pixels && o->min_pixels > o->max_pixels)
        o->min_pixels = o->max_pixels;   /* the server's min_pixels above a request's max_pixels */
}

struct encode_job {
    struct vlm_server *s;
    const struct vlm_image_input *in;
    float *out;
};

static int encode_job_run(void *user, struct vlm_pool *pool, struct vlm_error *err) {
    struct encode_job *j = user;
    double t0 = vlm_srv_now();
    int rc = vlm_model_encode_image(j->s->model, pool, j->in, j->out, err);
    if (rc == VLM_OK) vlm_metrics_observe(j->s->metrics, VLM_M_IMAGE_ENCODE, vlm_srv_now() - t0);
    return rc;
}

/* The cache's encoder: a job on the scheduler thread, which owns the cores (images that arrive
   together are encoded before the step that prefills them, and never beside a decode step). */
static int encode_cb(void *user, float *out, struct vlm_error *err) {
    struct encode_job *j = user;
    j->out = out;
    int cost = j->s->info->cross_image_rows ? j->s->info->cross_image_rows : j->in->n_image_tokens;
    return vlm_sched_run(j->s->sched, encode_job_run, j, cost, err);
}

/* Fetches and decodes the request's images through the cache (entries kept in sh). */
static int load_images(struct vlm_server *s, const struct vlm_api_request *r, struct gen_shared *sh,
                       const char *variant, const struct vlm_image ***imgs, struct vlm_api_error *e) {
    *imgs = NULL;
    if (!r->n_images) return 0;
    sh->entries = vlm_calloc(r->n_images, sizeof *sh->entries);
    *imgs = vlm_calloc(r->n_images, sizeof **imgs);
    if (!sh->entries || !*imgs) return vlm_api_fail(e, 500, NULL, "out of memory");
    for (size_t i = 0; i < r->n_images; i++) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        struct vlm_error err;
        int rc = vlm_media_load(&s->cfg.media, r->images[i].url, r->images[i].url_len, &bytes, &n, &err);
        if (rc != VLM_OK) return fail_code(e, rc, "messages", err.msg);
        int hit = 0;
        sh->entries[i] = vlm_image_cache_acquire(s->cache, bytes, n, variant, &hit);
        if (!sh->entries[i]) { vlm_free(bytes); return vlm_api_fail(e, 500, NULL, "out of memory"); }
        sh->n_entries = (int)i + 1;
        vlm_metrics_image_cache(s->metrics, hit);
        rc = vlm_image_cache_image(s->cache, sh->entries[i], bytes, n, &s->img_limits, &(*imgs)[i], &err);
        vlm_free(bytes);
        if (rc != VLM_OK)
            return vlm_api_fail(e, vlm_api_status_for(rc), "messages", "Failed to load image %zu: %s", i + 1, err.msg);
    }
    return 0;
}

/* Text prompt (completions) -> ids; image tokens typed into the text are refused. */
static int text_prompt(struct vlm_server *s, const struct vlm_api_request *r, struct vlm_prompt *p,
                       struct vlm_api_error *e) {
    struct vlm_error err;
    if (r->prompt_ids) {
        p->ids = vlm_memdup(r->prompt_ids, r->n_prompt_ids * sizeof *p->ids);
        p->n_ids = r->n_prompt_ids;
        if (!p->ids) return vlm_api_fail(e, 500, NULL, "out of memory");
    } else {
        int flags = VLM_TOK_PARSE_SPECIAL | (r->add_special_tokens ? VLM_TOK_ADD_SPECIAL : 0);
        int rc = vlm_tokenize(s->tok, r->prompt, r->prompt_len, flags, &p->ids, &p->n_ids, &err);
        if (rc != VLM_OK) return fail_code(e, rc, "prompt", err.msg);
    }
    for (size_t i = 0; i < p->n_ids; i++)
        if (s->info->image_token_id >= 0 && p->ids[i] == s->info->image_token_id)
            return vlm_api_fail(e, 400, "prompt",
                                "The prompt contains image placeholder tokens but no images; use the chat endpoint with image_url parts.");
    return 0;
}

/* Builds sh->prompt and sh->rows for r. */
static int prepare(struct vlm_server *s, const struct vlm_api_request *r, struct gen_shared *sh,
                   int encode, struct vlm_api_error *e) {
    struct vlm_processor_overrides po;
    proc_overrides(s, r->mm_processor_kwargs, &po);
    char variant[128];
    snprintf(variant, sizeof variant, "s%d,l%d,m%d,p%ld-%ld", po.do_image_splitting, po.longest_edge, po.max_image_size,
             po.min_pixels, po.max_pixels);
    const struct vlm_image **imgs = NULL;
    int rc = load_images(s, r, sh, variant, &imgs, e);
    if (rc == 0 && r->messages) {
        struct vlm_prompt_opts o = vlm_prompt_default_opts();
        struct vlm_error err;
        o.add_generation_prompt = r->add_generation_prompt;
        o.chat_template_kwargs = r->chat_template_kwargs;
        o.template_override = s->template_override;
        o.wants_parts = s->wants_parts;
        o.proc = &po;
        o.max_tokens = (size_t)vlm_sched_n_ctx(s->sched);
        if (r->chat_template) {
            if (vlm_template_parse(r->chat_template, strlen(r->chat_template), &sh->tmpl, &err) != VLM_OK) {
                vlm_free(imgs);
                return vlm_api_fail(e, 400, "chat_template", "Invalid chat template: %s", err.msg);
            }
            o.template_override = sh->tmpl;
            o.wants_parts = s->cfg.content_format >= 0 ? s->cfg.content_format
                                                       : vlm_template_wants_parts(r->chat_template);
        }
        int prc = vlm_prompt_prepare(s->model, r->messages, imgs, (int)r->n_images, &o, &sh->prompt, &err);
        if (prc == VLM_E_TOO_LARGE)
            rc = vlm_api_fail(e, 400, "messages",
                              "This model's maximum context length is %d tokens. However, your messages resulted in more tokens.",
                              vlm_sched_n_ctx(s->sched));
        else if (prc != VLM_OK)
            rc = vlm_api_fail(e, vlm_api_status_for(prc), "messages", "%s", err.msg);
    } else if (rc == 0) {
        rc = text_prompt(s, r, &sh->prompt, e);
    }
    vlm_free(imgs);
    if (rc || !encode) return rc;
    /* embeddings of every image, once per distinct image */
    struct vlm_prompt *p = &sh->prompt;
    size_t d = (size_t)s->info->d_model;
    const float **embd = p->n_images ? vlm_calloc((size_t)p->n_images, sizeof *embd) : NULL;
    if (p->n_images && !embd) return vlm_api_fail(e, 500, NULL, "out of memory");
    for (int j = 0; j < p->n_images && j < sh->n_entries; j++) {
        struct encode_job job = {s, &p->images[j], NULL};
        struct vlm_error err;
        int computed = 0;
        size_t n_rows = s->info->cross_image_rows ? (size_t)s->info->cross_image_rows : (size_t)p->images[j].n_image_tokens;
        int erc = vlm_image_cache_embd(s->cache, sh->entries[j], n_rows, d,
                                       encode_cb, &job, &embd[j], &computed, &err);
        if (erc != VLM_OK) {
            vlm_free(embd);
            return vlm_api_fail(e, vlm_api_status_for(erc), "messages", "Failed to encode image %d: %s", j + 1, err.msg);
        }
    }
    if (p->n_images && s->info->cross_image_rows) {   /* Mllama: images enter through cross-attention */
        struct vlm_error err;
        sh->cross = embd;
        sh->cross_tiles = vlm_malloc(sizeof(int) * (size_t)p->n_images);
        sh->cross_spans = vlm_malloc(sizeof *sh->cross_spans * (size_t)p->n_images);
        if (!sh->cross_tiles || !sh->cross_spans) return vlm_api_fail(e, 500, NULL, "out of memory");
        int src = vlm_prompt_cross_spans(s->model, p, sh->cross_spans, sh->cross_tiles, &err);
        return src == VLM_OK ? 0 : fail_code(e, src, "messages", err.msg);
    }
    if (p->n_images) {
        sh->rows = vlm_calloc(p->n_ids, sizeof *sh->rows);
        sh->images = vlm_calloc(p->n_ids, sizeof *sh->images);
        if (!sh->rows || !sh->images) { vlm_free(embd); return vlm_api_fail(e, 500, NULL, "out of memory"); }
        for (size_t i = 0; i < p->n_ids; i++) {
            int im = p->image_of ? p->image_of[i] : -1;
            if (im >= 0 && im < p->n_images && p->row_of[i] >= 0 && p->row_of[i] < p->images[im].n_image_tokens) {
                sh->rows[i] = embd[im] + (size_t)p->row_of[i] * d;
                sh->images[i] = &p->images[im];
            }
        }
    }
    vlm_free(embd);
    return 0;
}

/* ---- handlers ---- */

static void make_id(char *out, size_t n, const char *prefix) {
    uint8_t rnd[16];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) memset(rnd, 0, sizeof rnd);
    size_t o = (size_t)snprintf(out, n, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && o + 2 < n; i++) o += (size_t)snprintf(out + o, n - o, "%02x", rnd[i]);
}

/* Sampling settings: the request's, else the generation config's (--generation-config auto). */
static void sampling_for(const struct vlm_server *s, const struct vlm_api_request *r, int i,
                         struct vlm_sampling_params *sp) {
    int use_gen = !s->cfg.generation_config || strcmp(s->cfg.generation_config, "vllm") != 0;
    const struct vlm_model_info *in = s->info;
    *sp = vlm_sampling_default_params();
    sp->temperature = r->temperature >= 0 ? (float)r->temperature : use_gen ? in->gen_temperature : 1.0f;
    sp->top_p = r->top_p > 0 ? (float)r->top_p : use_gen && in->gen_top_p > 0 ? in->gen_top_p : 1.0f;
    sp->top_k = r->top_k == -2 ? (use_gen ? in->gen_top_k : 0) : (r->top_k > 0 ? r->top_k : 0);
    sp->min_p = (float)r->min_p;
    sp->repetition_penalty = json_object_get(r->root, "repetition_penalty") || !use_gen || in->gen_repetition_penalty <= 0
                                 ? (float)r->repetition_penalty : in->gen_repetition_penalty;
    sp->presence_penalty = (float)r->presence_penalty;
    sp->frequency_penalty = (float)r->frequency_penalty;
    sp->has_seed = r->has_seed;
    sp->seed = (uint64_t)r->seed + (uint64_t)i;
    sp->n_top_logprobs = r->top_logprobs;
}

/* Parses, prepares and submits; on failure fills resp and returns NULL. */
static struct gen *start(struct vlm_server *s, enum vlm_api_kind kind, const struct vlm_http_request *req,
                         struct vlm_http_response *resp) {
    struct vlm_api_error e;
    struct gen *g = vlm_calloc(1, sizeof *g);
    struct gen_shared *sh = vlm_calloc(1, sizeof *sh);
    if (!g || !sh) {
        vlm_free(g);
        vlm_free(sh);
        vlm_api_fail(&e, 500, NULL, "out of memory");
        vlm_srv_error(resp, &e);
        return NULL;
    }
    g->s = s;
    g->t_arrival = vlm_srv_now();
    g->conn = req->conn;
    g->chat = kind == VLM_API_CHAT;
    atomic_init(&sh->refs, 1);
    sh->s = s;
    int rc = vlm_api_parse(kind, req->body, req->body_len, &s->limits, &g->r, &e);
    struct vlm_api_request *r = &g->r;
    if (!rc && !vlm_srv_model_ok(s, r->model))
        rc = vlm_api_fail(&e, 404, "model", "The model `%.200s` does not exist.", r->model);
    if (!rc) rc = prepare(s, r, sh, 1, &e);
    long n_ctx = vlm_sched_n_ctx(s->sched);
    size_t n_ids = sh->prompt.n_ids;
    if (!rc && r->max_tokens > 0 && (long)n_ids + r->max_tokens > n_ctx)
        rc = vlm_api_fail(&e, 400, "max_tokens",
                          "This model's maximum context length is %ld tokens. However, you requested %ld tokens "
                          "(%zu in the messages, %ld in the completion). Please reduce the length of the messages or completion.",
                          n_ctx, (long)n_ids + r->max_tokens, n_ids, r->max_tokens);
    if (!rc && (long)n_ids >= n_ctx)
        rc = vlm_api_fail(&e, 400, "messages",
                          "This model's maximum context length is %ld tokens. However, your prompt has %zu tokens.",
                          n_ctx, n_ids);
    if (!rc) {
        g->n = r->n;
        g->ch = vlm_calloc((size_t)g->n, sizeof *g->ch);
        if (!g->ch) rc = vlm_api_fail(&e, 500, NULL, "out of memory");
    }
    if (!rc) {
        g->n_prompt = n_ids;
        g->n_image_tokens = sh->prompt.n_image_tokens;
        g->model = r->model ? r->model : s->model_name;
        g->created = (long long)time(NULL);
        make_id(g->id, sizeof g->id, g->chat ? "chatcmpl-" : "cmpl-");
        g->stop.strings = (const char *const *)r->stop;
        g->stop.n_strings = (int)r->n_stop;
        if (!g->chat && r->echo) {
            size_t el = 0;
            if (r->prompt) g->echo = vlm_strndup(r->prompt, r->prompt_len);
            else vlm_detokenize(s->tok, sh->prompt.ids, n_ids, 0, &g->echo, &el, NULL);
        }
    }
    for (int i = 0; !rc && i < g->n; i++) {
        struct gen_choice *c = &g->ch[i];
        struct vlm_seq_params sp = {0};
        struct vlm_error err;
        sp.ids = sh->prompt.ids;
        sp.n_ids = n_ids;
        sp.embd = sh->rows;
        sp.n_cross_images = sh->cross ? sh->prompt.n_images : 0;
        sp.cross_states = sh->cross;
        sp.cross_tiles = sh->cross_tiles;
        sp.cross_spans = sh->cross_spans;
        sp.image = sh->images;
        sampling_for(s, r, i, &sp.sampling);
        sp.eos_ids = s->info->eos_ids;
        sp.n_eos = s->info->n_eos;
        sp.ignore_eos = r->ignore_eos;
        sp.stop_ids = r->stop_token_ids;
        sp.n_stop_ids = r->n_stop_token_ids;
        sp.bias_ids = r->bias_ids;
        sp.bias_values = r->bias_values;
        sp.n_bias = r->n_bias;
        sp.max_new_tokens = r->max_tokens > 0 ? (int)r->max_tokens : (int)(n_ctx - (long)n_ids);
        sp.min_new_tokens = (int)r->min_tokens;
        sp.on_free = shared_unref;
        sp.user = sh;
        c->lp = json_array();
        c->lp_top = json_array();
        c->lp_tok = json_array();
        if (vlm_detok_new(s->tok, r->skip_special_tokens, &c->dt) != VLM_OK || !c->lp || !c->lp_top || !c->lp_tok) {
            rc = vlm_api_fail(&e, 500, NULL, "out of memory");
            break;
        }
        atomic_fetch_add(&sh->refs, 1);
        if (vlm_sched_submit(s->sched, &sp, &c->q, &err) != VLM_OK) {
            atomic_fetch_sub(&sh->refs, 1);
            rc = vlm_api_fail(&e, vlm_api_status_for(err.code) == 413 ? 400 : vlm_api_status_for(err.code), NULL, "%s", err.msg);
        }
    }
    shared_unref(sh);      /* the sequences hold it now */
    if (rc) {
        for (int i = 0; g->ch && i < g->n; i++) g->ch[i].done = 1;
        gen_free(g);
        vlm_srv_error(resp, &e);
        return NULL;
    }
    vlm_metrics_tokens(s->metrics, (long)n_ids, 0);
    return g;
}

static json_t *choice_logprobs(const struct gen *g, const struct gen_choice *c) {
    if (g->chat) return g->r.logprobs ? json_pack("{s:O}", "content", c->lp) : json_null();
    if (g->r.logprobs < 0) return json_null();
    json_t *offs = json_array();
    size_t off = g->echo ? strlen(g->echo) : 0;
    for (size_t i = 0; i < json_array_size(c->lp_tok); i++) {
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += json_string_length(json_array_get(c->lp_tok, i));
    }
    return json_pack("{s:o, s:O, s:O, s:O}", "text_offset", offs, "token_logprobs", c->lp, "tokens", c->lp_tok,
                     "top_logprobs", c->lp_top);
}

/* Builds the non-streamed response once every choice is done. */
static void respond_whole(struct gen *g, struct vlm_http_response *resp) {
    json_t *choices = json_array();
    long gen = 0;
    for (int i = 0; i < g->n; i++) {
        struct gen_choice *c = &g->ch[i];
        if (c->error && c->error != VLM_E_CANCELLED) {
            struct vlm_api_error e;
            vlm_api_fail(&e, vlm_api_status_for(c->error), NULL, "Generation failed (%s).", vlm_strerror(c->error));
            json_decref(choices);
            vlm_srv_error(resp, &e);
            gen_log_done(g, e.status, "failed");
            return;
        }
        gen += c->n_gen;
        const char *txt = vlm_buf_cstr(&c->text);
        json_t *ch;
        if (g->chat)
            ch = json_pack("{s:i, s:{s:s, s:s%, s:[]}, s:o, s:s?, s:n}", "index", i, "message", "role", g->s->cfg.response_role,
                           "content", txt, c->text.len, "tool_calls", "logprobs", choice_logprobs(g, c),
                           "finish_reason", c->finish, "stop_reason");
        else {
            struct vlm_buf full = {0};
            if (g->echo) vlm_buf_append(&full, g->echo, strlen(g->echo));
            vlm_buf_append(&full, txt, c->text.len);
            ch = json_pack("{s:i, s:s%, s:o, s:s?, s:n}", "index", i, "text", vlm_buf_cstr(&full), full.len,
                           "logprobs", choice_logprobs(g, c), "finish_reason", c->finish, "stop_reason");
            vlm_buf_free(&full);
        }
        json_array_append_new(choices, ch);
    }
    vlm_metrics_tokens(g->s->metrics, 0, gen);
    vlm_metrics_observe(g->s->metrics, VLM_M_E2E, vlm_srv_now() - g->t_arrival);
    gen_log_done(g, 200, NULL);
    vlm_srv_json(resp, 200, json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", g->id, "object",
                                      g->chat ? "chat.completion" : "text_completion", "created",
                                      (json_int_t)g->created, "model", g->model, "choices", choices,
                                      "usage", gen_usage(g)));
}

static void run_generation(struct vlm_server *s, enum vlm_api_kind kind, const struct vlm_http_request *req,
                           struct vlm_http_response *resp) {
    struct gen *g = start(s, kind, req, resp);
    if (!g) return;
    if (g->r.stream) {
        resp->status = 200;
        resp->content_type = "text/event-stream; charset=utf-8";
        resp->stream = gen_stream_read;
        resp->stream_ctx = g;
        resp->stream_free = gen_stream_free;
        return;
    }
    int r;
    while ((r = gen_pump(g, 1000)) == 0) {}
    if (r < 0) {
        struct vlm_api_error e;
        if (g->shutdown) vlm_srv_error(resp, (vlm_api_fail(&e, 503, NULL, "The server is shutting down."), &e));
        else resp->status = 499;     /* the client is gone; nobody reads this */
        gen_log_done(g, resp->status, g->shutdown ? "ended by shutdown" : "client gone");
        gen_free(g);
        return;
    }
    respond_whole(g, resp);
    gen_free(g);
}

void vlm_srv_chat(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp) {
    run_generation(s, VLM_API_CHAT, req, resp);
}

void vlm_srv_completion(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp) {
    run_generation(s, VLM_API_COMPLETION, req, resp);
}

void vlm_srv_tokenize(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp) {
    struct vlm_api_request r;
    struct vlm_api_error e;
    if (vlm_api_parse(VLM_API_TOKENIZE, req->body, req->body_len, &s->limits, &r, &e)) {
        vlm_srv_error(resp, &e);
        return;
    }
    struct gen_shared *sh = vlm_calloc(1, sizeof *sh);
    int rc = sh ? 0 : vlm_api_fail(&e, 500, NULL, "out of memory");
    if (sh) { atomic_init(&sh->refs, 1); sh->s = s; }
    if (!rc && !vlm_srv_model_ok(s, r.model))
        rc = vlm_api_fail(&e, 404, "model", "The model `%.200s` does not exist.", r.model);
    if (!rc) rc = prepare(s, &r, sh, 0, &e);
    if (rc) vlm_srv_error(resp, &e);
    else {
        json_t *ids = json_array(), *strs = NULL;
        int want_strs = json_is_true(json_object_get(r.root, "return_token_strs"));
        if (want_strs) strs = json_array();
        for (size_t i = 0; i < sh->prompt.n_ids; i++) {
            json_array_append_new(ids, json_integer(sh->prompt.ids[i]));
            if (strs) {   /* the vocabulary's own strings, as convert_ids_to_tokens gives them */
                const char *piece = vlm_tokenizer_piece(s->tok, sh->prompt.ids[i]);
                json_array_append_new(strs, piece ? json_string(piece) : json_null());
            }
        }
        vlm_srv_json(resp, 200, json_pack("{s:I, s:i, s:o, s:o}", "count", (json_int_t)sh->prompt.n_ids,
                                          "max_model_len", vlm_sched_n_ctx(s->sched), "tokens", ids,
                                          "token_strs", strs ? strs : json_null()));
    }
    shared_unref(sh);
    vlm_api_request_free(&r);
}
