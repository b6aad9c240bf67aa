/* tokenizer.c — loading tokenizer.json (+ tokenizer_config.json): the BPE vocabulary and
 * merges, added tokens and BOS/EOS; hash tables; the public accessors. The pipeline steps
 * (normalizer, pre-tokenizer, decoder, post-processor) are parsed in tok_json.c. */
#include "text/tok_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "util/error.h"
#include "util/file.h"
#include "util/utf8.h"

int tok_parse_steps(struct vlm_tokenizer *t, json_t *root, struct vlm_error *err);
int tok_parse_post(struct vlm_tokenizer *t, json_t *post, struct vlm_error *err);

uint64_t tok_hash(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ (w * 0xc4ceb9fe1a85ec53ULL)) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
        s += 8; n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ (w * 0xc4ceb9fe1a85ec53ULL)) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 32; h *= 0xd6e8feb86659fd93ULL; h ^= h >> 32;
    return h;
}

/* Builds the map over keys[0..n) (NULL keys skipped); a repeated key is a load error. */
int tok_strmap_build(struct tok_strmap *m, const char *const *keys, const uint32_t *lens,
                     size_t n, struct vlm_error *err) {
    size_t cap = 16;
    while (cap < n * 2 + 16) cap <<= 1;
    m->slots = vlm_calloc(cap, sizeof *m->slots);
    if (!m->slots) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->mask = (uint32_t)(cap - 1); m->keys = keys; m->lens = lens;
    for (size_t id = 0; id < n; id++) {
        if (!keys[id]) continue;
        uint32_t i = (uint32_t)tok_hash(keys[id], lens[id]) & m->mask;
        for (;; i = (i + 1) & m->mask) {
            uint32_t s = m->slots[i];
            if (s == 0) { m->slots[i] = (uint32_t)id + 1; break; }
            if (lens[s - 1] == lens[id] && !memcmp(keys[s - 1], keys[id], lens[id]))
                return vlm_error_set(err, VLM_E_FORMAT, "duplicate token \"%.64s\" (ids %u and %zu)",
                                     keys[id], s - 1, id);
        }
    }
    return VLM_OK;
}

int32_t tok_strmap_get(const struct tok_strmap *m, const char *s, size_t n) {
    if (!m->slots) return -1;
    for (uint32_t i = (uint32_t)tok_hash(s, n) & m->mask;; i = (i + 1) & m->mask) {
        uint32_t v = m->slots[i];
        if (v == 0) return -1;
        if (m->lens[v - 1] == n && !memcmp(m->keys[v - 1], s, n)) return (int32_t)(v - 1);
    }
}

void tok_strmap_free(struct tok_strmap *m) { vlm_free(m->slots); m->slots = NULL; }

static int nomem(struct vlm_error *err) { return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }

/* Copies a JSON string into a fresh allocation, checking length and UTF-8. */
static int dup_json_str(json_t *j, char **out, size_t *len, const char *what, struct vlm_error *err) {
    if (!json_is_string(j)) return vlm_error_set(err, VLM_E_FORMAT, "%s: expected a string", what);
    size_t n = json_string_length(j);
    const char *s = json_string_value(j);
    if (n > TOK_MAX_TOKEN_BYTES) return vlm_error_set(err, VLM_E_TOO_LARGE, "%s: string too long", what);
    if (!vlm_utf8_valid((const uint8_t *)s, n) || memchr(s, 0, n))
        return vlm_error_set(err, VLM_E_FORMAT, "%s: invalid UTF-8", what);
    if (!(*out = vlm_memdup(s, n + 1))) return nomem(err);
    *len = n;
    return VLM_OK;
}

