/* tok_gguf.c — a tokenizer from GGUF metadata (tokenizer.ggml.*) as llama.cpp's converter
 * writes it: the token list, types and merges become the tokenizer.json the model's Hugging
 * Face tokenizer has, with the pre-tokenizer steps llama.cpp's pre name stands for, and go
 * through the same hardened loader as a tokenizer.json. */
#include <jansson.h>
#include <string.h>

#include "formats/gguf.h"
#include "text/tok_gguf.h"
#include "text/tok_internal.h"
#include "util/error.h"

/* llama.cpp's token types. */
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

#define GPT2_SPLIT "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}%s| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* A llama.cpp pre-tokenizer name and the Hugging Face pre_tokenizer it stands for. */
struct pre_row {
    const char *names[4];
    const char *json;        /* the pre_tokenizer object */
    int ignore_merges;       /* as llama.cpp and the HF tokenizers of these models */
    int add_bos;             /* llama.cpp's default when add_bos_token is absent */
};

static const struct pre_row pre_rows[] = {
    {{"smollm"}, "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true},"
                 "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}]}", 0, 0},
    {{"gpt2", "gpt-2", "default"}, "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}", 0, 0},
    {{"llama-bpe", "llama3", "llama-v3"}, "L", 1, 1},
    {{"qwen2"}, "Q", 0, 0},
};

static json_t *split_bytelevel(const char *digits) {
    char re[512];
    snprintf(re, sizeof re, GPT2_SPLIT, digits);
    return json_pack("{s:s,s:[{s:s,s:{s:s},s:s,s:b},{s:s,s:b,s:b,s:b}]}", "type", "Sequence", "pretokenizers",
                     "type", "Split", "pattern", "Regex", re, "behavior", "Isolated", "invert", 0,
                     "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 0, "use_regex", 0);
}

/* SentencePiece files: no pre-tokenizer; llama.cpp adds BOS by default. */
static const struct pre_row spm_row = {{"llama"}, NULL, 0, 1};

static const struct pre_row *find_pre(const char *name) {
    for (size_t i = 0; i < sizeof pre_rows / sizeof pre_rows[0]; i++)
        for (int k = 0; k < 4 && pre_rows[i].names[k]; k++)
            if (!strcmp(name, pre_rows[i].names[k])) return &pre_rows[i];
    return NULL;
}

static json_t *pre_json(const struct pre_row *r) {
    if (!strcmp(r->json, "L")) return split_bytelevel("{1,3}");
    if (!strcmp(r->json, "Q")) return split_bytelevel("");
    return json_loads(r->json, 0, NULL);
}

struct build {
    const struct vlm_gguf *g;
    json_t *vocab, *added, *merges;
    uint64_t n_tok;
    int spm;                 /* SentencePiece: every piece in the vocabulary, merges from scores */
    const char **pieces;     /* spm: (n_tok) token spellings (into the file), NULL for UNUSED */
    size_t *lens;
    long long unk;           /* spm: the UNKNOWN token's id or -1 */
    struct vlm_error *err;
};

static int oom(struct vlm_error *err) { return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }

/* tokens + token_type -> model.vocab and added_tokens. */
static int add_tokens(struct build *b) {
    const struct vlm_gguf_kv *tk, *ty;
    int rc = vlm_gguf_get_arr(b->g, "tokenizer.ggml.tokens", VLM_GGUF_STRING, &tk, b->err);
    if (!rc) rc = vlm_gguf_get_arr(b->g, "tokenizer.ggml.token_type", VLM_GGUF_I64, &ty, b->err);
    if (rc) return rc;
    if (!tk || tk->n == 0 || tk->n > TOK_MAX_VOCAB)
        return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.tokens is missing or holds %llu tokens",
                             b->g->fname, tk ? (unsigned long long)tk->n : 0ull);
    if (ty && ty->n != tk->n)
        return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries for %llu tokens",
                             b->g->fname, (unsigned long long)ty->n, (unsigned long long)tk->n);
    b->n_tok = tk->n;
    size_t pos = tk->offset;
    for (uint64_t i = 0; i < tk->n; i++) {
        const char *s;
        size_t len;
        vlm_gguf_arr_str(b->g, &pos, &s, &len);
        int64_t type = ty ? vlm_gguf_arr_int(ty, i) : TT_NORMAL;
        if (type == TT_UNUSED && !b->spm) continue;   /* the converter's [PAD] fillers */
        if (len == 0 || len > TOK_MAX_TOKEN_BYTES || memchr(s, 0, len))
            return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.tokens[%llu] is empty, too long or holds a NUL",
                                 b->g->fname, (unsigned long long)i);
        json_t *str = json_stringn(s, len);
        if (!str) return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.tokens[%llu] is not UTF-8", b->g->fname, (unsigned long long)i);
        if (type == TT_UNKNOWN && b->unk < 0) b->unk = (long long)i;
        int added = type == TT_CONTROL || type == TT_USER_DEFINED || (b->spm && type == TT_UNKNOWN);
        if (added) {
            json_t *a = json_pack("{s:I,s:O,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)i, "content", str,
                                  "special", type != TT_USER_DEFINED, "normalized", 0, "lstrip", 0, "rstrip", 0, "single_word", 0);
            if (!a || json_array_append_new(b->added, a)) { json_decref(str); return oom(b->err); }
        }
        json_decref(str);
        if (added && !b->spm) continue;
        if (b->spm) { b->pieces[i] = s; b->lens[i] = len; }
        int dup = json_object_getn(b->vocab, s, len) != NULL;
        if (dup) return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.tokens[%llu] repeats an earlier token", b->g->fname, (unsigned long long)i);
        if (json_object_setn_new(b->vocab, s, len, json_integer((json_int_t)i))) return oom(b->err);
    }
    return VLM_OK;
}

