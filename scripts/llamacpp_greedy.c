/* llamacpp_greedy.c — fixture generator (not product code): greedy continuations from
 * llama.cpp's libllama, as llama-simple/llama-completion run a raw prompt (BOS + the prompt's
 * tokens, no chat template), with the logit margin (top-1 minus top-2) at every step.
 * Built and run by scripts/make_gemma3_270m_fixture.py:
 *   cc -O2 scripts/llamacpp_greedy.c -I LLAMA/include -I LLAMA/ggml/include -L BUILD/bin -lllama -lggml -lggml-base
 *   ./llamacpp_greedy MODEL.gguf PROMPTS.txt N_TOKENS THREADS
 * PROMPTS.txt holds one prompt per line; for each prompt it prints
 *   prompt <i>\n  ids <prompt ids>\n  gen <generated ids>\n  margin <margin per generated step>\n
 * With N_TOKENS 0 it prints "n_tokens N": the whole file's length in tokens with BOS, as
 * llama-perplexity tokenizes its text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

/* Top-1 id and top-1 minus top-2 logit. */
static int top2(const float *l, int n, float *margin) {
    int a = 0, b = -1;
    for (int i = 1; i < n; i++) {
        if (l[i] > l[a]) { b = a; a = i; }
        else if (b < 0 || l[i] > l[b]) b = i;
    }
    *margin = l[a] - l[b];
    return a;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s MODEL PROMPTS N_TOKENS THREADS\n", argv[0]); return 2; }
    int n_gen = atoi(argv[3]), threads = atoi(argv[4]);
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    FILE *f = fopen(argv[2], "r");
    if (!f) { fprintf(stderr, "cannot open %s\n", argv[2]); return 1; }
    char line[8192];
    int k = 0;
    /* LLAMACPP_DUMP_LOGITS=FILE: each prompt's first-step logits (n_vocab f32) appended there */
    const char *dump_path = getenv("LLAMACPP_DUMP_LOGITS");
    FILE *dump = dump_path ? fopen(dump_path, "wb") : NULL;
    float *first = malloc(sizeof(float) * (size_t)n_vocab);
    if (n_gen == 0) {
        static char text[1 << 20];
        size_t len = fread(text, 1, sizeof text - 1, f);
        static llama_token all[1 << 18];
        printf("n_tokens %d\n", llama_tokenize(vocab, text, (int)len, all, 1 << 18, 1, 0));
        return 0;
    }
    while (fgets(line, sizeof line, f)) {
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        llama_token toks[4096];
        int n = llama_tokenize(vocab, line, (int)len, toks, 4096 - n_gen, 1, 0);
        if (n < 0) { fprintf(stderr, "prompt %d too long\n", k); return 1; }
        struct llama_context_params cp = llama_context_default_params();
        cp.n_ctx = (uint32_t)(n + n_gen + 8);
        cp.n_batch = cp.n_ctx;
        cp.n_threads = cp.n_threads_batch = threads;
        struct llama_context *ctx = llama_init_from_model(model, cp);
        if (!ctx) { fprintf(stderr, "cannot make a context\n"); return 1; }
        printf("prompt %d\nids", k++);
        for (int i = 0; i < n; i++) printf(" %d", toks[i]);
        int gen[1024];
        float margin[1024];
        struct llama_batch b = llama_batch_get_one(toks, n);
        for (int s = 0; s < n_gen; s++) {
            if (llama_decode(ctx, b)) { fprintf(stderr, "decode failed\n"); return 1; }
            const float *lg = llama_get_logits_ith(ctx, -1);
            if (s == 0) memcpy(first, lg, sizeof(float) * (size_t)n_vocab);
            gen[s] = top2(lg, n_vocab, &margin[s]);
            b = llama_batch_get_one(&gen[s], 1);
        }
        printf("\ngen");
        if (dump) fwrite(first, sizeof(float), (size_t)n_vocab, dump);
        for (int s = 0; s < n_gen; s++) printf(" %d", gen[s]);
        printf("\nmargin");
        for (int s = 0; s < n_gen; s++) printf(" %.5f", margin[s]);
        printf("\n");
        llama_free(ctx);
    }
    fclose(f);
    if (dump) fclose(dump);
    free(first);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