/* Vocabulary: {"piece": id, ...} into pieces[]. */
static int load_vocab(struct vlm_tokenizer *t, json_t *vocab, struct vlm_error *err) {
    if (!json_is_object(vocab)) return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: expected an object");
    size_t n = json_object_size(vocab), max_id = 0;
    if (n == 0 || n > TOK_MAX_VOCAB) return vlm_error_set(err, VLM_E_TOO_LARGE, "model.vocab: %zu entries", n);
    const char *key; json_t *val;
    json_object_foreach(vocab, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || (uint64_t)id >= TOK_MAX_VOCAB)
            return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: bad id for \"%.64s\"", key);
        if ((size_t)id > max_id) max_id = (size_t)id;
    }
    /* ids are dense in real files; a few bytes must not buy a huge id table */
    if (max_id >= 2 * n + 65536)
        return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: id %zu is far past its %zu entries", max_id, n);
    t->n_vocab = max_id + 1;
    t->pieces = vlm_calloc(t->n_vocab, sizeof *t->pieces);
    t->piece_len = vlm_calloc(t->n_vocab, sizeof *t->piece_len);
    if (!t->pieces || !t->piece_len) return nomem(err);
    json_object_foreach(vocab, key, val) {
        size_t id = (size_t)json_integer_value(val), len = strlen(key);
        if (t->pieces[id]) return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: id %zu used twice", id);
        if (len == 0 || len > TOK_MAX_TOKEN_BYTES || !vlm_utf8_valid((const uint8_t *)key, len))
            return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: bad token for id %zu", id);
        if (!(t->pieces[id] = vlm_memdup(key, len + 1))) return nomem(err);
        t->piece_len[id] = (uint32_t)len;
    }
    return tok_strmap_build(&t->vocab, (const char *const *)t->pieces, t->piece_len, t->n_vocab, err);
}

/* One merge, as "a b" or ["a", "b"]: both parts and their concatenation must be tokens. */
static int load_merge(struct vlm_tokenizer *t, json_t *m, size_t rank, struct vlm_error *err) {
    const char *a, *b;
    size_t la, lb;
    char tmp[2 * TOK_MAX_TOKEN_BYTES];
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        size_t n = json_string_length(m);
        if (!sp || strchr(sp + 1, ' ') || n > sizeof tmp)
            return vlm_error_set(err, VLM_E_FORMAT, "model.merges[%zu]: expected \"a b\"", rank);
        a = s; la = (size_t)(sp - s); b = sp + 1; lb = n - la - 1;
    } else if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
               json_is_string(json_array_get(m, 1))) {
        a = json_string_value(json_array_get(m, 0)); la = json_string_length(json_array_get(m, 0));
        b = json_string_value(json_array_get(m, 1)); lb = json_string_length(json_array_get(m, 1));
    } else {
        return vlm_error_set(err, VLM_E_FORMAT, "model.merges[%zu]: expected a string or a pair", rank);
    }
    int32_t ia = tok_strmap_get(&t->vocab, a, la), ib = tok_strmap_get(&t->vocab, b, lb);
    if (ia < 0 || ib < 0 || la + lb > sizeof tmp)
        return vlm_error_set(err, VLM_E_FORMAT, "model.merges[%zu]: unknown token \"%.64s\"", rank,
                             ia < 0 ? a : b);
    memcpy(tmp, a, la); memcpy(tmp + la, b, lb);
    int32_t id = tok_strmap_get(&t->vocab, tmp, la + lb);
    if (id < 0) return vlm_error_set(err, VLM_E_FORMAT, "model.merges[%zu]: merged token not in vocab", rank);
    return tok_merges_put(&t->merges, ia, ib, (uint32_t)rank, id);
}

static int json_flag(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_true(v);
}

/* Byte-level tables: byte -> id of its alphabet char, and decoded bytes -> id for
 * ignore_merges. A token using a char outside the alphabet is malformed. */
