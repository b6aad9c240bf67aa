/* server.c — start/stop of `vlm serve`, routing, API-key check, and the small endpoints
 * (/health, /version, /v1/models, /metrics, /detokenize). Chat and text completions and
 * /tokenize are in generate.c. */
#include "server/server_internal.h"

#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

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
}

double vlm_srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int vlm_srv_error(struct vlm_http_response *resp, const struct vlm_api_error *e) {
    resp->status = e->status;
    resp->body = vlm_api_error_body(e);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    return e->status;
}

void vlm_srv_json(struct vlm_http_response *resp, int status, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        struct vlm_api_error e;
        vlm_api_fail(&e, 500, NULL, "out of memory");
        vlm_srv_error(resp, &e);
        return;
    }
    resp->status = status;
    resp->body = vlm_strdup(s);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    free(s);
}

int vlm_srv_model_ok(const struct vlm_server *s, const char *name) {
    if (!name) return 1;
    if (!strcmp(name, s->model_name)) return 1;
    for (int i = 0; i < s->cfg.n_served_names; i++)
        if (!strcmp(name, s->cfg.served_names[i])) return 1;
    return 0;
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

static void route(void *app, const struct vlm_http_request *req, struct vlm_http_response *resp) {
    struct vlm_server *s = app;
    struct vlm_api_error e;
    const char *p = req->path;
    double t0 = vlm_srv_now();
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (!strncmp(p, "/v1/", 4) && !auth_ok(s, req->authorization)) {
        vlm_api_fail(&e, 401, NULL, "Unauthorized");
        vlm_srv_error(resp, &e);
    } else if (!strcmp(p, "/health") && get) {
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
    } else if (!strcmp(p, "/health") || !strcmp(p, "/version") || !strcmp(p, "/v1/models") ||
               !strcmp(p, "/metrics") || !strcmp(p, "/v1/chat/completions") ||
               !strcmp(p, "/v1/completions") || !strcmp(p, "/tokenize") || !strcmp(p, "/detokenize")) {
        vlm_api_fail(&e, 405, NULL, "Method Not Allowed");
        vlm_srv_error(resp, &e);
    } else {
        vlm_api_fail(&e, 404, NULL, "Not Found");
        vlm_srv_error(resp, &e);
    }
    vlm_metrics_http(s->metrics, resp->status ? resp->status : 200);
    /* access log (VLM_LOG=info); a stream's time is until its headers, not its end */
    VLM_LOGI("%s %s %d %.1f ms%s", req->method, p, resp->status ? resp->status : 200,
             (vlm_srv_now() - t0) * 1e3, resp->stream ? " (stream)" : "");
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
    if (rc == VLM_OK && vlm_model_load(c->model_dir, &mp, &s->model) != VLM_OK)
        rc = vlm_error_set(err, VLM_E_IO, "%s", vlm_last_error());
    if (rc == VLM_OK) {
        s->info = vlm_model_get_info(s->model);
        s->tok = vlm_model_tokenizer(s->model);
        if (!s->tok) rc = vlm_error_set(err, VLM_E_NOT_FOUND, "the model folder has no tokenizer");
    }
    if (rc == VLM_OK) rc = load_template(s, err);
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
        struct vlm_http_config hc = {c->host, c->port, c->max_body, 512, 60};   /* 60 s idle: slow senders cannot hold threads */
        rc = vlm_http_start(&hc, route, s, &s->http, err);
    }
    if (rc != VLM_OK) {
        vlm_server_stop(s);
        return rc;
    }
    *out = s;
    return VLM_OK;
}

int vlm_server_port(const struct vlm_server *s) { return vlm_http_port(s->http); }

void vlm_server_stop(struct vlm_server *s) {
    if (!s) return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_SEQ_CST);
    vlm_http_stop(s->http);      /* first: no handler runs after this (they see stopping) */
    vlm_sched_free(s->sched);
    vlm_image_cache_free(s->cache);
    vlm_metrics_free(s->metrics);
    vlm_template_free(s->template_override);
    vlm_model_free(s->model);
    vlm_free(s->model_name);
    vlm_free(s);
}
