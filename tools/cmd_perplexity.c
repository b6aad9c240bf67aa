/* cmd_perplexity.c — `vlm perplexity MODEL -f FILE [-c N]`: the perplexity of a text file as
 * llama.cpp's llama-perplexity measures it (engine/perplexity.c), printed the same way: the
 * running figure after each chunk, then "Final estimate: PPL = X +/- E". */
#include "commands.h"
#include "engine/engine.h"
#include "engine/perplexity.h"
#include "serve_args.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "vlm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT_BYTES (256u << 20)

static void usage(FILE *f) {
    fprintf(f, "usage: vlm perplexity MODEL -f FILE [-c N] [--chunks N] [--threads N] [options]\n\n"
               "Perplexity of the text in FILE as llama.cpp's llama-perplexity computes it: the text is\n"
               "tokenized with BOS, cut into chunks of N tokens; each chunk runs alone with BOS as its\n"
               "first token and only its second half is scored. Prints the running perplexity after\n"
               "each chunk ([i]PPL) and \"Final estimate: PPL = X +/- E\".\n"
               "  -f, --file FILE     the text (needs at least 2N tokens)\n"
               "  -c, --ctx-size N    tokens per chunk (default 512, as llama-perplexity)\n"
               "  --chunks N          at most N chunks (default: all)\n"
               "  --threads N         threads (default: all cores)\n"
               "  --mmproj FILE       the vision file of a .gguf model (not used for the measurement)\n"
               "  --dtype T           auto, float32, bfloat16, float16\n"
               "  --quantization Q    quantize on load: q8_0, q4_k, q5_k, q6_k, q4_0, q4_1, q5_0, q5_1\n"
               "  --kv-cache-dtype T  auto, float32, float16, bfloat16\n\n" VLM_MODEL_REF_HELP);
}

static const char *const ppl_flags[] = {"--file", "--ctx-size", "--chunks", "--threads", "--mmproj", "--dtype",
                                        "--quantization", "--kv-cache-dtype", "--help"};

static void on_chunk(int c, int n, double ppl, void *user) {
    (void)user;
    printf("[%d]%.4f,", c + 1, ppl);
    if (c + 1 == n || (c + 1) % 16 == 0) printf("\n");
    fflush(stdout);
}

/* Parses a positive int flag value; 0 on success. */
static int pos_int(const char *flag, const char *v, int *out) {
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || x <= 0 || x > (1 << 24)) { fprintf(stderr, "vlm perplexity: %s needs a positive integer\n", flag); return 2; }
    *out = (int)x;
    return 0;
}

static int run(struct vlm_model *m, const char *file, int n_ctx, int n_chunks, int threads, enum vlm_kv_dtype kvt) {
    struct vlm_error err;
    char *text = NULL;
    size_t len = 0, n_ids = 0, n_empty = 0;
    int32_t *ids = NULL, *empty = NULL;
    const struct vlm_tokenizer *tok = vlm_model_tokenizer(m);
    if (vlm_read_file(file, MAX_TEXT_BYTES, &text, &len, &err) != VLM_OK) { fprintf(stderr, "vlm perplexity: %s\n", err.msg); return 1; }
    int rc = vlm_tokenize(tok, text, len, VLM_TOK_ADD_SPECIAL, &ids, &n_ids, &err);
    /* BOS replaces each chunk's first token when the tokenizer adds one (add_bos_token). */
    if (rc == VLM_OK) rc = vlm_tokenize(tok, "", 0, VLM_TOK_ADD_SPECIAL, &empty, &n_empty, &err);
    vlm_free(text);
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    int32_t bos = rc == VLM_OK && n_empty >= 1 && empty[0] == mi->bos_id ? mi->bos_id : -1;
    vlm_free(empty);
    struct vlm_ctx *ctx = NULL;
    if (rc == VLM_OK) {
        if (n_chunks > 0 && n_ids > (size_t)n_chunks * n_ctx) n_ids = (size_t)n_chunks * n_ctx;
        fprintf(stderr, "perplexity: %zu tokens, %zu chunks of %d, scoring %d tokens each\n", n_ids, n_ids / (size_t)n_ctx,
                n_ctx, n_ctx - n_ctx / 2 - 1);
        struct vlm_ctx_params cp = vlm_ctx_default_params();
        cp.n_seq_max = 1;
        cp.n_ctx = n_ctx;
        cp.n_batch_max = n_ctx;
        cp.n_threads = threads;
        cp.kv_dtype = kvt;
        rc = vlm_ctx_new(m, &cp, &ctx, &err);
    }
    struct vlm_ppl_result r;
    if (rc == VLM_OK) rc = vlm_perplexity(ctx, ids, n_ids, n_ctx, bos, on_chunk, NULL, &r, &err);
    if (rc == VLM_OK) printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
    else fprintf(stderr, "vlm perplexity: %s: %s\n", file, err.msg);
    vlm_ctx_free(ctx);
    vlm_free(ids);
    return rc == VLM_OK ? 0 : 1;
}