static int add_merges(struct build *b) {
    const struct vlm_gguf_kv *m;
    int rc = vlm_gguf_get_arr(b->g, "tokenizer.ggml.merges", VLM_GGUF_STRING, &m, b->err);
    if (rc || !m) return rc;
    if (m->n > TOK_MAX_MERGES) return vlm_error_set(b->err, VLM_E_TOO_LARGE, "%s: %llu merges", b->g->fname, (unsigned long long)m->n);
    size_t pos = m->offset;
    for (uint64_t i = 0; i < m->n; i++) {
        const char *s;
        size_t len;
        vlm_gguf_arr_str(b->g, &pos, &s, &len);
        json_t *str = json_stringn(s, len);
        if (!str) return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not UTF-8", b->g->fname, (unsigned long long)i);
        if (json_array_append_new(b->merges, str)) return oom(b->err);
    }
    return VLM_OK;
}

/* SentencePiece: the merges from tokenizer.ggml.scores. */
static int spm_merges(struct build *b) {
    const struct vlm_gguf_kv *sc;
    int rc = vlm_gguf_get_arr(b->g, "tokenizer.ggml.scores", VLM_GGUF_F32, &sc, b->err);
    if (rc) return rc;
    if (!sc || sc->n != b->n_tok)
        return vlm_error_set(b->err, VLM_E_FORMAT, "%s: tokenizer.ggml.scores must hold one f32 per token", b->g->fname);
    float *scores = vlm_malloc(sizeof(float) * (size_t)b->n_tok);
    if (!scores) return oom(b->err);
    for (uint64_t i = 0; i < b->n_tok; i++) scores[i] = (float)vlm_gguf_arr_num(sc, i);
    rc = tok_gguf_spm_merges(b->pieces, b->lens, scores, (size_t)b->n_tok, b->vocab, b->merges, b->err);
    vlm_free(scores);
    return rc;
}

/* SentencePiece's text steps as HF writes them for a Llama-style tokenizer: spaces to U+2581
 * (and one prepended when add_space_prefix, llama.cpp's default for these files), and back. */
static int spm_steps(struct build *b, json_t *root) {
    int prefix, rc = vlm_gguf_get_bool(b->g, "tokenizer.ggml.add_space_prefix", 1, &prefix, b->err);
    if (rc) return rc;
    json_t *rep = json_pack("{s:s,s:{s:s},s:s}", "type", "Replace", "pattern", "String", " ", "content", "\u2581");
    json_t *norm = prefix ? json_pack("{s:s,s:[{s:s,s:s},o]}", "type", "Sequence", "normalizers", "type", "Prepend",
                                      "prepend", "\u2581", rep)
                          : rep;
    json_t *dec = json_pack("{s:s,s:[{s:s,s:{s:s},s:s},{s:s},{s:s},{s:s,s:s,s:i,s:i}]}", "type", "Sequence", "decoders",
                            "type", "Replace", "pattern", "String", "\u2581", "content", " ", "type", "ByteFallback",
                            "type", "Fuse", "type", "Strip", "content", " ", "start", prefix, "stop", 0);
    if (!norm || !dec || json_object_set_new(root, "normalizer", norm) || json_object_set_new(root, "decoder", dec))
        return oom(b->err);
    return VLM_OK;
}

/* The special-token id under key (-1 when absent), checked against the vocabulary. */
static int special_id(struct build *b, const char *key, long long *id) {
    return vlm_gguf_get_int(b->g, key, -1, -1, (long long)b->n_tok - 1, id, b->err);
}

