/* openai.c — request JSON -> validated struct vlm_api_request, with vLLM's messages and
 * status codes; chat content converted to the "openai" content format vLLM gives templates
 * (text parts and {"type":"image"} placeholders, in order). */
#include "server/openai.h"

#include "util/alloc.h"
#include "util/error.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void vlm_api_limits_default(struct vlm_api_limits *l) {
    memset(l, 0, sizeof *l);
    l->max_images = 999;
    l->max_n = 16;
    l->max_logprobs = 20;
    l->max_stop = 32;
    l->max_stop_len = 1024;
    l->max_logit_bias = 1024;
    l->max_prompt_bytes = 4u << 20;
    l->max_parts = 4096;
    l->max_depth = 64;
    l->max_model_len = 0;
    l->vocab_size = 0;
}

int vlm_api_fail(struct vlm_api_error *e, int status, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    return -1;
}

const char *vlm_api_error_type(int status) {
    switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowed";
    case 413: return "RequestEntityTooLarge";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
    }
}

char *vlm_api_error_body(const struct vlm_api_error *e) {
    json_t *o = json_pack("{s:{s:s, s:s, s:o, s:i}}", "error", "message", e->message,
                          "type", vlm_api_error_type(e->status),
                          "param", e->param[0] ? json_string(e->param) : json_null(),
                          "code", e->status);
    if (!o) return NULL;
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s) return NULL;
    char *r = vlm_strdup(s);
    free(s);
    return r;
}

int vlm_api_status_for(int code) {
    switch (code) {
    case VLM_OK: return 200;
    case VLM_E_TOO_LARGE: return 413;
    case VLM_E_FETCH: return 400;      /* bad media, as vLLM and RELIABILITY.md item 5 */
    case VLM_E_NOMEM: case VLM_E_INTERNAL: return 500;
    case VLM_E_CANCELLED: return 499;
    default: return 400;
    }
}

void vlm_api_request_free(struct vlm_api_request *r) {
    if (!r) return;
    json_decref(r->messages);
    json_decref(r->root);
    vlm_free(r->prompt_ids);
    vlm_free(r->images);
    vlm_free(r->stop);
    vlm_free(r->stop_token_ids);
    vlm_free(r->bias_ids);
    vlm_free(r->bias_values);
    memset(r, 0, sizeof *r);
}

/* Nesting depth of JSON text, counted outside strings, before the parser recurses. */
static int json_depth_ok(const char *s, size_t n, int max) {
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '[' || c == '{') { if (++depth > max) return 0; }
        else if (c == ']' || c == '}') depth--;
    }
    return 1;
}

/* ---- typed field access: null counts as absent ---- */

static json_t *field(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_null(v) ? NULL : v;
}

static int get_bool(json_t *o, const char *k, int *out, struct vlm_api_error *e) {
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_boolean(v)) return vlm_api_fail(e, 400, k, "%s: Input should be a valid boolean", k);
    *out = json_is_true(v);
    return 0;
}

static int get_num(json_t *o, const char *k, double *out, struct vlm_api_error *e) {
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_number(v)) return vlm_api_fail(e, 400, k, "%s: Input should be a valid number", k);
    double d = json_number_value(v);
    if (!isfinite(d)) return vlm_api_fail(e, 400, k, "%s: Input should be a finite number", k);
    *out = d;
    return 0;
}

static int get_int(json_t *o, const char *k, long long *out, struct vlm_api_error *e) {
    json_t *v = field(o, k);
    if (!v) return 0;
    if (json_is_integer(v)) { *out = json_integer_value(v); return 0; }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (isfinite(d) && d == floor(d) && fabs(d) < 9e15) { *out = (long long)d; return 0; }
    }
    return vlm_api_fail(e, 400, k, "%s: Input should be a valid integer", k);
}

static int get_str(json_t *o, const char *k, const char **out, struct vlm_api_error *e) {
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_string(v)) return vlm_api_fail(e, 400, k, "%s: Input should be a valid string", k);
    *out = json_string_value(v);
    return 0;
}