static int load_byte_level(struct vlm_tokenizer *t, struct vlm_error *err) {
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        size_t n = vlm_utf8_encode(tok_byte_char((uint8_t)b), u);
        t->byte_id[b] = tok_strmap_get(&t->vocab, (const char *)u, n);
    }
    t->raw_keys = vlm_calloc(t->n_vocab, sizeof *t->raw_keys);
    t->raw_len = vlm_calloc(t->n_vocab, sizeof *t->raw_len);
    if (!t->raw_keys || !t->raw_len) return nomem(err);
    for (size_t id = 0; id < t->n_vocab; id++) {
        const uint8_t *p = (const uint8_t *)t->pieces[id];
        if (!p) continue;
        size_t n = t->piece_len[id], i = 0, k = 0;
        char *raw = vlm_malloc(n + 1);
        if (!raw) return nomem(err);
        while (i < n) {
            uint32_t cp;
            size_t cl = vlm_utf8_decode(p + i, n - i, &cp);
            int byte = cl ? tok_char_byte(cp) : -1;
            if (byte < 0) {
                vlm_free(raw);
                return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: token %zu is not byte-level", id);
            }
            raw[k++] = (char)byte;
            i += cl;
        }
        raw[k] = 0;
        t->raw_keys[id] = raw; t->raw_len[id] = (uint32_t)k;
    }
    return tok_strmap_build(&t->raw, (const char *const *)t->raw_keys, t->raw_len, t->n_vocab, err);
}

/* Byte-fallback tokens <0xNN>: found by spelling; a spelling that looks like one but is
 * not exactly "<0x" two upper-case hex digits ">" is malformed. */
static int load_byte_fallback(struct vlm_tokenizer *t, struct vlm_error *err) {
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_id[b] = tok_strmap_get(&t->vocab, name, 6);
    }
    for (size_t id = 0; id < t->n_vocab; id++) {
        const char *p = t->pieces[id];
        if (!p || t->piece_len[id] != 6 || memcmp(p, "<0x", 3) || p[5] != '>') continue;
        for (int i = 3; i < 5; i++)
            if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'F')))
                return vlm_error_set(err, VLM_E_FORMAT, "model.vocab: malformed byte token \"%s\"", p);
    }
    return VLM_OK;
}

/* Character tokens of the Basic Multilingual Plane in a flat table: the first BPE step of a
 * SentencePiece-style model looks up every character, and a hash probe per character is
 * most of its time on long words. */
static int load_char_table(struct vlm_tokenizer *t, struct vlm_error *err) {
    t->bmp_id = vlm_malloc(65536 * sizeof *t->bmp_id);
    if (!t->bmp_id) return nomem(err);
    for (uint32_t cp = 0; cp < 65536; cp++) {
        uint8_t u[4];
        size_t n = vlm_utf8_encode(cp, u);
        t->bmp_id[cp] = n ? tok_strmap_get(&t->vocab, (const char *)u, n) : -1;
    }
    return VLM_OK;
}

