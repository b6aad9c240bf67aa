/* tok_json.c — parsing tokenizer.json's pipeline steps: normalizer, pre_tokenizer, decoder
 * (each possibly a Sequence) and the post-processor's single-sequence template. Anything
 * this tokenizer cannot reproduce exactly is refused at load, never approximated. */
#include "text/tok_internal.h"

#include <jansson.h>
#include <string.h>

#include "util/error.h"
#include "util/utf8.h"

static int nomem(struct vlm_error *err) { return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }

static const char *jstr(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int copy_str(json_t *v, char **out, size_t *len, const char *what, struct vlm_error *err) {
    if (!json_is_string(v)) return vlm_error_set(err, VLM_E_FORMAT, "%s: expected a string", what);
    size_t n = json_string_length(v);
    if (n > TOK_MAX_TOKEN_BYTES || !vlm_utf8_valid((const uint8_t *)json_string_value(v), n))
        return vlm_error_set(err, VLM_E_FORMAT, "%s: bad string", what);
    if (!(*out = vlm_memdup(json_string_value(v), n + 1))) return nomem(err);
    *len = n;
    return VLM_OK;
}

/* A one-character string (Metaspace replacement, Strip content) as a code point. */
static int one_char(json_t *v, uint32_t *cp, const char *what, struct vlm_error *err) {
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? json_string_length(v) : 0;
    if (!s || !n || vlm_utf8_decode((const uint8_t *)s, n, cp) != n)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: expected one character", what);
    return VLM_OK;
}

/* Flattens a step or a Sequence of steps (listed under seq_key) into items[]. */
static int flatten(json_t *step, const char *seq_key, json_t **items, size_t *n, int depth,
                   const char *what, struct vlm_error *err) {
    if (!json_is_object(step)) return vlm_error_set(err, VLM_E_FORMAT, "%s: expected an object", what);
    const char *type = jstr(step, "type");
    if (!type) return vlm_error_set(err, VLM_E_FORMAT, "%s: missing type", what);
    if (strcmp(type, "Sequence")) {
        if (*n >= TOK_MAX_STEPS) return vlm_error_set(err, VLM_E_TOO_LARGE, "%s: too many steps", what);
        items[(*n)++] = step;
        return VLM_OK;
    }
    json_t *arr = json_object_get(step, seq_key);
    if (!json_is_array(arr) || depth > 4) return vlm_error_set(err, VLM_E_FORMAT, "%s: bad Sequence", what);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int rc = flatten(json_array_get(arr, i), seq_key, items, n, depth + 1, what, err);
        if (rc) return rc;
    }
    return VLM_OK;
}

/* pattern: {"String": s} or {"Regex": r}: literal into lit, or a compiled regex. */
static int parse_pattern(json_t *pat, char **lit, size_t *lit_len, pcre2_code **re, const char *what,
                         struct vlm_error *err) {
    json_t *s = json_object_get(pat, "String"), *r = json_object_get(pat, "Regex");
    if (json_is_string(s)) {
        int rc = copy_str(s, lit, lit_len, what, err);
        if (!rc && *lit_len == 0) rc = vlm_error_set(err, VLM_E_FORMAT, "%s: empty pattern", what);
        return rc;
    }
    if (!json_is_string(r)) return vlm_error_set(err, VLM_E_FORMAT, "%s: bad pattern", what);
    *re = tok_regex_compile(json_string_value(r), json_string_length(r), err);
    return *re ? VLM_OK : VLM_E_FORMAT;
}

