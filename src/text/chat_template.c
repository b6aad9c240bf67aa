/* chat_template.c — the public face of the template engine: parse, render with limits,
 * find a model folder's template and build the context the way transformers'
 * apply_chat_template does (special tokens, normalised messages, tools/documents). */
#include "text/chat_template.h"
#include "text/jinja.h"
#include "util/file.h"

#include <string.h>
#include <time.h>

#define TEMPLATE_MAX_SOURCE (4u << 20)    /* 4 MiB of template text */
#define CONFIG_MAX_BYTES   (64u << 20)

struct vlm_template_limits vlm_template_default_limits(void) {
    struct vlm_template_limits l = {
        .max_depth = 64,
        .max_steps = 5000000,
        .max_output = 32u << 20,
        .max_memory = 512u << 20,
        .max_millis = 10000,
    };
    return l;
}

int vlm_template_parse(const char *src, size_t len, struct vlm_template **out, struct vlm_error *err) {
    *out = NULL;
    if (!src && len) return vlm_error_set(err, VLM_E_INVALID, "template: NULL source");
    if (len > TEMPLATE_MAX_SOURCE)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "template: %zu bytes is past the %u-byte cap", len, TEMPLATE_MAX_SOURCE);
    struct vlm_template *t = vlm_calloc(1, sizeof *t);
    if (!t) return vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
    struct jtoks toks = {0};
    int rc = jinja_lex(src ? src : "", len, &t->arena, &toks, err);
    if (!rc) rc = jinja_parse(&toks, &t->arena, &t->body, err);
    if (!rc && jinja_root_stores(&t->body, &t->arena, &t->root_stores, &t->n_root_stores))
        rc = vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
    if (!rc && !(t->src = ja_strndup(&t->arena, src ? src : "", len))) rc = vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
    t->src_len = len;
    if (!rc && t->arena.failed) rc = vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
    vlm_free(toks.v);
    if (rc) { vlm_template_free(t); return rc; }
    *out = t;
    return VLM_OK;
}

void vlm_template_free(struct vlm_template *t) {
    if (!t) return;
    ja_free(&t->arena);
    vlm_free(t);
}

int vlm_template_render(const struct vlm_template *t, json_t *context, const struct vlm_template_limits *limits,
                        char **out, size_t *len, struct vlm_error *err) {
    *out = NULL;
    if (len) *len = 0;
    if (!t) return vlm_error_set(err, VLM_E_INVALID, "template: NULL template");
    if (context && !json_is_object(context)) return vlm_error_set(err, VLM_E_INVALID, "template: context must be an object");
    struct vlm_template_limits lim = limits ? *limits : vlm_template_default_limits();
    struct vlm_template_limits dl = vlm_template_default_limits();
    if (lim.max_depth <= 0) lim.max_depth = dl.max_depth;
    if (lim.max_steps <= 0) lim.max_steps = dl.max_steps;
    if (lim.max_output == 0) lim.max_output = dl.max_output;
    if (lim.max_memory == 0) lim.max_memory = dl.max_memory;
    struct jarena arena = {.cap = lim.max_memory};
    struct vlm_buf buf = {.max = lim.max_output};
    struct vlm_error local;
    if (!err) err = &local;
    vlm_error_clear(err);
    struct jstate st = {.arena = &arena, .lim = lim, .out = &buf, .err = err};
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    st.t0_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    st.hole = jv_none();
    struct jframe *root = ja_alloc(&arena, sizeof *root);
    if (!root) { ja_free(&arena); return vlm_error_set(err, VLM_E_NOMEM, "template: out of memory"); }
    root->vars = context ? jv_from_json(&st, context, 0) : jv_dict(&st, 4);
    for (int i = 0; i < t->n_root_stores && !JSTOP(&st); i++) jv_dict_del(root->vars, t->root_stores[i]);
    st.frame = root;
    if (!JSTOP(&st)) jexec_list(&st, &t->body);
    int rc = st.rc;
    if (rc == VLM_OK) {
        size_t n = buf.len;
        *out = buf.data ? vlm_buf_take(&buf) : vlm_strdup("");
        if (!*out) rc = vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
        if (len) *len = n;
    }
    vlm_buf_free(&buf);
    ja_free(&arena);
    return rc;
}