static int get_obj(json_t *o, const char *k, json_t **out, struct vlm_api_error *e) {
    json_t *v = field(o, k);
    if (!v) return 0;
    if (!json_is_object(v)) return vlm_api_fail(e, 400, k, "%s: Input should be a valid dictionary", k);
    *out = v;
    return 0;
}

/* ---- chat messages ---- */

static int add_image(struct vlm_api_request *r, json_t *part, const struct vlm_api_limits *lim,
                     struct vlm_api_error *e) {
    json_t *iu = json_object_get(part, "image_url");
    const char *url = NULL;
    size_t url_len = 0;
    if (json_is_string(iu)) {
        url = json_string_value(iu);
        url_len = json_string_length(iu);
    } else if (json_is_object(iu) && json_is_string(json_object_get(iu, "url"))) {
        url = json_string_value(json_object_get(iu, "url"));
        url_len = json_string_length(json_object_get(iu, "url"));
        json_t *d = field(iu, "detail");
        if (d && !json_is_string(d))
            return vlm_api_fail(e, 400, "messages", "image_url.detail: Input should be a valid string");
    } else {
        return vlm_api_fail(e, 400, "messages", "image_url: Input should have a string field 'url'");
    }
    if ((long)r->n_images >= (long)lim->max_images)
        return vlm_api_fail(e, 400, "messages", "At most %d image(s) may be provided in one prompt.",
                            lim->max_images);
    struct vlm_api_image *im = vlm_realloc(r->images, (r->n_images + 1) * sizeof *im);
    if (!im) return vlm_api_fail(e, 500, NULL, "out of memory");
    r->images = im;
    im += r->n_images++;
    im->url = url;
    im->url_len = url_len;
    im->uuid = NULL;
    json_t *uuid = field(part, "uuid");
    if (!uuid && json_is_object(iu)) uuid = field(iu, "uuid");
    if (uuid) {
        if (!json_is_string(uuid)) return vlm_api_fail(e, 400, "messages", "uuid: Input should be a valid string");
        im->uuid = json_string_value(uuid);
    }
    return 0;
}

static json_t *text_part(const char *s, size_t n) {
    return json_pack("{s:s, s:s%}", "type", "text", "text", s, n);
}

/* Content (string, list of parts or null) -> list of template parts. */
static int convert_content(struct vlm_api_request *r, json_t *content, json_t *out,
                           const struct vlm_api_limits *lim, size_t *text_bytes, size_t *n_parts,
                           struct vlm_api_error *e) {
    if (!content) return 0;
    if (json_is_string(content)) {
        *text_bytes += json_string_length(content);
        (*n_parts)++;
        return json_array_append_new(out, text_part(json_string_value(content), json_string_length(content)))
            ? vlm_api_fail(e, 500, NULL, "out of memory") : 0;
    }
    if (!json_is_array(content))
        return vlm_api_fail(e, 400, "messages", "content: Input should be a valid string or list of parts");
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part) {
        if (++*n_parts > lim->max_parts)
            return vlm_api_fail(e, 400, "messages", "too many content parts (at most %zu)", lim->max_parts);
        const char *type = json_string_value(json_object_get(part, "type"));
        if (!json_is_object(part) || !type)
            return vlm_api_fail(e, 400, "messages", "each content part must be an object with a 'type'");
        json_t *np = NULL;
        if (!strcmp(type, "text")) {
            json_t *t = json_object_get(part, "text");
            if (!json_is_string(t))
                return vlm_api_fail(e, 400, "messages", "text part: Input should have a string field 'text'");
            *text_bytes += json_string_length(t);
            np = text_part(json_string_value(t), json_string_length(t));
        } else if (!strcmp(type, "image_url")) {
            if (add_image(r, part, lim, e)) return -1;
            np = json_pack("{s:s}", "type", "image");
        } else if (!strcmp(type, "input_audio") || !strcmp(type, "audio_url") ||
                   !strcmp(type, "video_url") || !strcmp(type, "file") || !strcmp(type, "image_embeds")) {
            return vlm_api_fail(e, 400, "messages", "Content part type '%.40s' is not supported by this model.", type);
        } else {
            return vlm_api_fail(e, 400, "messages", "Unknown part type: %.40s", type);
        }
        if (json_array_append_new(out, np)) return vlm_api_fail(e, 500, NULL, "out of memory");
    }
    return 0;
}