static int parse_norm(struct tok_norm *d, json_t *j, struct vlm_error *err) {
    const char *type = jstr(j, "type");
    static const struct { const char *name; enum tok_norm_type type; } simple[] = {
        {"NFC", NORM_NFC}, {"NFKC", NORM_NFKC}, {"NFD", NORM_NFD}, {"NFKD", NORM_NFKD},
        {"Lowercase", NORM_LOWERCASE}};
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++)
        if (!strcmp(type, simple[i].name)) { d->type = simple[i].type; return VLM_OK; }
    if (!strcmp(type, "Prepend")) {
        d->type = NORM_PREPEND;
        return copy_str(json_object_get(j, "prepend"), &d->a, &d->a_len, "normalizer.prepend", err);
    }
    if (!strcmp(type, "Replace")) {
        d->type = NORM_REPLACE;
        int rc = parse_pattern(json_object_get(j, "pattern"), &d->a, &d->a_len, &d->re, "normalizer.pattern", err);
        return rc ? rc : copy_str(json_object_get(j, "content"), &d->b, &d->b_len, "normalizer.content", err);
    }
    return vlm_error_set(err, VLM_E_UNSUPPORTED, "normalizer type %s is not supported", type);
}

static int parse_behavior(json_t *j, enum tok_split_behavior *b, struct vlm_error *err) {
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    const char *s = jstr(j, "behavior");
    for (int i = 0; s && i < 5; i++)
        if (!strcmp(s, names[i])) { *b = (enum tok_split_behavior)i; return VLM_OK; }
    return vlm_error_set(err, VLM_E_FORMAT, "pre_tokenizer.behavior: unknown");
}

static int parse_prepend(json_t *j, enum tok_prepend *p, struct vlm_error *err) {
    const char *s = jstr(j, "prepend_scheme");
    json_t *aps = json_object_get(j, "add_prefix_space");
    if (!s) { *p = (aps && !json_is_true(aps)) ? PREPEND_NEVER : PREPEND_ALWAYS; return VLM_OK; }
    if (!strcmp(s, "always")) *p = PREPEND_ALWAYS;
    else if (!strcmp(s, "first")) *p = PREPEND_FIRST;
    else if (!strcmp(s, "never")) *p = PREPEND_NEVER;
    else return vlm_error_set(err, VLM_E_FORMAT, "prepend_scheme: unknown \"%s\"", s);
    return VLM_OK;
}

static int flag_default(json_t *j, const char *key, int def) {
    json_t *v = json_object_get(j, key);
    return v ? json_is_true(v) : def;
}

#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

static int parse_pre(struct tok_pre *d, json_t *j, struct vlm_error *err) {
    const char *type = jstr(j, "type");
    if (!strcmp(type, "Split")) {
        d->type = PRE_SPLIT;
        d->invert = json_is_true(json_object_get(j, "invert"));
        int rc = parse_behavior(j, &d->behavior, err);
        return rc ? rc : parse_pattern(json_object_get(j, "pattern"), &d->lit, &d->lit_len, &d->re,
                                       "pre_tokenizer.pattern", err);
    }
    if (!strcmp(type, "ByteLevel")) {
        d->type = PRE_BYTELEVEL;
        d->add_prefix_space = flag_default(j, "add_prefix_space", 1);
        d->use_regex = flag_default(j, "use_regex", 1);
        if (d->use_regex && !(d->re = tok_regex_compile(GPT2_REGEX, strlen(GPT2_REGEX), err))) return VLM_E_INTERNAL;
        return VLM_OK;
    }
    if (!strcmp(type, "Digits")) {
        d->type = PRE_DIGITS;
        d->individual = json_is_true(json_object_get(j, "individual_digits"));
        d->re = tok_regex_compile("\\p{N}", 5, err);
        return d->re ? VLM_OK : VLM_E_INTERNAL;
    }
    if (!strcmp(type, "Metaspace")) {
        d->type = PRE_METASPACE;
        d->split = flag_default(j, "split", 1);
        int rc = one_char(json_object_get(j, "replacement"), &d->replacement, "Metaspace.replacement", err);
        if (rc) return rc;
        d->repl_len = vlm_utf8_encode(d->replacement, (uint8_t *)d->repl);
        return parse_prepend(j, &d->prepend, err);
    }
    return vlm_error_set(err, VLM_E_UNSUPPORTED, "pre_tokenizer type %s is not supported", type);
}