static int load_model(struct vlm_tokenizer *t, json_t *model, struct vlm_error *err) {
    json_t *type = json_object_get(model, "type");
    if (!json_is_object(model) || (type && (!json_is_string(type) || strcmp(json_string_value(type), "BPE"))))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "model: only BPE is supported");
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "model: BPE dropout is not supported");
    const char *affix[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(model, affix[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return vlm_error_set(err, VLM_E_UNSUPPORTED, "model: %s is not supported", affix[i]);
    }
    int rc = load_vocab(t, json_object_get(model, "vocab"), err);
    if (rc) return rc;
    json_t *merges = json_object_get(model, "merges");
    size_t nm = json_array_size(merges);
    if (merges && !json_is_array(merges)) return vlm_error_set(err, VLM_E_FORMAT, "model.merges: expected an array");
    if (nm > TOK_MAX_MERGES) return vlm_error_set(err, VLM_E_TOO_LARGE, "model.merges: %zu entries", nm);
    if (tok_merges_init(&t->merges, nm)) return nomem(err);
    for (size_t i = 0; i < nm; i++)
        if ((rc = load_merge(t, json_array_get(merges, i), i, err))) return rc;
    t->byte_fallback = json_flag(model, "byte_fallback");
    t->fuse_unk = json_flag(model, "fuse_unk");
    t->ignore_merges = json_flag(model, "ignore_merges");
    t->unk_id = -1;
    json_t *unk = json_object_get(model, "unk_token");
    if (unk && !json_is_null(unk)) {
        if (!json_is_string(unk) ||
            (t->unk_id = tok_strmap_get(&t->vocab, json_string_value(unk), json_string_length(unk))) < 0)
            return vlm_error_set(err, VLM_E_FORMAT, "model.unk_token: not in the vocabulary");
    }
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    if (t->byte_level) return load_byte_level(t, err);
    if ((rc = load_char_table(t, err))) return rc;
    return t->byte_fallback ? load_byte_fallback(t, err) : VLM_OK;
}

/* added_tokens: [{"id", "content", "special", "lstrip", "rstrip", "single_word", "normalized"}]. */
static int load_added(struct vlm_tokenizer *t, json_t *arr, struct vlm_error *err) {
    size_t n = json_array_size(arr);
    if (arr && !json_is_array(arr)) return vlm_error_set(err, VLM_E_FORMAT, "added_tokens: expected an array");
    if (n > TOK_MAX_VOCAB) return vlm_error_set(err, VLM_E_TOO_LARGE, "added_tokens: %zu entries", n);
    t->added = vlm_calloc(n + 1, sizeof *t->added);
    if (!t->added) return nomem(err);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array_get(arr, i), *id = json_object_get(a, "id");
        struct tok_added *d = &t->added[t->n_added];
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (json_int_t)TOK_MAX_VOCAB)
            return vlm_error_set(err, VLM_E_FORMAT, "added_tokens[%zu]: bad id", i);
        int rc = dup_json_str(json_object_get(a, "content"), &d->content, &d->len, "added_tokens.content", err);
        if (rc) return rc;
        t->n_added++;
        if (d->len == 0) return vlm_error_set(err, VLM_E_FORMAT, "added_tokens[%zu]: empty content", i);
        d->id = (int32_t)json_integer_value(id);
        d->special = (uint8_t)json_flag(a, "special");
        d->lstrip = (uint8_t)json_flag(a, "lstrip");
        d->rstrip = (uint8_t)json_flag(a, "rstrip");
        d->single_word = (uint8_t)json_flag(a, "single_word");
        d->normalized = (uint8_t)json_flag(a, "normalized");
    }
    return VLM_OK;
}

/* id -> added index table over all ids; duplicate added ids or spellings are errors. */
static int index_added(struct vlm_tokenizer *t, struct vlm_error *err) {
    size_t total = t->n_vocab;
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id + 1 > total) total = (size_t)t->added[i].id + 1;
    if (total > t->n_vocab + 2 * t->n_added + 65536)
        return vlm_error_set(err, VLM_E_FORMAT, "added_tokens: id %zu is far past the vocabulary", total - 1);
    t->n_total = total;
    vlm_free(t->added_of_id);
    t->added_of_id = vlm_malloc(total * sizeof *t->added_of_id);
    if (!t->added_of_id) return nomem(err);
    for (size_t i = 0; i < total; i++) t->added_of_id[i] = -1;
    for (size_t i = 0; i < t->n_added; i++) {
        if (t->added_of_id[t->added[i].id] >= 0)
            return vlm_error_set(err, VLM_E_FORMAT, "added_tokens: id %d used twice", t->added[i].id);
        t->added_of_id[t->added[i].id] = (int32_t)i;
    }
    tok_strmap_free(&t->added_map);
    vlm_free(t->added_keys);
    vlm_free(t->added_lens);
    t->added_keys = vlm_calloc(t->n_added + 1, sizeof *t->added_keys);
    t->added_lens = vlm_calloc(t->n_added + 1, sizeof *t->added_lens);
    if (!t->added_keys || !t->added_lens) return nomem(err);
    for (size_t i = 0; i < t->n_added; i++) {
        t->added_keys[i] = t->added[i].content;
        t->added_lens[i] = (uint32_t)t->added[i].len;
    }
    return tok_strmap_build(&t->added_map, t->added_keys, t->added_lens, t->n_added, err);
}