static int convert_messages(struct vlm_api_request *r, json_t *msgs, const struct vlm_api_limits *lim,
                            struct vlm_api_error *e) {
    if (!json_is_array(msgs))
        return vlm_api_fail(e, 400, "messages", "messages: Input should be a valid list");
    if (json_array_size(msgs) == 0)
        return vlm_api_fail(e, 400, "messages", "messages: List should have at least 1 item");
    r->messages = json_array();
    if (!r->messages) return vlm_api_fail(e, 500, NULL, "out of memory");
    size_t i, text_bytes = 0, n_parts = 0;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        if (!json_is_object(m) || !json_is_string(json_object_get(m, "role")))
            return vlm_api_fail(e, 400, "messages", "each message must be an object with a string 'role'");
        json_t *copy = json_copy(m), *parts = json_array();
        if (!copy || !parts || json_array_append_new(r->messages, copy)) {
            json_decref(parts);
            return vlm_api_fail(e, 500, NULL, "out of memory");
        }
        if (json_object_set_new(copy, "content", parts)) return vlm_api_fail(e, 500, NULL, "out of memory");
        if (convert_content(r, field(m, "content"), parts, lim, &text_bytes, &n_parts, e)) return -1;
        if (text_bytes > lim->max_prompt_bytes)
            return vlm_api_fail(e, 400, "messages", "The prompt is too long (more than %zu bytes of text).",
                                lim->max_prompt_bytes);
    }
    return 0;
}

/* ---- token id lists ---- */

static int get_ids(json_t *arr, const char *k, const struct vlm_api_limits *lim, int32_t **ids,
                   size_t *n, size_t max_n, struct vlm_api_error *e) {
    if (!json_is_array(arr)) return vlm_api_fail(e, 400, k, "%s: Input should be a valid list", k);
    size_t cnt = json_array_size(arr);
    if (cnt > max_n) return vlm_api_fail(e, 400, k, "%s: too many token ids (at most %zu)", k, max_n);
    *ids = vlm_malloc((cnt ? cnt : 1) * sizeof **ids);
    if (!*ids) return vlm_api_fail(e, 500, NULL, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v)) return vlm_api_fail(e, 400, k, "%s: token ids should be integers", k);
        json_int_t t = json_integer_value(v);
        if (t < 0 || (lim->vocab_size > 0 && t >= lim->vocab_size) || t > INT32_MAX)
            return vlm_api_fail(e, 400, k, "Token id %" JSON_INTEGER_FORMAT " is out of vocabulary", t);
        (*ids)[i] = (int32_t)t;
    }
    *n = cnt;
    return 0;
}

/* ---- sampling ---- */

static int parse_stop(struct vlm_api_request *r, const struct vlm_api_limits *lim, struct vlm_api_error *e) {
    json_t *s = field(r->root, "stop");
    if (!s) return 0;
    size_t cnt = json_is_string(s) ? 1 : json_is_array(s) ? json_array_size(s) : (size_t)-1;
    if (cnt == (size_t)-1) return vlm_api_fail(e, 400, "stop", "stop: Input should be a valid string or list of strings");
    if (cnt > lim->max_stop) return vlm_api_fail(e, 400, "stop", "stop: at most %zu stop strings are allowed", lim->max_stop);
    r->stop = vlm_calloc(cnt ? cnt : 1, sizeof *r->stop);
    if (!r->stop) return vlm_api_fail(e, 500, NULL, "out of memory");
    for (size_t i = 0; i < cnt; i++) {
        json_t *v = json_is_string(s) ? s : json_array_get(s, i);
        if (!json_is_string(v)) return vlm_api_fail(e, 400, "stop", "stop: Input should be a valid string");
        if (json_string_length(v) == 0) return vlm_api_fail(e, 400, "stop", "stop cannot contain an empty string.");
        if (json_string_length(v) > lim->max_stop_len || strlen(json_string_value(v)) != json_string_length(v))
            return vlm_api_fail(e, 400, "stop", "stop: each stop string must be at most %zu bytes", lim->max_stop_len);
        r->stop[i] = (char *)json_string_value(v);
    }
    r->n_stop = cnt;
    return 0;
}