static int parse_dec(struct tok_dec *d, json_t *j, struct vlm_error *err) {
    const char *type = jstr(j, "type");
    if (!strcmp(type, "ByteLevel")) { d->type = DEC_BYTELEVEL; return VLM_OK; }
    if (!strcmp(type, "ByteFallback")) { d->type = DEC_BYTEFALLBACK; return VLM_OK; }
    if (!strcmp(type, "Fuse")) { d->type = DEC_FUSE; return VLM_OK; }
    if (!strcmp(type, "Replace")) {
        d->type = DEC_REPLACE;
        json_t *s = json_object_get(json_object_get(j, "pattern"), "String");
        if (!json_is_string(s) || json_string_length(s) == 0)
            return vlm_error_set(err, VLM_E_UNSUPPORTED, "decoder Replace: only String patterns are supported");
        int rc = copy_str(s, &d->a, &d->a_len, "decoder.pattern", err);
        return rc ? rc : copy_str(json_object_get(j, "content"), &d->b, &d->b_len, "decoder.content", err);
    }
    if (!strcmp(type, "Strip")) {
        d->type = DEC_STRIP;
        json_t *a = json_object_get(j, "start"), *b = json_object_get(j, "stop");
        if (!json_is_integer(a) || !json_is_integer(b) || json_integer_value(a) < 0 || json_integer_value(b) < 0 ||
            json_integer_value(a) > 1024 || json_integer_value(b) > 1024)
            return vlm_error_set(err, VLM_E_FORMAT, "decoder Strip: bad start/stop");
        d->start = (size_t)json_integer_value(a); d->stop = (size_t)json_integer_value(b);
        return one_char(json_object_get(j, "content"), &d->content, "decoder Strip.content", err);
    }
    if (!strcmp(type, "Metaspace")) {
        d->type = DEC_METASPACE;
        uint32_t cp;
        int rc = one_char(json_object_get(j, "replacement"), &cp, "decoder Metaspace.replacement", err);
        if (rc) return rc;
        if (!(d->a = vlm_malloc(5))) return nomem(err);
        d->a_len = vlm_utf8_encode(cp, (uint8_t *)d->a);
        d->a[d->a_len] = 0;
        return parse_prepend(j, &d->prepend, err);
    }
    return vlm_error_set(err, VLM_E_UNSUPPORTED, "decoder type %s is not supported", type);
}

int tok_parse_steps(struct vlm_tokenizer *t, json_t *root, struct vlm_error *err) {
    json_t *items[TOK_MAX_STEPS];
    size_t n = 0;
    int rc = VLM_OK;
    json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm) && (rc = flatten(norm, "normalizers", items, &n, 0, "normalizer", err))) return rc;
    if (n && !(t->norms = vlm_calloc(n, sizeof *t->norms))) return nomem(err);
    for (size_t i = 0; i < n; i++, t->n_norms++)
        if ((rc = parse_norm(&t->norms[i], items[i], err))) { t->n_norms++; return rc; }

    n = 0;
    json_t *pre = json_object_get(root, "pre_tokenizer");
    if (pre && !json_is_null(pre) && (rc = flatten(pre, "pretokenizers", items, &n, 0, "pre_tokenizer", err))) return rc;
    if (n && !(t->pres = vlm_calloc(n, sizeof *t->pres))) return nomem(err);
    for (size_t i = 0; i < n; i++, t->n_pres++)
        if ((rc = parse_pre(&t->pres[i], items[i], err))) { t->n_pres++; return rc; }
    for (size_t i = 0; i < t->n_pres; i++)
        if (t->pres[i].type == PRE_BYTELEVEL) {
            if (i + 1 != t->n_pres)
                return vlm_error_set(err, VLM_E_UNSUPPORTED, "pre_tokenizer: ByteLevel must come last");
            t->byte_level = 1;
        }

    n = 0;
    json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec) && (rc = flatten(dec, "decoders", items, &n, 0, "decoder", err))) return rc;
    t->has_decoder = dec && !json_is_null(dec);
    if (n && !(t->decs = vlm_calloc(n, sizeof *t->decs))) return nomem(err);
    for (size_t i = 0; i < n; i++, t->n_decs++)
        if ((rc = parse_dec(&t->decs[i], items[i], err))) { t->n_decs++; return rc; }
    return VLM_OK;
}