/* A tokenizer_config.json token field: "text", {"content": "text"} or null. */
static const char *config_token(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* added_tokens_decoder ({"id": {"content", "special", ...}}): marks listed tokens special and
 * adds the ones tokenizer.json lacks, as transformers does when it loads a folder. An entry
 * whose id already holds another added token is ignored. */
static int config_added(struct vlm_tokenizer *t, json_t *dec, struct vlm_error *err) {
    const char *key; json_t *val;
    size_t n = json_object_size(dec), grown = 0;
    if (!json_is_object(dec) || n == 0) return VLM_OK;
    if (n > TOK_MAX_VOCAB) return vlm_error_set(err, VLM_E_TOO_LARGE, "added_tokens_decoder: %zu entries", n);
    struct tok_added *na = vlm_realloc(t->added, (t->n_added + n + 1) * sizeof *na);
    if (!na) return nomem(err);
    t->added = na;
    json_object_foreach(dec, key, val) {
        char *end;
        long id = strtol(key, &end, 10);
        json_t *c = json_object_get(val, "content");
        if (*end || end == key || id < 0 || id >= (long)TOK_MAX_VOCAB || !json_is_string(c)) continue;
        int special = json_is_true(json_object_get(val, "special"));
        int32_t ai = (size_t)id < t->n_total ? t->added_of_id[id] : -1;
        if (ai >= 0) {
            if (!strcmp(t->added[ai].content, json_string_value(c)) && special) t->added[ai].special = 1;
            continue;
        }
        if (tok_strmap_get(&t->added_map, json_string_value(c), json_string_length(c)) >= 0) continue;
        int seen = 0;
        for (size_t k = t->n_added - grown; k < t->n_added && !seen; k++)
            seen = t->added[k].id == id || !strcmp(t->added[k].content, json_string_value(c));
        if (seen) continue;
        struct tok_added *d = &t->added[t->n_added];
        memset(d, 0, sizeof *d);
        int rc = dup_json_str(c, &d->content, &d->len, "added_tokens_decoder.content", err);
        if (rc) return rc;
        t->n_added++;
        if (d->len == 0) return vlm_error_set(err, VLM_E_FORMAT, "added_tokens_decoder: empty content");
        json_t *nz = json_object_get(val, "normalized");
        d->id = (int32_t)id;
        d->special = (uint8_t)special;
        d->lstrip = (uint8_t)json_flag(val, "lstrip");
        d->rstrip = (uint8_t)json_flag(val, "rstrip");
        d->single_word = (uint8_t)json_flag(val, "single_word");
        d->normalized = (uint8_t)(nz ? json_is_true(nz) : !special);
        grown++;
    }
    return grown ? index_added(t, err) : VLM_OK;
}

/* tokenizer_config.json as transformers reads it for a model folder: special flags from
 * added_tokens_decoder, BOS/EOS names, and add_bos_token/add_eos_token rebuilding the
 * post-processor template (also when the file has no post-processor). */
static int apply_config(struct vlm_tokenizer *t, json_t *cfg, struct vlm_error *err) {
    if (!json_is_object(cfg)) return vlm_error_set(err, VLM_E_FORMAT, "tokenizer_config.json: expected an object");
    int rc = config_added(t, json_object_get(cfg, "added_tokens_decoder"), err);
    if (rc) return rc;
    const char *bos = config_token(cfg, "bos_token"), *eos = config_token(cfg, "eos_token");
    int32_t bos_id = bos ? vlm_tokenizer_token_id(t, bos) : -1;
    int32_t eos_id = eos ? vlm_tokenizer_token_id(t, eos) : -1;
    json_t *ab = json_object_get(cfg, "add_bos_token"), *ae = json_object_get(cfg, "add_eos_token");
    if (ab || ae || !t->has_tmpl) {
        t->n_tmpl = 0;
        if (json_is_true(ab) && bos_id >= 0) t->tmpl[t->n_tmpl++] = bos_id;
        t->tmpl[t->n_tmpl++] = -1;
        if (json_is_true(ae) && eos_id >= 0) t->tmpl[t->n_tmpl++] = eos_id;
        t->has_tmpl = 1;
    }
    if (bos_id >= 0) t->bos_id = bos_id;
    if (eos_id >= 0) t->eos_id = eos_id;
    return VLM_OK;
}

/* BOS/EOS without a config: the special tokens before and after $A in the template. */
static void default_bos_eos(struct vlm_tokenizer *t) {
    t->bos_id = t->eos_id = -1;
    size_t a = 0;
    while (a < t->n_tmpl && t->tmpl[a] >= 0) a++;
    if (t->has_tmpl && a > 0) t->bos_id = t->tmpl[0];
    if (t->has_tmpl && a + 1 < t->n_tmpl) t->eos_id = t->tmpl[t->n_tmpl - 1];
}

static int parse_json(const char *data, size_t len, int config, const char *what, json_t **out,
                      struct vlm_error *err) {
    json_error_t je;
    if (len > TOK_MAX_JSON_BYTES) return vlm_error_set(err, VLM_E_TOO_LARGE, "%s: too large", what);
    /* the config holds numbers such as model_max_length = 1e30 that fit no integer */
    *out = json_loadb(data, len, JSON_REJECT_DUPLICATES | (config ? JSON_DECODE_INT_AS_REAL : 0), &je);
    if (!*out) return vlm_error_set(err, VLM_E_FORMAT, "%s: line %d: %s", what, je.line, je.text);
    return VLM_OK;
}

static int load_root(struct vlm_tokenizer *t, json_t *root, json_t *cfg, struct vlm_error *err) {
    if (!json_is_object(root)) return vlm_error_set(err, VLM_E_FORMAT, "tokenizer.json: expected an object");
    int rc = tok_parse_steps(t, root, err);
    if (!rc) rc = load_model(t, json_object_get(root, "model"), err);
    if (!rc) rc = load_added(t, json_object_get(root, "added_tokens"), err);
    if (!rc) rc = index_added(t, err);
    if (!rc) rc = tok_parse_post(t, json_object_get(root, "post_processor"), err);
    if (rc) return rc;
    default_bos_eos(t);
    if (cfg && (rc = apply_config(t, cfg, err))) return rc;
    if ((rc = tok_trie_build(&t->trie_raw, t->added, t->n_added, 0, err))) return rc;
    return tok_added_normalize_build(t, err);
}

int tok_load_json(json_t *root, json_t *cfg, struct vlm_tokenizer **out, struct vlm_error *err) {
    *out = NULL;
    struct vlm_tokenizer *t = vlm_calloc(1, sizeof *t);
    if (!t) return nomem(err);
    int rc = load_root(t, root, cfg, err);
    if (rc) { vlm_tokenizer_free(t); return rc; }
    *out = t;
    return VLM_OK;
}

int vlm_tokenizer_load_mem(const char *json, size_t json_len, const char *config, size_t config_len,
                           struct vlm_tokenizer **out, struct vlm_error *err) {
    *out = NULL;
    json_t *root = NULL, *cfg = NULL;
    int rc = parse_json(json, json_len, 0, "tokenizer.json", &root, err);
    if (!rc && config) rc = parse_json(config, config_len, 1, "tokenizer_config.json", &cfg, err);
    struct vlm_tokenizer *t = rc ? NULL : vlm_calloc(1, sizeof *t);
    if (!rc && !t) rc = nomem(err);
    if (!rc) rc = load_root(t, root, cfg, err);
    json_decref(root);
    json_decref(cfg);
    if (rc) { vlm_tokenizer_free(t); return rc; }
    *out = t;
    return VLM_OK;
}

int vlm_tokenizer_load(const char *json_path, const char *config_path,
                       struct vlm_tokenizer **out, struct vlm_error *err) {
    char *js = NULL, *cs = NULL;
    size_t jl = 0, cl = 0;
    *out = NULL;
    int rc = vlm_read_file(json_path, TOK_MAX_JSON_BYTES, &js, &jl, err);
    if (!rc && config_path) rc = vlm_read_file(config_path, TOK_MAX_JSON_BYTES, &cs, &cl, err);
    if (!rc) {
        rc = vlm_tokenizer_load_mem(js, jl, cs, cl, out, err);
        if (rc) vlm_error_prefix(err, "%s", json_path);
    }
    vlm_free(js);
    vlm_free(cs);
    return rc;
}

int vlm_tokenizer_load_dir(const char *dir, struct vlm_tokenizer **out, struct vlm_error *err) {
    char *jp = vlm_path_join(dir, "tokenizer.json"), *cp = vlm_path_join(dir, "tokenizer_config.json");
    int rc;
    if (!jp || !cp) rc = nomem(err);
    else if (!vlm_file_exists(jp)) rc = vlm_error_set(err, VLM_E_NOT_FOUND, "%s: no tokenizer.json", dir);
    else rc = vlm_tokenizer_load(jp, vlm_file_exists(cp) ? cp : NULL, out, err);
    vlm_free(jp);
    vlm_free(cp);
    return rc;
}

static void free_strs(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) vlm_free(v[i]);
    vlm_free(v);
}

