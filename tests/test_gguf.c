/* test_gguf.c — the GGUF reader: the regression file of each GGUF CVE class refused with an
 * error naming the file and offset, truncation at every offset of a real file refused, metadata
 * getters; the tokenizer built from GGUF metadata: ids identical to Hugging Face's for the real
 * SmolVLM tokenizer (llama.cpp's --vocab-only conversion) over the shared corpus, and for the
 * tiny fixtures' tokenizer; the chat template from metadata. */
#include "test.h"

#include <jansson.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#ifdef VLM_HAVE_LZMA
#include <lzma.h>
#endif

static char *read_rel(const char *rel, size_t *len) {
    char *raw = NULL;
    struct vlm_error err = {0};
    if (vlm_read_file(test_path(rel), (size_t)1 << 30, &raw, len, &err)) return NULL;
    return raw;
}

/* ---- the reader ---- */

static void regressions(void) {
    size_t len;
    char *list = read_rel("fuzz/regressions/gguf/expect.txt", &len);
    CHECK(list != NULL);
    int n = 0;
    for (char *line = list, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        const char *want = tab + 1;
        char rel[256];
        snprintf(rel, sizeof rel, "fuzz/regressions/gguf/%s", line);
        size_t fl;
        char *data = read_rel(rel, &fl);
        CHECK_MSG(data != NULL, "%s unreadable", rel);
        struct vlm_gguf g;
        struct vlm_error err = {0};
        int rc = data ? vlm_gguf_parse((const uint8_t *)data, fl, line, &g, &err) : VLM_E_IO;
        if (!*want) {
            CHECK_MSG(rc == VLM_OK, "%s: %s", line, err.msg);
            if (rc == VLM_OK) { CHECK_EQ_INT(g.n_tensors, 1); CHECK_EQ_STR(g.arch, "llama"); vlm_gguf_free(&g); }
        } else {
            CHECK_MSG(rc != VLM_OK, "%s: accepted", line);
            CHECK_MSG(strstr(err.msg, want) != NULL, "%s: message \"%s\" lacks \"%s\"", line, err.msg, want);
            CHECK_MSG(strstr(err.msg, line) != NULL && strstr(err.msg, "offset"), "%s: message \"%s\" names no file or offset", line, err.msg);
        }
        vlm_free(data);
        n++;
    }
    CHECK(n >= 25);
    vlm_free(list);
}

/* Every proper prefix of a real file is refused, and the error names the file. */
static void truncation(const char *rel) {
    size_t len;
    char *data = read_rel(rel, &len);
    CHECK(data != NULL);
    if (!data) return;
    struct vlm_gguf g;
    struct vlm_error err = {0};
    CHECK_MSG(vlm_gguf_parse((const uint8_t *)data, len, "t.gguf", &g, &err) == VLM_OK, "%s", err.msg);
    vlm_gguf_free(&g);
    size_t step = test_quick() ? 7 : 1, accepted = 0, unnamed = 0;
    for (size_t n = 0; n < len; n += step) {
        /* a fresh copy of exactly n bytes, so ASan sees any read past the end */
        char *cut = vlm_malloc(n ? n : 1);
        memcpy(cut, data, n);
        if (vlm_gguf_parse((const uint8_t *)cut, n, "t.gguf", &g, &err) == VLM_OK) { accepted++; vlm_gguf_free(&g); }
        else if (!strstr(err.msg, "t.gguf") || !strstr(err.msg, "offset")) unnamed++;
        vlm_free(cut);
    }
    CHECK_MSG(accepted == 0, "%s: %zu truncated copies accepted", rel, accepted);
    CHECK_MSG(unnamed == 0, "%s: %zu errors name no file/offset (last: %s)", rel, unnamed, err.msg);
    vlm_free(data);
}