static int parse_logit_bias(struct vlm_api_request *r, const struct vlm_api_limits *lim, struct vlm_api_error *e) {
    json_t *b = NULL;
    if (get_obj(r->root, "logit_bias", &b, e)) return -1;
    if (!b) return 0;
    size_t cnt = json_object_size(b);
    if (cnt > lim->max_logit_bias)
        return vlm_api_fail(e, 400, "logit_bias", "logit_bias: at most %zu entries are allowed", lim->max_logit_bias);
    r->bias_ids = vlm_malloc((cnt ? cnt : 1) * sizeof *r->bias_ids);
    r->bias_values = vlm_malloc((cnt ? cnt : 1) * sizeof *r->bias_values);
    if (!r->bias_ids || !r->bias_values) return vlm_api_fail(e, 500, NULL, "out of memory");
    const char *key;
    json_t *v;
    json_object_foreach(b, key, v) {
        char *end;
        long long id = strtoll(key, &end, 10);
        if (!*key || *end || id < 0 || id > INT32_MAX)
            return vlm_api_fail(e, 400, "logit_bias", "logit_bias: keys must be token ids");
        if (lim->vocab_size > 0 && id >= lim->vocab_size)
            return vlm_api_fail(e, 400, "logit_bias",
                                "token_id(s) [%lld] in logit_bias contain out-of-vocab token ids. Vocabulary size: %d",
                                id, lim->vocab_size);
        if (!json_is_number(v)) return vlm_api_fail(e, 400, "logit_bias", "logit_bias: values must be numbers");
        double d = json_number_value(v);
        if (!isfinite(d)) return vlm_api_fail(e, 400, "logit_bias", "logit_bias: values must be finite");
        r->bias_ids[r->n_bias] = (int32_t)id;
        r->bias_values[r->n_bias++] = (float)(d < -100 ? -100 : d > 100 ? 100 : d);   /* vLLM clamps */
    }
    return 0;
}