void vlm_tokenizer_free(struct vlm_tokenizer *t) {
    if (!t) return;
    free_strs(t->pieces, t->n_vocab);
    free_strs(t->raw_keys, t->n_vocab);
    vlm_free(t->piece_len);
    vlm_free(t->raw_len);
    vlm_free(t->bmp_id);
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->raw);
    tok_strmap_free(&t->added_map);
    tok_merges_free(&t->merges);
    tok_steps_free(t);
    for (size_t i = 0; i < t->n_added; i++) { vlm_free(t->added[i].content); vlm_free(t->added[i].norm); }
    vlm_free(t->added);
    vlm_free(t->added_keys);
    vlm_free(t->added_lens);
    vlm_free(t->added_of_id);
    tok_trie_free(&t->trie_raw);
    tok_trie_free(&t->trie_norm);
    vlm_free(t);
}

size_t vlm_tokenizer_vocab_size(const struct vlm_tokenizer *t) { return t->n_total; }

int32_t vlm_tokenizer_token_id(const struct vlm_tokenizer *t, const char *piece) {
    size_t n = strlen(piece);
    int32_t i = tok_strmap_get(&t->added_map, piece, n);
    if (i >= 0) return t->added[i].id;
    return tok_strmap_get(&t->vocab, piece, n);
}

