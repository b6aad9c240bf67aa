/* server.c — start/stop of `vlm serve`, routing, API-key check, and the small endpoints
 * (/health, /version, /v1/models, /metrics, /detokenize). Chat and text completions and
 * /tokenize are in completions.c; the response helpers both use in respond.c. */
#include "server/server_internal.h"

#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void vlm_server_config_default(struct vlm_server_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "0.0.0.0";
    c->port = 8000;
    c->max_num_seqs = 16;
    c->limit_images = 999;
    vlm_media_policy_default(&c->media);
    c->max_body = 64u << 20;
    c->max_image_pixels = 89478485;
    c->generation_config = "auto";
    c->image_cache_bytes = 256u << 20;
    c->prefill_chunk = 256;
    vlm_http_config_default(&c->http);
    c->shutdown_timeout_s = 30;
    c->max_logprobs = 20;
    c->content_format = -1;
    c->response_role = "assistant";
    c->log_requests = 1;
    c->log_stats = 1;
}

/* Constant-time comparison of "Bearer KEY" against the key. */
static int auth_ok(const struct vlm_server *s, const char *hdr) {
    const char *key = s->cfg.api_key;
    if (!key || !*key) return 1;
    if (!hdr || strncmp(hdr, "Bearer ", 7) != 0) return 0;
    const char *got = hdr + 7;
    size_t a = strlen(got), b = strlen(key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < a ? got[i] : 0);
    return diff == 0;
}