/* tokenizer_config.json's part: BOS/EOS spellings and whether BOS/EOS are added. */
static int config(struct build *b, const struct pre_row *pre, json_t *cfg) {
    long long bos, eos;
    int add_bos, add_eos, rc;
    if ((rc = special_id(b, "tokenizer.ggml.bos_token_id", &bos)) || (rc = special_id(b, "tokenizer.ggml.eos_token_id", &eos)) ||
        (rc = vlm_gguf_get_bool(b->g, "tokenizer.ggml.add_bos_token", pre->add_bos, &add_bos, b->err)) ||
        (rc = vlm_gguf_get_bool(b->g, "tokenizer.ggml.add_eos_token", 0, &add_eos, b->err)))
        return rc;
    const char *tok_key[2] = {"bos_token", "eos_token"};
    long long ids[2] = {bos, eos};
    const struct vlm_gguf_kv *tk = vlm_gguf_find(b->g, "tokenizer.ggml.tokens");
    for (int k = 0; k < 2; k++) {
        if (ids[k] < 0) continue;
        size_t pos = tk->offset, len = 0;
        const char *s = NULL;
        for (long long i = 0; i <= ids[k]; i++) vlm_gguf_arr_str(b->g, &pos, &s, &len);
        if (json_object_set_new(cfg, tok_key[k], json_stringn(s, len))) return oom(b->err);
    }
    if (json_object_set_new(cfg, "add_bos_token", json_boolean(add_bos)) ||
        json_object_set_new(cfg, "add_eos_token", json_boolean(add_eos)))
        return oom(b->err);
    return VLM_OK;
}

static int build(const struct vlm_gguf *g, json_t *root, json_t *cfg, struct vlm_error *err) {
    char *model = NULL, *pre = NULL;
    int rc = vlm_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
    if (!rc) rc = vlm_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err);
    const struct pre_row *row = NULL;
    int spm = !rc && model && !strcmp(model, "llama");
    if (!rc && !spm && (!model || strcmp(model, "gpt2")))
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tokenizer.ggml.model \"%.32s\" is not supported (gpt2, llama)", g->fname, model ? model : "");
    if (!rc && spm) row = &spm_row;
    if (!rc && !spm && !(row = find_pre(pre ? pre : "default")))
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tokenizer.ggml.pre \"%.32s\" is not supported (smollm, gpt2, gpt-2, llama-bpe, qwen2)", g->fname, pre);
    vlm_free(model);
    vlm_free(pre);
    if (rc) return rc;
    struct build b = {g, json_object(), json_array(), json_array(), 0, spm, NULL, NULL, -1, err};
    json_t *m = json_pack("{s:s,s:o,s:o,s:b,s:b,s:b}", "type", "BPE", "vocab", b.vocab, "merges", b.merges,
                          "ignore_merges", row->ignore_merges, "byte_fallback", spm, "fuse_unk", spm);
    if (!m || json_object_set_new(root, "model", m) || json_object_set_new(root, "added_tokens", b.added))
        return oom(err);
    if (!spm && (json_object_set_new(root, "pre_tokenizer", pre_json(row)) ||
                 json_object_set_new(root, "decoder", json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                                                                "trim_offsets", 1, "use_regex", 1))))
        return oom(err);
    const struct vlm_gguf_kv *tk = vlm_gguf_find(g, "tokenizer.ggml.tokens");
    size_t n = tk && tk->type == VLM_GGUF_ARRAY && tk->n <= TOK_MAX_VOCAB ? (size_t)tk->n : 0;
    if (spm && n) {
        b.pieces = vlm_calloc(n, sizeof *b.pieces);
        b.lens = vlm_calloc(n, sizeof *b.lens);
        if (!b.pieces || !b.lens) rc = oom(err);
    }
    if (!rc) rc = add_tokens(&b);
    if (!rc) rc = spm ? spm_merges(&b) : add_merges(&b);
    if (!rc && spm) rc = spm_steps(&b, root);
    if (!rc && spm && b.unk >= 0 && json_object_set_new(m, "unk_token", json_stringn(b.pieces[b.unk], b.lens[b.unk])))
        rc = oom(err);
    vlm_free(b.pieces);
    vlm_free(b.lens);
    return rc ? rc : config(&b, row, cfg);
}

int vlm_tokenizer_from_gguf(const struct vlm_gguf *g, struct vlm_tokenizer **out, struct vlm_error *err) {
    *out = NULL;
    json_t *root = json_object(), *cfg = json_object();
    int rc = root && cfg ? build(g, root, cfg, err) : oom(err);
    if (!rc && (rc = tok_load_json(root, cfg, out, err)) != VLM_OK)
        vlm_error_prefix(err, "%s: tokenizer.ggml.*", g->fname);
    json_decref(root);
    json_decref(cfg);
    return rc;
}