const char *tok_id_str(const struct vlm_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= t->n_total) return NULL;
    int32_t a = t->added_of_id[id];
    /* HF gives a normalized added token back in its normalized spelling */
    if (a >= 0 && t->added[a].normalized && t->added[a].norm) { *len = t->added[a].norm_len; return t->added[a].norm; }
    if (a >= 0) { *len = t->added[a].len; return t->added[a].content; }
    if ((size_t)id >= t->n_vocab || !t->pieces[id]) return NULL;
    *len = t->piece_len[id];
    return t->pieces[id];
}

const char *vlm_tokenizer_piece(const struct vlm_tokenizer *t, int32_t id) {
    size_t len;
    return tok_id_str(t, id, &len);
}

int vlm_tokenizer_is_special(const struct vlm_tokenizer *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->n_total || t->added_of_id[id] < 0) return 0;
    return t->added[t->added_of_id[id]].special;
}

int32_t vlm_tokenizer_bos_id(const struct vlm_tokenizer *t) { return t->bos_id; }
int32_t vlm_tokenizer_eos_id(const struct vlm_tokenizer *t) { return t->eos_id; }
const char *vlm_tokenizer_bos_token(const struct vlm_tokenizer *t) {
    const char *s = vlm_tokenizer_piece(t, t->bos_id);
    return s ? s : "";
}
const char *vlm_tokenizer_eos_token(const struct vlm_tokenizer *t) {
    const char *s = vlm_tokenizer_piece(t, t->eos_id);
    return s ? s : "";
}