/* ---- finding the template ---- */
static int read_json(const char *dir, const char *name, json_t **out, struct vlm_error *err) {
    *out = NULL;
    char *path = vlm_path_join(dir, name);
    if (!path) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (!vlm_file_exists(path)) { vlm_free(path); return VLM_E_NOT_FOUND; }
    char *data;
    size_t n;
    int rc = vlm_read_file(path, CONFIG_MAX_BYTES, &data, &n, err);
    if (rc) { vlm_free(path); return rc; }
    json_error_t je;
    *out = json_loadb(data, n, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &je);   /* model_max_length can be 1e30 */
    vlm_free(data);
    if (!*out) rc = vlm_error_set(err, VLM_E_FORMAT, "%s: line %d: %s", path, je.line, je.text);
    vlm_free(path);
    return rc;
}

static int dup_out(const char *s, size_t n, char **src, size_t *len, struct vlm_error *err) {
    *src = vlm_strndup(s, n);
    if (!*src) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (len) *len = n;
    return VLM_OK;
}

/* tokenizer_config "chat_template": a string, or a list of {name, template} ("default" wins). */
static int template_from_value(json_t *v, const char *file, char **src, size_t *len, struct vlm_error *err) {
    if (json_is_string(v)) return dup_out(json_string_value(v), json_string_length(v), src, len, err);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            json_t *nm = json_object_get(e, "name"), *tp = json_object_get(e, "template");
            if (json_is_string(nm) && json_is_string(tp) && !strcmp(json_string_value(nm), "default"))
                return dup_out(json_string_value(tp), json_string_length(tp), src, len, err);
        }
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: several chat templates and none named \"default\"", file);
    }
    return vlm_error_set(err, VLM_E_FORMAT, "%s: \"chat_template\" is neither a string nor a list", file);
}

int vlm_chat_template_find(const char *dir, char **src, size_t *len, struct vlm_error *err) {
    *src = NULL;
    if (len) *len = 0;
    char *path = vlm_path_join(dir, "chat_template.jinja");
    if (!path) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (vlm_file_exists(path)) {
        size_t n;
        int rc = vlm_read_file(path, TEMPLATE_MAX_SOURCE, src, &n, err);
        vlm_free(path);
        if (!rc && len) *len = n;
        return rc;
    }
    vlm_free(path);
    static const char *const files[] = {"chat_template.json", "tokenizer_config.json"};
    for (int i = 0; i < 2; i++) {
        json_t *j;
        int rc = read_json(dir, files[i], &j, err);
        if (rc == VLM_E_NOT_FOUND) continue;
        if (rc) return rc;
        json_t *v = json_object_get(j, "chat_template");
        if (v && !json_is_null(v)) {
            rc = template_from_value(v, files[i], src, len, err);
            json_decref(j);
            return rc;
        }
        json_decref(j);
    }
    return vlm_error_set(err, VLM_E_NOT_FOUND,
                         "%s: no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json)", dir);
}

/* ---- the context transformers builds ---- */
static const char *token_text(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v) && json_is_string(json_object_get(v, "content"))) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

static size_t suffix_is(const char *k, const char *suf) {
    size_t a = strlen(k), b = strlen(suf);
    return a >= b && !strcmp(k + a - b, suf);
}

static int add_tokens_from(json_t *cfg, json_t *out) {
    const char *k;
    json_t *v;
    json_object_foreach(cfg, k, v) {
        const char *t = token_text(v);
        if (suffix_is(k, "_token") && t && json_object_set_new(out, k, json_string(t))) return VLM_E_NOMEM;
    }
    json_t *extra = json_object_get(cfg, "extra_special_tokens");
    if (json_is_object(extra)) {
        json_object_foreach(extra, k, v) {
            const char *t = token_text(v);
            if (t && json_object_set_new(out, k, json_string(t))) return VLM_E_NOMEM;
        }
    }
    return VLM_OK;
}