static void getters(void) {
    size_t len;
    char *data = read_rel("tests/fixtures/gguf/rope-linear-f16.gguf", &len);
    struct vlm_gguf g;
    struct vlm_error err = {0};
    CHECK(data && vlm_gguf_parse((const uint8_t *)data, len, "rl.gguf", &g, &err) == VLM_OK);
    if (!data) return;
    long long v;
    double f;
    char *s = NULL;
    const struct vlm_gguf_kv *kv;
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_STR(g.arch, "llama");
    CHECK_EQ_INT(vlm_gguf_get_int(&g, "llama.block_count", 0, 1, 100, &v, &err), VLM_OK);
    CHECK_EQ_INT(v, 2);
    CHECK_EQ_INT(vlm_gguf_get_int(&g, "llama.block_count", 0, 3, 100, &v, &err), VLM_E_FORMAT);
    CHECK(strstr(err.msg, "llama.block_count") && strstr(err.msg, "rl.gguf"));
    CHECK_EQ_INT(vlm_gguf_get_int(&g, "general.name", 0, 0, 1, &v, &err), VLM_E_FORMAT);
    CHECK_EQ_INT(vlm_gguf_get_int(&g, "no.such.key", 42, 0, 100, &v, &err), VLM_OK);
    CHECK_EQ_INT(v, 42);
    CHECK_EQ_INT(vlm_gguf_get_num(&g, "llama.rope.scaling.factor", 0, 0, 100, &f, &err), VLM_OK);
    CHECK_NEAR(f, 4.0, 0);
    CHECK_EQ_INT(vlm_gguf_get_str(&g, "llama.rope.scaling.type", &s, &err), VLM_OK);
    CHECK_EQ_STR(s, "linear");
    vlm_free(s);
    CHECK_EQ_INT(vlm_gguf_get_arr(&g, "tokenizer.ggml.tokens", VLM_GGUF_STRING, &kv, &err), VLM_OK);
    CHECK(kv && kv->n == 320);
    CHECK_EQ_INT(vlm_gguf_get_arr(&g, "tokenizer.ggml.tokens", VLM_GGUF_I64, &kv, &err), VLM_E_FORMAT);
    const struct vlm_gguf_tensor *t = vlm_gguf_tensor(&g, "blk.1.attn_k.weight");
    CHECK(t && t->dtype == VLM_DT_F16 && t->n_dims == 2 && t->ne[0] == 48 && t->ne[1] == 24 && t->nbytes == 48 * 24 * 2);
    CHECK(vlm_gguf_tensor(&g, "blk.2.attn_k.weight") == NULL);
    CHECK_EQ_STR(vlm_gguf_type_name(14), "Q6_K");
    vlm_gguf_free(&g);
    vlm_free(data);
}

/* ---- the tokenizer from metadata ---- */

static struct vlm_tokenizer *tok_from(const char *data, size_t len, const char *name, char **tmpl) {
    struct vlm_gguf g;
    struct vlm_error err = {0};
    struct vlm_tokenizer *t = NULL;
    int rc = vlm_gguf_parse((const uint8_t *)data, len, name, &g, &err);
    if (rc == VLM_OK) rc = vlm_tokenizer_from_gguf(&g, &t, &err);
    if (rc == VLM_OK && tmpl) rc = vlm_gguf_get_str(&g, "tokenizer.chat_template", tmpl, &err);
    CHECK_MSG(rc == VLM_OK, "%s: %s", name, err.msg);
    vlm_gguf_free(&g);
    return t;
}

static void tiny_tokenizer(void) {
    size_t len, jl;
    char *data = read_rel("tests/fixtures/gguf/padded-tile-f32.gguf", &len), *tmpl = NULL;
    char *js = read_rel("tests/fixtures/gguf/tiny-tokenizer.json", &jl);
    struct vlm_tokenizer *t = data ? tok_from(data, len, "padded-tile-f32.gguf", &tmpl) : NULL;
    json_t *refs = js ? json_loadb(js, jl, 0, NULL) : NULL;
    CHECK(t && json_is_array(refs) && json_array_size(refs) >= 5);
    for (size_t i = 0; t && i < json_array_size(refs); i++) {
        json_t *r = json_array_get(refs, i), *want = json_object_get(r, "ids");
        const char *text = json_string_value(json_object_get(r, "text"));
        int32_t *ids = NULL;
        size_t n = 0;
        struct vlm_error err = {0};
        CHECK_EQ_INT(vlm_tokenize(t, text, strlen(text), VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL, &ids, &n, &err), VLM_OK);
        int same = n == json_array_size(want);
        for (size_t k = 0; same && k < n; k++) same = ids[k] == json_integer_value(json_array_get(want, k));
        CHECK_MSG(same, "tiny tokenizer: \"%s\": ids differ", text);
        vlm_free(ids);
    }
    if (t) {
        CHECK_EQ_INT(vlm_tokenizer_token_id(t, "<image>"), 300);
        CHECK(vlm_tokenizer_is_special(t, 300));
        CHECK(!vlm_tokenizer_is_special(t, vlm_tokenizer_token_id(t, "<plain_added>")));
        CHECK_EQ_STR(vlm_tokenizer_eos_token(t), "<end_of_utterance>");
    }
    /* the converter copies the chat template verbatim (SmolVLM's, as the demo model has it) */
    size_t sl;
    char *src = read_rel("models/vlm-demo/chat_template.jinja", &sl);
    CHECK(src && tmpl);
    if (src && tmpl) CHECK_EQ_STR(tmpl, src);
    struct vlm_template *tp = NULL;
    struct vlm_error err = {0};
    CHECK(tmpl && vlm_template_parse(tmpl, strlen(tmpl), &tp, &err) == VLM_OK);
    vlm_template_free(tp);
    vlm_free(src);
    vlm_free(tmpl);
    json_decref(refs);
    vlm_free(js);
    vlm_free(data);
    vlm_tokenizer_free(t);
}