static int parse_sampling(struct vlm_api_request *r, const struct vlm_api_limits *lim, struct vlm_api_error *e) {
    json_t *o = r->root;
    long long n = 1, max_tokens = -1, mct = -1, min_tokens = 0, top_k = -2, seed = 0;
    double t = -1, top_p = -1, min_p = 0, pp = 0, fp = 0, rp = 1;
    if (get_int(o, "n", &n, e) || get_num(o, "temperature", &t, e) || get_num(o, "top_p", &top_p, e) ||
        get_int(o, "top_k", &top_k, e) || get_num(o, "min_p", &min_p, e) ||
        get_num(o, "presence_penalty", &pp, e) || get_num(o, "frequency_penalty", &fp, e) ||
        get_num(o, "repetition_penalty", &rp, e) || get_int(o, "max_tokens", &max_tokens, e) ||
        get_int(o, "max_completion_tokens", &mct, e) || get_int(o, "min_tokens", &min_tokens, e) ||
        get_int(o, "seed", &seed, e))
        return -1;
    if (n < 1) return vlm_api_fail(e, 400, "n", "n must be at least 1, got %lld.", n);
    if (n > lim->max_n) return vlm_api_fail(e, 400, "n", "n must be at most %d, got %lld.", lim->max_n, n);
    if (field(o, "temperature") && t < 0)
        return vlm_api_fail(e, 400, "temperature", "temperature must be non-negative, got %g.", t);
    if (field(o, "top_p") && !(top_p > 0 && top_p <= 1))
        return vlm_api_fail(e, 400, "top_p", "top_p must be in (0, 1], got %g.", top_p);
    if (top_k < -1 && field(o, "top_k"))
        return vlm_api_fail(e, 400, "top_k", "top_k must be 0 (disable), or at least 1, got %lld.", top_k);
    if (top_k > INT32_MAX) top_k = 0;   /* past any vocabulary: the same as disabled */
    if (min_p < 0 || min_p > 1) return vlm_api_fail(e, 400, "min_p", "min_p must be in [0, 1], got %g.", min_p);
    if (pp < -2 || pp > 2)
        return vlm_api_fail(e, 400, "presence_penalty", "presence_penalty must be in [-2, 2], got %g.", pp);
    if (fp < -2 || fp > 2)
        return vlm_api_fail(e, 400, "frequency_penalty", "frequency_penalty must be in [-2, 2], got %g.", fp);
    if (rp <= 0 || rp > 100)
        return vlm_api_fail(e, 400, "repetition_penalty", "repetition_penalty must be in (0, 100], got %g.", rp);
    if (mct != -1 || field(o, "max_completion_tokens")) max_tokens = mct;
    if ((field(o, "max_tokens") || field(o, "max_completion_tokens")) && max_tokens < 1)
        return vlm_api_fail(e, 400, "max_tokens", "max_tokens must be at least 1, got %lld.", max_tokens);
    if (min_tokens < 0) return vlm_api_fail(e, 400, "min_tokens", "min_tokens must be greater than or equal to 0, got %lld.", min_tokens);
    if (max_tokens > 0 && min_tokens > max_tokens)
        return vlm_api_fail(e, 400, "min_tokens", "min_tokens must be less than or equal to max_tokens=%lld, got %lld.",
                            max_tokens, min_tokens);
    r->n = (int)n;
    r->temperature = t;
    r->top_p = top_p;
    r->top_k = (int)top_k;
    r->min_p = min_p;
    r->presence_penalty = pp;
    r->frequency_penalty = fp;
    r->repetition_penalty = rp;
    r->max_tokens = max_tokens > 0 ? (long)(max_tokens > 1L << 40 ? 1L << 40 : max_tokens) : -1;
    r->min_tokens = (long)min_tokens;
    r->has_seed = field(o, "seed") != NULL;
    r->seed = seed;
    json_t *sti = field(o, "stop_token_ids");
    if (sti && get_ids(sti, "stop_token_ids", lim, &r->stop_token_ids, &r->n_stop_token_ids, lim->max_stop, e))
        return -1;
    return parse_stop(r, lim, e) || parse_logit_bias(r, lim, e) ? -1 : 0;
}

static int parse_logprobs(struct vlm_api_request *r, const struct vlm_api_limits *lim, struct vlm_api_error *e) {
    json_t *o = r->root;
    long long top = 0;
    if (r->kind == VLM_API_CHAT) {
        int lp = 0;
        if (get_bool(o, "logprobs", &lp, e) || get_int(o, "top_logprobs", &top, e)) return -1;
        if (field(o, "top_logprobs")) {
            if (top < 0) return vlm_api_fail(e, 400, "top_logprobs", "`top_logprobs` must be a positive value.");
            if (top > lim->max_logprobs)
                return vlm_api_fail(e, 400, "top_logprobs",
                                    "Requested sample logprobs of %lld, which is greater than max allowed: %d", top,
                                    lim->max_logprobs);
            if (!lp) return vlm_api_fail(e, 400, "top_logprobs", "when using `top_logprobs`, `logprobs` must be set to true.");
        }
        r->logprobs = lp;
        r->top_logprobs = (int)top;
    } else {
        long long lp = -1;
        if (get_int(o, "logprobs", &lp, e)) return -1;
        if (field(o, "logprobs")) {
            if (lp < 0) return vlm_api_fail(e, 400, "logprobs", "`logprobs` must be a positive value.");
            if (lp > lim->max_logprobs)
                return vlm_api_fail(e, 400, "logprobs",
                                    "Requested sample logprobs of %lld, which is greater than max allowed: %d", lp,
                                    lim->max_logprobs);
        }
        r->logprobs = (int)lp;
        r->top_logprobs = lp > 0 ? (int)lp : 0;
    }
    return 0;
}

/* Fields that ask for something this server does not do are refused out loud (never a 200 with
 * free text): structured outputs and tool calling. A no-op value ("text", tool_choice "none",
 * an empty or null field) is accepted. */