int vlm_chat_template_special_tokens(const char *dir, json_t **out, struct vlm_error *err) {
    *out = json_object();
    if (!*out) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    json_t *cfg = NULL, *map = NULL;
    int rc = read_json(dir, "tokenizer_config.json", &cfg, err);
    if (rc && rc != VLM_E_NOT_FOUND) goto fail;
    rc = VLM_OK;
    if (cfg && add_tokens_from(cfg, *out)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    /* special_tokens_map.json only counts where tokenizer_config has no added_tokens_decoder */
    if (!rc && (!cfg || !json_object_get(cfg, "added_tokens_decoder"))) {
        rc = read_json(dir, "special_tokens_map.json", &map, err);
        if (rc == VLM_E_NOT_FOUND) rc = VLM_OK;
        else if (!rc && add_tokens_from(map, *out)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
fail:
    json_decref(cfg);
    json_decref(map);
    if (rc) { json_decref(*out); *out = NULL; }
    return rc;
}

/* A message with null-valued keys dropped and reasoning copied under the names templates read
 * ("thinking" first, "reasoning_content" last), as transformers does. */
static json_t *image_url_part(json_t *p) {
    json_t *info = json_object_get(p, "image_url");
    json_t *url = json_is_object(info) ? json_object_get(info, "url") : info;
    json_t *o = json_object();
    if (!o) return NULL;
    if (json_object_set_new(o, "type", json_string("image")) ||
        json_object_set_new(o, "url", json_is_object(info) ? (url ? json_incref(url) : json_string("")) : json_incref(url))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *normalise_message(json_t *m, int flags) {
    json_t *clean = json_object();
    const char *k;
    json_t *v;
    if (!clean) return NULL;
    json_object_foreach(m, k, v) {
        if (json_is_null(v)) continue;
        json_t *val = json_incref(v);
        if ((flags & VLM_CHAT_TEMPLATE_PROCESSOR) && !strcmp(k, "content") && json_is_array(v)) {
            json_decref(val);
            val = json_array();
            size_t i;
            json_t *p;
            json_array_foreach(v, i, p) {
                json_t *type = json_object_get(p, "type");
                int conv = json_is_string(type) && !strcmp(json_string_value(type), "image_url") &&
                           json_object_get(p, "image_url");
                if (!val || json_array_append_new(val, conv ? image_url_part(p) : json_incref(p))) break;
            }
        }
        if (!val || json_object_set_new(clean, k, val)) { json_decref(clean); return NULL; }
    }
    static const char *const fields[] = {"reasoning_content", "thinking", "reasoning"};
    json_t *r = NULL;
    for (int i = 0; i < 3 && !r; i++) r = json_object_get(clean, fields[i]);
    if (!r) return clean;
    json_t *out = json_object();
    if (!out) { json_decref(clean); return NULL; }
    json_object_set(out, "thinking", r);
    json_object_foreach(clean, k, v) json_object_set(out, k, v);   /* keeps "thinking" first */
    json_object_set(out, "reasoning_content", r);
    json_decref(clean);
    return out;
}

int vlm_chat_template_is_processor(const char *dir) {
    static const char *const files[] = {"chat_template.jinja", "chat_template.json"};
    for (int i = 0; i < 2; i++) {
        char *p = vlm_path_join(dir, files[i]);
        int ok = p && vlm_file_exists(p);
        vlm_free(p);
        if (ok) return 1;
    }
    return 0;
}

int vlm_chat_template_context(json_t *special_tokens, json_t *messages, int add_generation_prompt, int flags,
                              json_t **out, struct vlm_error *err) {
    *out = NULL;
    if (!json_is_array(messages)) return vlm_error_set(err, VLM_E_INVALID, "messages must be a list");
    if (json_array_size(messages) == 0)
        return vlm_error_set(err, VLM_E_INVALID, "cannot apply a chat template to an empty conversation");
    json_t *ctx = special_tokens ? json_deep_copy(special_tokens) : json_object();
    json_t *msgs = json_array();
    if (!ctx || !msgs) goto oom;
    size_t i;
    json_t *m;
    json_array_foreach(messages, i, m) {
        if (!json_is_object(m)) {
            json_decref(ctx);
            json_decref(msgs);
            return vlm_error_set(err, VLM_E_INVALID, "message %zu is not an object", i);
        }
        json_t *n = normalise_message(m, flags);
        if (!n || json_array_append_new(msgs, n)) goto oom;
    }
    if (json_object_set_new(ctx, "messages", msgs)) { msgs = NULL; goto oom; }
    msgs = NULL;
    if (json_object_set_new(ctx, "tools", json_null()) || json_object_set_new(ctx, "documents", json_null()) ||
        json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt)))
        goto oom;
    *out = ctx;
    return VLM_OK;
oom:
    json_decref(ctx);
    json_decref(msgs);
    return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

/* ---- apply_chat_template ---- */
#define CONTINUE_TAG "CONTINUE_FINAL_MESSAGE_TAG "

/* [*b, *e) shrunk by Python's str.strip() (Unicode whitespace). */
static void py_strip(const char *s, size_t n, size_t *b, size_t *e) {
    size_t i = 0, w;
    while (i < n && py_isspace((uint32_t)u8_decode(s + i, n - i, &w))) i += w;
    size_t end = n;
    while (end > i) {
        size_t st = end - 1;
        while (st > i && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        if (!py_isspace((uint32_t)u8_decode(s + st, end - st, &w)) || st + w != end) break;
        end = st;
    }
    *b = i;
    *e = end;
}

/* Appends the tag to the last message's text; *final gets the text before (a new string). */
static int tag_final_message(json_t *ctx, json_t **final, struct vlm_error *err) {
    json_t *msgs = json_object_get(ctx, "messages");
    json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
    json_t *content = json_object_get(last, "content"), *holder = last;
    const char *key = "content";
    if (!content)
        return vlm_error_set(err, VLM_E_INVALID, "continue_final_message is set but the final message has no \"content\" to continue");
    if (json_is_array(content)) {
        holder = NULL;
        for (size_t i = json_array_size(content); i-- > 0 && !holder;)
            if (json_object_get(json_array_get(content, i), "text")) holder = json_array_get(content, i);
        if (!holder)
            return vlm_error_set(err, VLM_E_INVALID, "continue_final_message is set but the final message has no text to continue");
        key = "text";
    }
    json_t *text = json_object_get(holder, key);
    if (!json_is_string(text))
        return vlm_error_set(err, VLM_E_INVALID, "continue_final_message: the final message's text is not a string");
    struct vlm_buf b = {0};
    if (vlm_buf_append(&b, json_string_value(text), json_string_length(text)) ||
        vlm_buf_append(&b, CONTINUE_TAG, strlen(CONTINUE_TAG))) {
        vlm_buf_free(&b);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    *final = json_stringn(json_string_value(text), json_string_length(text));
    int bad = !*final || json_object_set_new(holder, key, json_stringn(b.data, b.len));
    vlm_buf_free(&b);
    return bad ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
}

/* Cuts the rendered text where the tag is, as transformers does. */
static int cut_at_tag(char *out, size_t *len, json_t *final, struct vlm_error *err) {
    size_t fb, fe;
    const char *f = json_string_value(final);
    py_strip(f, json_string_length(final), &fb, &fe);
    const char *tag = CONTINUE_TAG;
    size_t tl = strlen(tag) - 1;   /* tag.strip() */
    char *hit = NULL;
    for (char *p = out; (p = memmem(p, *len - (size_t)(p - out), tag, tl)); p++) hit = p;
    if (!hit || !memmem(out, *len, f + fb, fe - fb))
        return vlm_error_set(err, VLM_E_INVALID, "continue_final_message is set but the final message does not "
                             "appear in the chat after applying the chat template");
    size_t at = (size_t)(hit - out);
    if (at + tl < *len && out[at + tl] == ' ') *len = at;
    else {
        size_t b, e;
        py_strip(out, at, &b, &e);
        *len = b == e ? 0 : e;   /* rstrip */
    }
    out[*len] = 0;
    return VLM_OK;
}

int vlm_chat_template_apply(const struct vlm_template *t, json_t *special_tokens, json_t *messages,
                            const struct vlm_chat_template_opts *o, char **out, size_t *len, struct vlm_error *err) {
    *out = NULL;
    if (len) *len = 0;
    if (!t || !o) return vlm_error_set(err, VLM_E_INVALID, "template: NULL argument");
    if (o->continue_final_message && o->add_generation_prompt)
        return vlm_error_set(err, VLM_E_INVALID, "continue_final_message and add_generation_prompt are not compatible");
    json_t *ctx = NULL, *final = NULL;
    int rc = vlm_chat_template_context(special_tokens, messages, o->add_generation_prompt, o->flags, &ctx, err);
    if (!rc && json_is_object(o->kwargs)) {
        const char *k;
        json_t *v;
        json_object_foreach(o->kwargs, k, v)
            if (strcmp(k, "messages") && json_object_set(ctx, k, v)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (!rc && o->continue_final_message) {
        if (!memmem(t->src, t->src_len, "content", 7))
            rc = vlm_error_set(err, VLM_E_INVALID, "continue_final_message is set to \"content\" but this is not an accepted field in the chat_template");
        else rc = tag_final_message(ctx, &final, err);
    }
    size_t n = 0;
    if (!rc) rc = vlm_template_render(t, ctx, o->limits, out, &n, err);
    if (!rc && final) rc = cut_at_tag(*out, &n, final, err);
    if (rc) { vlm_free(*out); *out = NULL; }
    else if (len) *len = n;
    json_decref(ctx);
    json_decref(final);
    return rc;
}