#ifdef VLM_HAVE_LZMA
static char *read_xz(const char *rel, size_t *len) {
    size_t n;
    char *raw = read_rel(rel, &n);
    if (!raw) return NULL;
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK) { vlm_free(raw); return NULL; }
    size_t cap = n * 8 + 1024, used = 0;
    char *out = vlm_malloc(cap);
    s.next_in = (const uint8_t *)raw; s.avail_in = n;
    lzma_ret r = LZMA_OK;
    while (out && r == LZMA_OK) {
        if (used == cap) { cap *= 2; char *o = vlm_realloc(out, cap); if (!o) { vlm_free(out); out = NULL; break; } out = o; }
        s.next_out = (uint8_t *)out + used; s.avail_out = cap - used;
        r = lzma_code(&s, LZMA_FINISH);
        used = cap - s.avail_out;
    }
    lzma_end(&s);
    vlm_free(raw);
    if (r != LZMA_STREAM_END) { vlm_free(out); return NULL; }
    *len = used;
    return out;
}

struct rd { const uint8_t *p, *end; int bad; };
static uint32_t rd_u32(struct rd *r) {
    if (r->end - r->p < 4) { r->bad = 1; return 0; }
    uint32_t v; memcpy(&v, r->p, 4); r->p += 4; return v;
}
static const uint8_t *rd_bytes(struct rd *r, size_t n) {
    if ((size_t)(r->end - r->p) < n) { r->bad = 1; return NULL; }
    const uint8_t *p = r->p; r->p += n; return p;
}
struct list { const uint8_t *v; size_t n; };
static struct list rd_list(struct rd *r) {
    struct list l = {0};
    l.n = rd_u32(r);
    l.v = rd_bytes(r, l.n * 4);
    return l;
}
static int same_ids(const int32_t *a, size_t na, struct list b) {
    return na == b.n && (na == 0 || !memcmp(a, b.v, na * 4));
}

/* The SmolVLM tokenizer from GGUF against HF's ids on the shared corpus (format: see
 * scripts/make_tokenizer_fixtures.py): with special tokens added as AutoTokenizer does, with
 * special spellings parsed, as plain text; decode with and without special tokens. */
static void smolvlm_corpus(void) {
    size_t gl, cl, il;
    char *gg = read_xz("tests/fixtures/gguf/smolvlm-vocab.gguf.xz", &gl);
    char *corpus = read_xz("tests/fixtures/tokenizers/corpus.bin.xz", &cl);
    char *ib = read_xz("tests/fixtures/tokenizers/smolvlm.ids.bin.xz", &il);
    struct vlm_tokenizer *t = gg ? tok_from(gg, gl, "smolvlm-vocab.gguf", NULL) : NULL;
    CHECK(gg && corpus && ib && t);
    if (!gg || !corpus || !ib || !t) goto done;
    CHECK_EQ_INT(vlm_tokenizer_vocab_size(t), 49280);
    struct rd c = {(const uint8_t *)corpus, (const uint8_t *)corpus + cl, 0};
    struct rd r = {(const uint8_t *)ib, (const uint8_t *)ib + il, 0};
    rd_bytes(&c, 4); rd_bytes(&r, 4);
    uint32_t n = rd_u32(&c);
    CHECK_EQ_INT(rd_u32(&r), n);
    size_t step = test_quick() ? 7 : 1, tested = 0, bad[5] = {0};
    for (uint32_t i = 0; i < n && !c.bad && !r.bad; i++) {
        uint32_t len = rd_u32(&c);
        const char *text = (const char *)rd_bytes(&c, len);
        const uint8_t *flag = rd_bytes(&r, 1);
        struct list a = rd_list(&r), p = rd_list(&r), q = rd_list(&r), fo = a;
        if (flag && (*flag & 1)) fo = rd_list(&r);
        uint32_t dl = rd_u32(&r);
        const char *dec = (const char *)rd_bytes(&r, dl);
        uint32_t sl = rd_u32(&r);
        rd_bytes(&r, sl);
        if (c.bad || r.bad || i % step) continue;
        tested++;
        const int fl[3] = {VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL, VLM_TOK_PARSE_SPECIAL, 0};
        const struct list *want[3] = {&fo, &p, &q};
        for (int k = 0; k < 3; k++) {
            int32_t *ids = NULL;
            size_t m = 0;
            struct vlm_error err = {0};
            if (vlm_tokenize(t, text, len, fl[k], &ids, &m, &err) || !same_ids(ids, m, *want[k]))
                if (bad[k]++ < 3) fprintf(stderr, "smolvlm gguf: string %u mode %d: ids differ (%zu vs %zu)\n", i, k, m, want[k]->n);
            vlm_free(ids);
        }
        int32_t *pv = vlm_malloc(p.n * 4 + 4);
        if (p.n) memcpy(pv, p.v, p.n * 4);
        char *out = NULL;
        size_t ol = 0;
        struct vlm_error err = {0};
        if (vlm_detokenize(t, pv, p.n, 0, &out, &ol, &err) || ol != dl || memcmp(out, dec, dl))
            if (bad[3]++ < 3) fprintf(stderr, "smolvlm gguf: string %u: decode differs\n", i);
        vlm_free(out);
        vlm_free(pv);
    }
    printf("  smolvlm from GGUF: %zu corpus strings, mismatches %zu/%zu/%zu ids, %zu decode\n", tested, bad[0], bad[1], bad[2], bad[3]);
    CHECK(tested > 100);
    for (int k = 0; k < 4; k++) CHECK_EQ_INT(bad[k], 0);
done:
    vlm_tokenizer_free(t);
    vlm_free(gg);
    vlm_free(corpus);
    vlm_free(ib);
}
#endif