static int refuse_unsupported(json_t *o, struct vlm_api_error *e) {
    static const char *const guided[] = {"guided_json", "guided_regex", "guided_choice", "guided_grammar",
                                         "structured_outputs", "functions", "function_call"};
    for (size_t i = 0; i < sizeof guided / sizeof guided[0]; i++) {
        json_t *v = field(o, guided[i]);
        if (v && !json_is_null(v))
            return vlm_api_fail(e, 400, guided[i], "`%s` is not supported by this server (structured outputs and "
                                "tool calling are not implemented).", guided[i]);
    }
    json_t *rf = field(o, "response_format");
    if (rf && !json_is_null(rf)) {
        const char *t = json_string_value(json_object_get(rf, "type"));
        if (!json_is_object(rf) || !t)
            return vlm_api_fail(e, 400, "response_format", "`response_format` must be an object with a `type`.");
        if (strcmp(t, "text"))
            return vlm_api_fail(e, 400, "response_format", "`response_format` of type `%.40s` is not supported by this "
                                "server (structured outputs are not implemented); only `text` is.", t);
    }
    json_t *tools = field(o, "tools"), *tc = field(o, "tool_choice");
    int none = json_is_string(tc) && !strcmp(json_string_value(tc), "none");
    if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0) && !none)
        return vlm_api_fail(e, 400, "tools", "`tools` are not supported by this server (tool calling is not "
                            "implemented); send no tools or `tool_choice: \"none\"`.");
    if (tc && !json_is_null(tc) && !json_is_string(tc))
        return vlm_api_fail(e, 400, "tool_choice", "`tool_choice` naming a tool is not supported by this server.");
    return 0;
}