/* TemplateProcessing's "single" list: special tokens (ids from special_tokens) and $A. */
static int parse_template(struct vlm_tokenizer *t, json_t *post, struct vlm_error *err) {
    json_t *single = json_object_get(post, "single"), *specials = json_object_get(post, "special_tokens");
    if (!json_is_array(single)) return vlm_error_set(err, VLM_E_FORMAT, "post_processor.single: expected an array");
    t->n_tmpl = 0;
    int seen_a = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
        json_t *it = json_array_get(single, i), *sp = json_object_get(it, "SpecialToken");
        json_t *seq = json_object_get(it, "Sequence");
        if (json_is_object(seq)) {
            const char *id = jstr(seq, "id");
            if (!id || strcmp(id, "A") || seen_a || t->n_tmpl >= TOK_MAX_TEMPLATE)
                return vlm_error_set(err, VLM_E_FORMAT, "post_processor.single: bad Sequence");
            t->tmpl[t->n_tmpl++] = -1;
            seen_a = 1;
            continue;
        }
        const char *name = json_is_object(sp) ? jstr(sp, "id") : NULL;
        json_t *ids = name ? json_object_get(json_object_get(specials, name), "ids") : NULL;
        if (!json_is_array(ids)) return vlm_error_set(err, VLM_E_FORMAT, "post_processor: unknown special token");
        for (size_t k = 0; k < json_array_size(ids); k++) {
            json_t *v = json_array_get(ids, k);
            size_t len;
            if (!json_is_integer(v) || json_integer_value(v) < 0 || (size_t)json_integer_value(v) >= t->n_total ||
                !tok_id_str(t, (int32_t)json_integer_value(v), &len) || t->n_tmpl >= TOK_MAX_TEMPLATE)
                return vlm_error_set(err, VLM_E_FORMAT, "post_processor: bad special token id");
            t->tmpl[t->n_tmpl++] = (int32_t)json_integer_value(v);
        }
    }
    if (!seen_a) return vlm_error_set(err, VLM_E_FORMAT, "post_processor.single: no $A");
    t->has_tmpl = 1;
    return VLM_OK;
}

int tok_parse_post(struct vlm_tokenizer *t, json_t *post, struct vlm_error *err) {
    json_t *items[TOK_MAX_STEPS];
    size_t n = 0;
    t->has_tmpl = 0;
    if (!post || json_is_null(post)) return VLM_OK;
    int rc = flatten(post, "processors", items, &n, 0, "post_processor", err);
    for (size_t i = 0; !rc && i < n; i++) {
        const char *type = jstr(items[i], "type");
        if (!strcmp(type, "ByteLevel")) continue;   /* offsets only; ids unchanged */
        if (!strcmp(type, "TemplateProcessing")) rc = parse_template(t, items[i], err);
        else rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "post_processor type %s is not supported", type);
    }
    return rc;
}

void tok_steps_free(struct vlm_tokenizer *t) {
    for (size_t i = 0; i < t->n_norms; i++) {
        vlm_free(t->norms[i].a); vlm_free(t->norms[i].b);
        pcre2_code_free(t->norms[i].re);
    }
    for (size_t i = 0; i < t->n_pres; i++) { vlm_free(t->pres[i].lit); pcre2_code_free(t->pres[i].re); }
    for (size_t i = 0; i < t->n_decs; i++) { vlm_free(t->decs[i].a); vlm_free(t->decs[i].b); }
    vlm_free(t->norms); vlm_free(t->pres); vlm_free(t->decs);
    t->norms = NULL; t->pres = NULL; t->decs = NULL;
}