/* llama.cpp's own vocabulary test files (models/ggml-vocab-NAME.gguf + .inp/.out: texts and
 * the ids HF's AutoTokenizer gives with add_special_tokens=False), when VLM_LLAMACPP_MODELS
 * names that folder; they are not committed (llama.cpp's files, several MB). */
static void llamacpp_vocab(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, name);
    size_t gl, il, ol;
    char *gg = NULL, *inp = NULL, *out = NULL;
    struct vlm_error err = {0};
    if (vlm_read_file(path, (size_t)1 << 30, &gg, &gl, &err)) { printf("  %s: not found, skipped\n", path); return; }
    strncat(path, ".inp", sizeof path - strlen(path) - 1);
    int ok = vlm_read_file(path, 1u << 24, &inp, &il, &err) == VLM_OK;
    path[strlen(path) - 4] = 0;
    strncat(path, ".out", sizeof path - strlen(path) - 1);
    ok = ok && vlm_read_file(path, 1u << 24, &out, &ol, &err) == VLM_OK;
    struct vlm_tokenizer *t = ok ? tok_from(gg, gl, name, NULL) : NULL;
    size_t n = 0, bad = 0;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *ip = inp, *op = out;
    while (t && ip && *ip) {
        char *end = strstr(ip, sep), *oend = strchr(op, '\n');
        if (!end || !oend) break;
        int32_t *ids = NULL;
        size_t m = 0;
        int same = vlm_tokenize(t, ip, (size_t)(end - ip), VLM_TOK_PARSE_SPECIAL, &ids, &m, &err) == VLM_OK;
        char *q = op;
        for (size_t k = 0; same && k < m; k++) {
            char *e2;
            long v = strtol(q, &e2, 10);
            same = e2 != q && v == ids[k];
            q = e2;
        }
        while (same && q < oend && *q == ' ') q++;
        same = same && q == oend;
        if (!same && bad++ < 3) fprintf(stderr, "  %s: test %zu (\"%.40s\") ids differ\n", name, n, ip);
        vlm_free(ids);
        n++;
        ip = end + strlen(sep);
        op = oend + 1;
    }
    printf("  llama.cpp vocab %s: %zu texts, %zu differ\n", name, n, bad);
    CHECK(t && n > 10);
    CHECK_EQ_INT(bad, 0);
    vlm_tokenizer_free(t);
    vlm_free(gg);
    vlm_free(inp);
    vlm_free(out);
}

int main(void) {
    regressions();
    truncation("tests/fixtures/gguf/padded-tile-mmproj-f16.gguf");
    truncation("fuzz/regressions/gguf/ok-minimal.gguf");
    getters();
    tiny_tokenizer();
#ifdef VLM_HAVE_LZMA
    smolvlm_corpus();
#endif
    const char *lc = getenv("VLM_LLAMACPP_MODELS");
    if (lc) {
        static const char *const names[] = {"gpt-2", "llama-bpe", "qwen2", "llama-spm", "phi-3"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) llamacpp_vocab(lc, names[i]);
    }
    TEST_MAIN_END();
}