static int parse_flags(struct vlm_api_request *r, const struct vlm_api_limits *lim, struct vlm_api_error *e) {
    json_t *o = r->root, *so = NULL;
    if (refuse_unsupported(o, e)) return -1;
    r->skip_special_tokens = 1;
    r->add_generation_prompt = 1;
    r->add_special_tokens = r->kind == VLM_API_COMPLETION;
    if (get_bool(o, "stream", &r->stream, e) || get_obj(o, "stream_options", &so, e) ||
        get_bool(o, "echo", &r->echo, e) || get_bool(o, "ignore_eos", &r->ignore_eos, e) ||
        get_bool(o, "skip_special_tokens", &r->skip_special_tokens, e) ||
        get_bool(o, "include_stop_str_in_output", &r->include_stop_str_in_output, e) ||
        get_bool(o, "add_generation_prompt", &r->add_generation_prompt, e) ||
        get_bool(o, "continue_final_message", &r->continue_final_message, e) ||
        get_bool(o, "add_special_tokens", &r->add_special_tokens, e) ||
        get_obj(o, "chat_template_kwargs", &r->chat_template_kwargs, e) ||
        get_obj(o, "mm_processor_kwargs", &r->mm_processor_kwargs, e) ||
        get_str(o, "chat_template", &r->chat_template, e) || get_str(o, "model", &r->model, e))
        return -1;
    if (so) {
        if (!r->stream) return vlm_api_fail(e, 400, "stream_options", "Stream options can only be defined when `stream=True`.");
        if (get_bool(so, "include_usage", &r->include_usage, e) ||
            get_bool(so, "continuous_usage_stats", &r->continuous_usage_stats, e))
            return -1;
    }
    if (r->continue_final_message && r->add_generation_prompt && field(o, "add_generation_prompt"))
        return vlm_api_fail(e, 400, NULL, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.");
    if (r->continue_final_message) r->add_generation_prompt = 0;
    int untrusted = r->chat_template ||
                    (r->chat_template_kwargs && field(r->chat_template_kwargs, "chat_template"));
    if (untrusted && !lim->trust_request_chat_template)
        return vlm_api_fail(e, 400, "chat_template",
                            "Chat template is passed with request, but --trust-request-chat-template is not set. "
                            "Refused request with untrusted chat template.");
    if (!r->chat_template && r->chat_template_kwargs)
        r->chat_template = json_string_value(field(r->chat_template_kwargs, "chat_template"));
    return 0;
}

static int parse_prompt(struct vlm_api_request *r, const struct vlm_api_limits *lim, struct vlm_api_error *e) {
    json_t *p = field(r->root, "prompt");
    if (!p) return vlm_api_fail(e, 400, "prompt", "prompt: Field required");
    if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
        p = json_array_get(p, 0);               /* a batch of one */
    if (json_is_string(p)) {
        r->prompt = json_string_value(p);
        r->prompt_len = json_string_length(p);
        if (r->prompt_len > lim->max_prompt_bytes)
            return vlm_api_fail(e, 400, "prompt", "The prompt is too long (more than %zu bytes of text).",
                                lim->max_prompt_bytes);
        if (r->kind == VLM_API_COMPLETION && r->prompt_len == 0)
            return vlm_api_fail(e, 400, "prompt", "Prompt cannot be empty");
        return 0;
    }
    if (json_is_array(p) && json_array_size(p) > 1 && !json_is_integer(json_array_get(p, 0)))
        return vlm_api_fail(e, 400, "prompt", "Batched prompts are not supported; send one prompt per request.");
    if (json_is_array(p)) {
        if (json_array_size(p) == 0) return vlm_api_fail(e, 400, "prompt", "Prompt cannot be empty");
        size_t max = lim->max_model_len > 0 ? (size_t)lim->max_model_len : lim->max_prompt_bytes;
        return get_ids(p, "prompt", lim, &r->prompt_ids, &r->n_prompt_ids, max, e);
    }
    return vlm_api_fail(e, 400, "prompt", "prompt: Input should be a valid string or list of token ids");
}

int vlm_api_parse(enum vlm_api_kind kind, const char *body, size_t len,
                  const struct vlm_api_limits *lim, struct vlm_api_request *r,
                  struct vlm_api_error *e) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    if (!json_depth_ok(body, len, lim->max_depth))
        return vlm_api_fail(e, 400, NULL, "The request body is nested too deeply (more than %d levels).",
                            lim->max_depth);
    json_error_t je;
    r->root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!r->root) {
        /* jansson's text names the problem (duplicate key, overflow) but may quote input:
           report the position and a generic reason only */
        const char *why = strstr(je.text, "duplicate") ? "duplicate object key"
                        : strstr(je.text, "overflow") || strstr(je.text, "too big") ? "number out of range"
                        : "invalid JSON";
        return vlm_api_fail(e, 400, NULL, "Invalid request body: %s at line %d, column %d.", why, je.line,
                            je.column);
    }
    if (!json_is_object(r->root)) {
        vlm_api_request_free(r);
        return vlm_api_fail(e, 400, NULL, "Invalid request body: expected a JSON object.");
    }
    int rc = 0;
    switch (kind) {
    case VLM_API_CHAT:
        if (!field(r->root, "messages")) rc = vlm_api_fail(e, 400, "messages", "messages: Field required");
        else rc = parse_flags(r, lim, e) || parse_sampling(r, lim, e) || parse_logprobs(r, lim, e) ||
                  convert_messages(r, field(r->root, "messages"), lim, e);
        break;
    case VLM_API_COMPLETION:
        rc = parse_flags(r, lim, e) || parse_sampling(r, lim, e) || parse_logprobs(r, lim, e) ||
             parse_prompt(r, lim, e);
        break;
    case VLM_API_TOKENIZE:
        rc = parse_flags(r, lim, e);
        if (!rc && field(r->root, "messages")) {
            r->add_special_tokens = 0;
            rc = get_bool(r->root, "add_special_tokens", &r->add_special_tokens, e) ||
                 convert_messages(r, field(r->root, "messages"), lim, e);
        } else if (!rc) {
            r->add_special_tokens = 1;
            rc = get_bool(r->root, "add_special_tokens", &r->add_special_tokens, e) || parse_prompt(r, lim, e);
        }
        break;
    case VLM_API_DETOKENIZE: {
        json_t *t = field(r->root, "tokens");
        rc = get_str(r->root, "model", &r->model, e);
        if (!rc && !t) rc = vlm_api_fail(e, 400, "tokens", "tokens: Field required");
        if (!rc) rc = get_ids(t, "tokens", lim, &r->prompt_ids, &r->n_prompt_ids, lim->max_prompt_bytes, e);
        break;
    }
    }
    if (rc) {
        vlm_api_request_free(r);
        return -1;
    }
    return 0;
}
