/* gguf_export_tok.c — the tokenizer of a model folder as GGUF metadata, laid out as llama.cpp's
 * converter writes a GPT-2-style (byte-level BPE) vocabulary: tokens, token types, merges,
 * special token ids and add_* flags (gguf-py's SpecialVocab rules), and the chat template. */
#include "models/gguf_export.h"

#include <string.h>

#include "formats/config.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto out; } while (0)

/* llama.cpp's token types. */
enum { TT_NORMAL = 1, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5 };

static int load_json(const char *dir, const char *name, int required, json_t **out, struct vlm_error *err) {
    char *p = vlm_path_join(dir, name), *text = NULL;
    size_t len;
    *out = NULL;
    if (!p) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int rc = VLM_OK;
    if (!vlm_file_exists(p)) {
        if (required) rc = vlm_error_set(err, VLM_E_NOT_FOUND, "%s: not found (vlm quantize needs the tokenizer)", p);
    } else if ((rc = vlm_read_file(p, 1u << 30, &text, &len, err)) == VLM_OK) {
        json_error_t je;
        if (!(*out = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je))) {
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: line %d: %s", p, je.line, je.text);
        } else if (!json_is_object(*out)) {
            json_decref(*out);
            *out = NULL;
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: not a JSON object", p);
        }
    }
    vlm_free(text);
    vlm_free(p);
    return rc;
}