static void models(struct vlm_server *s, struct vlm_http_response *resp) {
    json_t *data = json_array();
    int n = s->cfg.n_served_names > 0 ? s->cfg.n_served_names : 1;
    for (int i = 0; i < n; i++) {
        const char *name = s->cfg.n_served_names > 0 ? s->cfg.served_names[i] : s->model_name;
        json_array_append_new(data, json_pack("{s:s, s:s, s:I, s:s, s:s, s:n, s:i, s:[]}", "id", name,
                                              "object", "model", "created", (json_int_t)s->started,
                                              "owned_by", "vlm.c", "root", s->cfg.model_dir, "parent",
                                              "max_model_len", vlm_sched_n_ctx(s->sched), "permission"));
    }
    vlm_srv_json(resp, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void metrics(struct vlm_server *s, struct vlm_http_response *resp) {
    struct vlm_sched_stats st;
    vlm_sched_get_stats(s->sched, &st);
    struct vlm_metrics_gauges g = {st.n_running, st.n_waiting,
                                   st.kv_capacity > 0 ? (double)st.kv_used / st.kv_capacity : 0.0,
                                   st.kv_capacity};
    struct vlm_buf b = {0};
    vlm_metrics_render(s->metrics, &g, &b);
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->body_len = b.len;
    resp->body = vlm_buf_take(&b);
}

static void detokenize(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp) {
    struct vlm_api_request r;
    struct vlm_api_error e;
    if (vlm_api_parse(VLM_API_DETOKENIZE, req->body, req->body_len, &s->limits, &r, &e)) {
        vlm_srv_error(resp, &e);
        return;
    }
    if (!vlm_srv_model_ok(s, r.model)) {
        vlm_api_fail(&e, 404, "model", "The model `%.200s` does not exist.", r.model);
        vlm_srv_error(resp, &e);
        vlm_api_request_free(&r);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    struct vlm_error err;
    int rc = vlm_detokenize(s->tok, r.prompt_ids, r.n_prompt_ids, 0, &text, &len, &err);
    vlm_api_request_free(&r);
    if (rc != VLM_OK) {
        vlm_api_fail(&e, vlm_api_status_for(rc), "tokens", "%s", err.msg);
        vlm_srv_error(resp, &e);
        return;
    }
    vlm_srv_json(resp, 200, json_pack("{s:s%}", "prompt", text, len));
    vlm_free(text);
}

/* Every 10 s while there is work: vLLM's throughput line (prompt and generation tokens/s since
 * the last line, running/waiting requests, KV-cache usage). */
static void *stats_main(void *arg) {
    struct vlm_server *s = arg;
    struct vlm_sched_stats last, st;
    vlm_sched_get_stats(s->sched, &last);
    double t_last = vlm_srv_now(), every = 10.0;
    const char *env = getenv("VLLM_LOG_STATS_INTERVAL");   /* vLLM's knob, seconds */
    if (env && strtod(env, NULL) > 0) every = strtod(env, NULL);
    while (!__atomic_load_n(&s->stats_stop, __ATOMIC_SEQ_CST)) {
        usleep(100000);
        double t = vlm_srv_now();
        if (t - t_last < every) continue;
        vlm_sched_get_stats(s->sched, &st);
        long dp = st.tokens_prefilled - last.tokens_prefilled, dd = st.tokens_decoded - last.tokens_decoded;
        if (dp || dd || st.n_running || st.n_waiting)
            VLM_LOGI("Avg prompt throughput: %.1f tokens/s, Avg generation throughput: %.1f tokens/s, Running: %d reqs, "
                     "Waiting: %d reqs, KV cache usage: %.1f%%", dp / (t - t_last), dd / (t - t_last), st.n_running,
                     st.n_waiting, st.kv_capacity > 0 ? 100.0 * st.kv_used / st.kv_capacity : 0.0);
        last = st;
        t_last = t;
    }
    return NULL;
}

static int is_generation(const char *p) {
    return !strcmp(p, "/v1/chat/completions") || !strcmp(p, "/v1/completions");
}

static void route(void *app, const struct vlm_http_request *req, struct vlm_http_response *resp) {
    struct vlm_server *s = app;
    struct vlm_api_error e;
    const char *p = req->path;
    double t0 = vlm_srv_now();
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strncmp(p, "/v1/", 4) && !auth_ok(s, req->authorization)) {
        vlm_api_fail(&e, 401, NULL, "Unauthorized");
        vlm_srv_error(resp, &e);
    } else if ((!strcmp(p, "/health") || !strcmp(p, "/ping")) && get) {
        resp->status = 200;
    } else if (!strcmp(p, "/ping") && post) {
        resp->status = 200;
    } else if (!strcmp(p, "/version") && get) {
        vlm_srv_json(resp, 200, json_pack("{s:s}", "version", vlm_version()));
    } else if (!strcmp(p, "/v1/models") && get) {
        models(s, resp);
    } else if (!strcmp(p, "/metrics") && get) {
        metrics(s, resp);
    } else if (!strcmp(p, "/v1/chat/completions") && post) {
        vlm_srv_chat(s, req, resp);
    } else if (!strcmp(p, "/v1/completions") && post) {
        vlm_srv_completion(s, req, resp);
    } else if (!strcmp(p, "/tokenize") && post) {
        vlm_srv_tokenize(s, req, resp);
    } else if (!strcmp(p, "/detokenize") && post) {
        detokenize(s, req, resp);
    } else if (!strcmp(p, "/health") || !strcmp(p, "/ping") || !strcmp(p, "/version") || !strcmp(p, "/v1/models") ||
               !strcmp(p, "/metrics") || !strcmp(p, "/v1/chat/completions") ||
               !strcmp(p, "/v1/completions") || !strcmp(p, "/tokenize") || !strcmp(p, "/detokenize")) {
        vlm_api_fail(&e, 405, NULL, "Method Not Allowed");
        vlm_srv_error(resp, &e);
    } else {
        vlm_api_fail(&e, 404, NULL, "Not Found");
        vlm_srv_error(resp, &e);
    }
    vlm_metrics_http(s->metrics, resp->status ? resp->status : 200);
    /* access log: generations that ran log their own line when they end (completions.c); the rest
       here, at INFO for the API and for errors, at DEBUG for probes (/health, /metrics, ...) */
    int st = resp->status ? resp->status : 200;
    if (s->cfg.log_requests && !(is_generation(p) && st < 400))
        vlm_log(st >= 400 || !strncmp(p, "/v1/", 4) || !strcmp(p, "/tokenize") || !strcmp(p, "/detokenize")
                    ? VLM_LOG_INFO : VLM_LOG_DEBUG,
                "%s %s %d %.1f ms", req->method, p, st, (vlm_srv_now() - t0) * 1e3);
}

/* --chat-template: a path when such a file exists, else template text (as vLLM does). */
static int load_template(struct vlm_server *s, struct vlm_error *err) {
    const char *t = s->cfg.chat_template;
    if (!t || !*t) return VLM_OK;
    char *src = NULL;
    size_t len = 0;
    int rc;
    if (vlm_file_exists(t)) {
        if ((rc = vlm_read_file(t, 1u << 20, &src, &len, err)) != VLM_OK) return rc;
    } else if (strpbrk(t, "{}\n")) {
        src = vlm_strdup(t);
        len = src ? strlen(src) : 0;
    } else {
        return vlm_error_set(err, VLM_E_NOT_FOUND, "--chat-template '%s' looks like a file path, but it cannot be opened", t);
    }
    if (!src) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    rc = vlm_template_parse(src, len, &s->template_override, err);
    if (s->cfg.content_format < 0) s->wants_parts = vlm_template_wants_parts(src);   /* detected per template */
    vlm_free(src);
    if (rc != VLM_OK) vlm_error_prefix(err, "--chat-template");
    return rc;
}

/* Server processor settings (--mm-processor-kwargs) apply to every request and are the
 * ceilings requests are clamped to; without one, the model's preprocessor_config.json value is
 * the ceiling. max_image_size (the tile side the vision tower was trained on) is never changed. */
static void proc_ceiling(struct vlm_server *s) {
    json_t *k = s->cfg.mm_processor_kwargs;
    s->proc_ceiling.do_image_splitting = -1;
    char *path = vlm_path_join(s->cfg.model_dir, "preprocessor_config.json"), *txt = NULL;
    size_t len = 0;
    if (path && vlm_read_file(path, 1u << 20, &txt, &len, NULL) == VLM_OK) {
        json_t *pre = json_loadb(txt, len, 0, NULL);
        json_t *v = json_object_get(json_object_get(pre, "size"), "longest_edge");
        if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 65536)
            s->proc_longest_cfg = (int)json_integer_value(v);
        json_t *mp = json_object_get(pre, "max_pixels");   /* Qwen2-VL: max_pixels, else size.longest_edge */
        if (!json_is_integer(mp) && json_is_string(json_object_get(pre, "image_processor_type")) &&
            strstr(json_string_value(json_object_get(pre, "image_processor_type")), "Qwen2VL"))
            mp = v;
        if (json_is_integer(mp) && json_integer_value(mp) > 0 && json_integer_value(mp) <= (1L << 28))
            s->proc_max_pixels_cfg = (long)json_integer_value(mp);
        json_decref(pre);
    }
    vlm_free(txt);
    vlm_free(path);
    if (!json_is_object(k)) return;
    json_t *v = json_object_get(k, "do_image_splitting");
    if (json_is_boolean(v)) s->proc_ceiling.do_image_splitting = json_is_true(v);
    v = json_object_get(json_object_get(k, "size"), "longest_edge");
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 65536)
        s->proc_ceiling.longest_edge = (int)json_integer_value(v);
    /* Qwen2-VL's pixel bounds: the server's values apply to every request; max_pixels is also
       the ceiling of a request's (never above 2^28) */
    v = json_object_get(k, "max_pixels");
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= (1L << 28))
        s->proc_ceiling.max_pixels = (long)json_integer_value(v);
    v = json_object_get(k, "min_pixels");
    if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= (1L << 28))
        s->proc_ceiling.min_pixels = (long)json_integer_value(v);
    if (s->proc_ceiling.max_pixels && s->proc_ceiling.min_pixels > s->proc_ceiling.max_pixels)
        s->proc_ceiling.min_pixels = s->proc_ceiling.max_pixels;
    if (json_object_get(k, "max_image_size"))
        VLM_LOGW("--mm-processor-kwargs: max_image_size is the vision tower's tile size and is not changed");
}