int cmd_perplexity(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *kv = "auto";
    int n_ctx = 512, n_chunks = 0, threads = 0;
    struct vlm_model_params mp = vlm_model_default_params();
    struct vlm_model_ref ref = {0};
    for (int i = 1; i < argc; i++) {
        { int k_ = vlm_model_ref_flag(&ref, "perplexity", argc, argv, &i); if (k_ < 0) return 2; if (k_) continue; }
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && v) { file = v; i++; }
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) { bad = pos_int(a, v, &n_ctx); i++; }
        else if (!strcmp(a, "--chunks")) { bad = pos_int(a, v, &n_chunks); i++; }
        else if (!strcmp(a, "--threads") || !strcmp(a, "-t")) { bad = pos_int(a, v, &threads); i++; }
        else if (!strcmp(a, "--mmproj") && v) { mp.mmproj = v; i++; }
        else if (!strcmp(a, "--dtype") && v) { mp.dtype = v; i++; }
        else if ((!strcmp(a, "--quantization") || !strcmp(a, "-q")) && v) { mp.quantization = v; i++; }
        else if (!strcmp(a, "--kv-cache-dtype") && v) { kv = v; i++; }
        else if (a[0] != '-' && !dir) dir = a;
        else {
            const char *near = a[0] == '-' ? vlm_nearest_flag(a, ppl_flags, (int)(sizeof ppl_flags / sizeof ppl_flags[0])) : NULL;
            if (near && strcmp(near, a)) fprintf(stderr, "vlm perplexity: unknown option '%s'; did you mean %s?\n\n", a, near);
            else fprintf(stderr, "vlm perplexity: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        if (bad) return bad;
    }
    enum vlm_kv_dtype kvt;
    if (vlm_kv_dtype_parse(kv, &kvt)) { fprintf(stderr, "vlm perplexity: --kv-cache-dtype %s is not known\n", kv); return 2; }
    if (!dir || !file) { fprintf(stderr, "vlm perplexity: MODEL and -f FILE are required\n\n"); usage(stderr); return 2; }
    char *resolved = NULL;
    if (vlm_model_ref_resolve("perplexity", dir, &ref, true, &resolved)) return 1;
    mp.n_threads = threads;
    struct vlm_model *m = NULL;
    int rc = 0;
    if (vlm_model_load(resolved, &mp, &m) != VLM_OK) {
        fprintf(stderr, "vlm perplexity: %s\n", vlm_last_error());
        rc = 1;
    } else if (!vlm_model_tokenizer(m)) {
        fprintf(stderr, "vlm perplexity: %s: the model has no tokenizer\n", resolved);
        rc = 1;
    } else {
        rc = run(m, file, n_ctx, n_chunks, threads, kvt);
    }
    vlm_model_free(m);
    vlm_free(resolved);
    return rc;
}