/* The converter's "looks special" rule for added tokens not flagged special. */
static int looks_special(const char *s) {
    size_t n = strlen(s);
    if (!strcmp(s, "<pad>") || !strcmp(s, "<mask>") || !strcmp(s, "<2mass>") || !strcmp(s, "[@BOS@]")) return 1;
    if (n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>")) return 1;
    /* fullwidth bars: "<｜" ... "｜>" (U+FF5C) */
    return n >= 8 && !strncmp(s, "<\xef\xbd\x9c", 4) && !strcmp(s + n - 4, "\xef\xbd\x9c>");
}

/* Replaces U+2581 (the SentencePiece space) by ' ' in place, as the converter does for
 * user-defined tokens. */
static void unsp(char *s) {
    char *d = s;
    for (; *s; s++) {
        if (!strncmp(s, "\xe2\x96\x81", 3)) { *d++ = ' '; s += 2; }
        else *d++ = *s;
    }
    *d = 0;
}

/* tokenizer.ggml.pre from the pre-tokenizer's structure, for the ones recognised here. */
static const char *detect_pre(json_t *tok) {
    json_t *pt = json_object_get(tok, "pre_tokenizer");
    json_t *list = json_object_get(pt, "pretokenizers");
    if (!json_is_array(list) || json_array_size(list) != 2) return NULL;
    json_t *a = json_array_get(list, 0), *b = json_array_get(list, 1);
    /* SmolLM / SmolVLM: each digit apart, then GPT-2's byte-level regex split. */
    if (!strcmp(json_string_value(json_object_get(a, "type")) ? json_string_value(json_object_get(a, "type")) : "", "Digits") &&
        json_is_true(json_object_get(a, "individual_digits")) &&
        json_string_value(json_object_get(b, "type")) && !strcmp(json_string_value(json_object_get(b, "type")), "ByteLevel") &&
        !json_is_false(json_object_get(b, "use_regex")))
        return "smollm";
    return NULL;
}

/* The id of the first added token with content s (as SpecialVocab looks it up), -1 if none. */
static long long added_id(json_t *added, const char *s) {
    size_t i;
    json_t *t;
    json_array_foreach(added, i, t) {
        const char *c = json_string_value(json_object_get(t, "content"));
        if (c && !strcmp(c, s)) return json_integer_value(json_object_get(t, "id"));
    }
    return -1;
}

static const char *token_str(json_t *e) {
    return json_is_string(e) ? json_string_value(e) : json_string_value(json_object_get(e, "content"));
}

/* Special ids and add_* flags: tokenizer_config's tokens (looked up among added tokens), then
 * config.json's <type>_token_id (root, then text_config); post_processor decides add_bos/eos. */
static int specials(struct vlm_gguf_writer *w, const struct vlm_config *cfg, json_t *tok, json_t *tc,
                    int n_vocab, struct vlm_error *err) {
    static const char *types[] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
    static const char *keys[] = {"bos_token_id", "eos_token_id", "unknown_token_id", "seperator_token_id",
                                 "padding_token_id", "cls_token_id", "mask_token_id"};
    json_t *added = json_object_get(tok, "added_tokens");
    int add_bos = -1, add_eos = -1, rc = VLM_OK;
    json_t *pp = json_object_get(tok, "post_processor");
    json_t *procs = json_object_get(pp, "processors");
    size_t np = json_is_array(procs) ? json_array_size(procs) : (pp && json_is_object(pp) ? 1 : 0);
    for (size_t i = 0; i < np; i++) {
        json_t *p = json_is_array(procs) ? json_array_get(procs, i) : pp;
        const char *ty = json_string_value(json_object_get(p, "type"));
        if (ty && !strcmp(ty, "ByteLevel")) {
            if (add_bos < 0) add_bos = 0;
            if (add_eos < 0) add_eos = 0;
        } else if (ty && !strcmp(ty, "TemplateProcessing")) {
            json_t *single = json_object_get(p, "single");
            const char *bos = tc ? token_str(json_object_get(tc, "bos_token")) : NULL;
            const char *eos = tc ? token_str(json_object_get(tc, "eos_token")) : NULL;
            if (json_array_size(single) > 1) {
                const char *first = json_string_value(json_object_get(json_object_get(json_array_get(single, 0), "SpecialToken"), "id"));
                const char *last = json_string_value(json_object_get(json_object_get(json_array_get(single, json_array_size(single) - 1), "SpecialToken"), "id"));
                if (first) add_bos = bos && !strcmp(first, bos);
                if (last) add_eos = eos && !strcmp(last, eos);
            }
        }
    }
    for (int t = 0; t < 7 && rc == VLM_OK; t++) {
        char k[32];
        long long id = -1;
        snprintf(k, sizeof k, "add_%s_token", types[t]);
        json_t *flag = tc ? json_object_get(tc, k) : NULL;
        if (t == 0 && add_bos < 0 && json_is_boolean(flag)) add_bos = json_is_true(flag);
        if (t == 1 && add_eos < 0 && json_is_boolean(flag)) add_eos = json_is_true(flag);
        snprintf(k, sizeof k, "%s_token", types[t]);
        const char *s = tc ? token_str(json_object_get(tc, k)) : NULL;
        if (s) id = added_id(added, s);
        if (id < 0 || id >= n_vocab) {
            snprintf(k, sizeof k, "%s_token_id", types[t]);
            json_t *v = json_object_get(cfg->root, k), *txt = json_object_get(cfg->root, "text_config");
            if (!v && json_is_object(txt)) v = json_object_get(txt, k);
            id = json_is_integer(v) ? json_integer_value(v) : -1;
        }
        if (id >= 0 && id < n_vocab) {
            char key[64];
            snprintf(key, sizeof key, "tokenizer.ggml.%s", keys[t]);
            rc = vlm_gguf_write_u32(w, key, (uint32_t)id, err);
        }
    }
    if (rc == VLM_OK && add_bos >= 0) rc = vlm_gguf_write_bool(w, "tokenizer.ggml.add_bos_token", add_bos, err);
    if (rc == VLM_OK && add_eos >= 0) rc = vlm_gguf_write_bool(w, "tokenizer.ggml.add_eos_token", add_eos, err);
    return rc;
}

/* tokenizer_config's chat_template, else chat_template.jinja, else chat_template.json's. */
static int chat_template(struct vlm_gguf_writer *w, json_t *tc, const char *dir, struct vlm_error *err) {
    const char *s = tc ? json_string_value(json_object_get(tc, "chat_template")) : NULL;
    if (s) return vlm_gguf_write_cstr(w, "tokenizer.chat_template", s, err);
    char *p = vlm_path_join(dir, "chat_template.jinja"), *text = NULL;
    size_t len;
    int rc = p ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (rc == VLM_OK && vlm_file_exists(p)) {
        rc = vlm_read_file(p, 1u << 24, &text, &len, err);
        if (rc == VLM_OK) rc = vlm_gguf_write_str(w, "tokenizer.chat_template", text, len, err);
    } else if (rc == VLM_OK) {
        json_t *j;
        rc = load_json(dir, "chat_template.json", 0, &j, err);
        s = j ? json_string_value(json_object_get(j, "chat_template")) : NULL;
        if (rc == VLM_OK && s) rc = vlm_gguf_write_cstr(w, "tokenizer.chat_template", s, err);
        json_decref(j);
    }
    vlm_free(text);
    vlm_free(p);
    return rc;
}

/* merges as "a b" strings; pairs with spaces get U+0120 for ' ' as gguf-py encodes them. */
static int merges(struct vlm_gguf_writer *w, json_t *m, const char *fname, struct vlm_error *err) {
    size_t n = json_array_size(m), i;
    char **s = vlm_calloc(n ? n : 1, sizeof *s);
    int rc = s ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    json_t *e;
    json_array_foreach(m, i, e) {
        if (rc != VLM_OK) break;
        struct vlm_buf b = {0};
        if (json_is_string(e)) {
            rc = vlm_buf_append(&b, json_string_value(e), json_string_length(e));
        } else if (json_is_array(e) && json_array_size(e) == 2 && json_is_string(json_array_get(e, 0)) &&
                   json_is_string(json_array_get(e, 1))) {
            for (int k = 0; k < 2 && rc == VLM_OK; k++) {
                if (k) rc = vlm_buf_putc(&b, ' ');
                for (const char *c = json_string_value(json_array_get(e, (size_t)k)); *c && rc == VLM_OK; c++)
                    rc = *c == ' ' ? vlm_buf_append(&b, "\xc4\xa0", 2) : vlm_buf_putc(&b, *c);
            }
        } else {
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", fname, i);
        }
        if (rc == VLM_OK) vlm_buf_cstr(&b);
        s[i] = vlm_buf_take(&b);
        if (rc == VLM_OK && !s[i]) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (rc == VLM_OK && n) rc = vlm_gguf_write_arr_str(w, "tokenizer.ggml.merges", (const char *const *)s, NULL, n, err);
    for (i = 0; s && i < n; i++) vlm_free(s[i]);
    vlm_free(s);
    return rc;
}

int vlm_gguf_export_tokenizer(struct vlm_gguf_writer *w, const struct vlm_config *cfg, const char *dir,
                              int n_vocab, const char *pre, struct vlm_error *err) {
    json_t *tok = NULL, *tc = NULL;
    char **tokens = NULL;
    int32_t *types = NULL;
    int rc;
    CHK(load_json(dir, "tokenizer.json", 1, &tok, err));
    CHK(load_json(dir, "tokenizer_config.json", 0, &tc, err));
    json_t *model = json_object_get(tok, "model"), *vocab = json_object_get(model, "vocab");
    const char *mt = json_string_value(json_object_get(model, "type"));
    if (!mt || strcmp(mt, "BPE") || !json_is_object(vocab) || json_is_true(json_object_get(model, "byte_fallback"))) {
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s/tokenizer.json: only byte-level BPE tokenizers (llama.cpp's \"gpt2\" model) are exported so far", dir);
        goto out;
    }
    if (!pre) pre = detect_pre(tok);
    if (!pre) {
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s/tokenizer.json: pre-tokenizer not recognised; name llama.cpp's with --tokenizer-pre (e.g. llama-bpe, qwen2, smollm)", dir);
        goto out;
    }
    tokens = vlm_calloc((size_t)n_vocab, sizeof *tokens);
    types = vlm_calloc((size_t)n_vocab, sizeof *types);
    if (!tokens || !types) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto out; }
    const char *k;
    json_t *v;
    json_object_foreach(vocab, k, v) {
        long long id = json_integer_value(v);
        if (json_is_integer(v) && id >= 0 && id < n_vocab && !tokens[id]) {
            if (!(tokens[id] = vlm_memdup(k, strlen(k) + 1))) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto out; }
            types[id] = TT_NORMAL;
        }
    }
    size_t i;
    json_array_foreach(json_object_get(tok, "added_tokens"), i, v) {
        long long id = json_integer_value(json_object_get(v, "id"));
        const char *c = json_string_value(json_object_get(v, "content"));
        if (!c || id < 0 || id >= n_vocab) continue;
        vlm_free(tokens[id]);
        if (!(tokens[id] = vlm_memdup(c, strlen(c) + 1))) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto out; }
        if (json_is_true(json_object_get(v, "special")) || looks_special(c)) {
            types[id] = TT_CONTROL;
        } else {
            unsp(tokens[id]);
            types[id] = TT_USER_DEFINED;
        }
    }
    for (int t = 0; t < n_vocab; t++) {
        if (tokens[t]) continue;
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", t);
        if (!(tokens[t] = vlm_memdup(pad, strlen(pad) + 1))) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto out; }
        types[t] = TT_UNUSED;
    }
    json_t *asp = tc ? json_object_get(tc, "add_prefix_space") : NULL;
    if (json_is_boolean(asp)) CHK(vlm_gguf_write_bool(w, "tokenizer.ggml.add_space_prefix", json_is_true(asp), err));
    CHK(vlm_gguf_write_cstr(w, "tokenizer.ggml.model", "gpt2", err));
    CHK(vlm_gguf_write_cstr(w, "tokenizer.ggml.pre", pre, err));
    CHK(vlm_gguf_write_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, NULL, (uint64_t)n_vocab, err));
    CHK(vlm_gguf_write_arr(w, "tokenizer.ggml.token_type", VLM_GGUF_I32, types, (uint64_t)n_vocab, err));
    CHK(merges(w, json_object_get(model, "merges"), "tokenizer.json", err));
    CHK(specials(w, cfg, tok, tc, n_vocab, err));
    CHK(chat_template(w, tc, dir, err));
out:
    for (int t = 0; tokens && t < n_vocab; t++) vlm_free(tokens[t]);
    vlm_free(tokens);
    vlm_free(types);
    json_decref(tok);
    json_decref(tc);
    return rc;
}