int vlm_server_start(const struct vlm_server_config *c, struct vlm_server **out, struct vlm_error *err) {
    *out = NULL;
    struct vlm_server *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->cfg = *c;
    s->started = time(NULL);
    int rc = vlm_media_global_init(err);
    struct vlm_model_params mp = vlm_model_default_params();
    mp.n_threads = c->threads;
    mp.mmproj = c->mmproj;
    mp.dtype = c->dtype;
    mp.quantization = c->quantization;
    mp.tokenizer_dir = c->tokenizer;
    double t_load = vlm_srv_now();
    if (rc == VLM_OK && vlm_model_load(c->model_dir, &mp, &s->model) != VLM_OK)
        rc = vlm_error_set(err, VLM_E_IO, "%s", vlm_last_error());
    s->load_s = vlm_srv_now() - t_load;
    if (rc == VLM_OK) {
        s->info = vlm_model_get_info(s->model);
        s->tok = vlm_model_tokenizer(s->model);
        if (!s->tok) rc = vlm_error_set(err, VLM_E_NOT_FOUND, "the model folder has no tokenizer");
    }
    s->wants_parts = c->content_format;   /* -1: the model's own template decides, unless --chat-template */
    if (rc == VLM_OK) rc = load_template(s, err);
    if (rc == VLM_OK && c->max_model_len > s->info->n_ctx_train) {
        const char *allow = getenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN");
        if (!allow || strcmp(allow, "1"))
            rc = vlm_error_set(err, VLM_E_INVALID,
                               "User-specified max_model_len (%d) is greater than the derived max_model_len "
                               "(max_position_embeddings=%d in the model's config.json). To allow overriding this "
                               "maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1",
                               c->max_model_len, s->info->n_ctx_train);
        else
            VLM_LOGW("--max-model-len %d is longer than the model's %d positions (VLLM_ALLOW_LONG_MAX_MODEL_LEN=1): "
                     "outputs past them may be wrong", c->max_model_len, s->info->n_ctx_train);
    }
    if (rc == VLM_OK) {
        struct vlm_sched_params sp = vlm_sched_default_params();
        sp.max_num_seqs = c->max_num_seqs;
        sp.n_ctx = c->max_model_len;
        sp.n_threads = c->threads;
        sp.prefill_chunk = c->prefill_chunk;
        sp.n_kv_tokens = c->kv_cache_tokens;
        sp.job_budget = c->max_num_batched_tokens;
        sp.kv_dtype = (enum vlm_kv_dtype)c->kv_cache_dtype;
        rc = vlm_sched_new(s->model, &sp, &s->sched, err);
    }
    if (rc == VLM_OK) {
        s->model_name = vlm_strdup(c->n_served_names > 0 ? c->served_names[0] : c->model_dir);
        s->metrics = vlm_metrics_new(s->model_name);
        s->cache = vlm_image_cache_new(c->image_cache_bytes);
        if (!s->model_name || !s->metrics || !s->cache) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (rc == VLM_OK) {
        vlm_api_limits_default(&s->limits);
        s->limits.max_images = c->limit_images;
        s->limits.max_logprobs = c->max_logprobs;
        s->limits.max_model_len = vlm_sched_n_ctx(s->sched);
        s->limits.vocab_size = s->info->n_vocab;
        s->limits.trust_request_chat_template = c->trust_request_chat_template;
        s->limits.max_stop = VLM_MAX_STOP_STRINGS;
        s->limits.max_stop_len = VLM_MAX_STOP_LEN;
        s->img_limits = vlm_image_default_limits();
        if (c->max_image_pixels) s->img_limits.max_pixels = c->max_image_pixels;
        json_t *bg = json_object_get(json_object_get(c->media_io_kwargs, "image"), "rgba_background_color");
        for (int i = 0; i < 3 && json_is_array(bg) && json_array_size(bg) == 3; i++)
            s->img_limits.background[i] = (uint8_t)json_integer_value(json_array_get(bg, (size_t)i));
        proc_ceiling(s);
        struct vlm_http_config hc = c->http;
        hc.host = c->host;
        hc.port = c->port;
        hc.max_body = c->max_body;
        rc = vlm_http_start(&hc, route, s, &s->http, err);
        if (rc == VLM_OK && c->log_stats) s->stats_started = pthread_create(&s->stats_thread, NULL, stats_main, s) == 0;
    }
    if (rc != VLM_OK) {
        vlm_server_stop(s);
        return rc;
    }
    *out = s;
    return VLM_OK;
}

int vlm_server_port(const struct vlm_server *s) { return vlm_http_port(s->http); }

void vlm_server_describe(const struct vlm_server *s, char *buf, size_t size) {
    struct vlm_sched_stats st;
    vlm_sched_get_stats(s->sched, &st);
    long kv = st.kv_capacity > 0 ? st.kv_capacity : s->cfg.kv_cache_tokens > 0 ? s->cfg.kv_cache_tokens
                                                    : (long)vlm_sched_n_ctx(s->sched) * s->cfg.max_num_seqs;
    snprintf(buf, size, "model %s (%s, %.1f MiB of weights) loaded in %.0f ms; max model len %d, KV cache up to %ld "
             "tokens (%s)", s->cfg.model_dir, s->info->arch ? s->info->arch : "?", s->info->weight_bytes / 1048576.0,
             s->load_s * 1e3, vlm_sched_n_ctx(s->sched), kv, vlm_kv_dtype_name((enum vlm_kv_dtype)s->cfg.kv_cache_dtype));
}

void vlm_server_shutdown(struct vlm_server *s) {
    if (!s) return;
    vlm_http_stop_accepting(s->http);
    int left = vlm_http_drain(s->http, (s->cfg.shutdown_timeout_s > 0 ? s->cfg.shutdown_timeout_s : 0) * 1000);
    if (left) VLM_LOGW("shutdown: %d request%s still running after %d s; ending %s with an error", left,
                       left == 1 ? "" : "s", s->cfg.shutdown_timeout_s, left == 1 ? "it" : "them");
    vlm_server_stop(s);
}

void vlm_server_stop(struct vlm_server *s) {
    if (!s) return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
    vlm_http_stop(s->http);      /* first: no handler runs after this (they see stopping) */
    if (s->stats_started) {
        __atomic_store_n(&s->stats_stop, 1, __ATOMIC_SEQ_CST);
        pthread_join(s->stats_thread, NULL);
    }
    vlm_sched_free(s->sched);
    vlm_image_cache_free(s->cache);
    vlm_metrics_free(s->metrics);
    vlm_template_free(s->template_override);
    vlm_model_free(s->model);
    vlm_free(s->model_name);
    vlm_free(s);
}
