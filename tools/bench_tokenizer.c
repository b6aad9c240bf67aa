/* bench_tokenizer.c — `vlm bench --tokenizer`: single-thread encoding speed of a tokenizer
 * over a text file, one document per line, printed as one JSON line (tokens/s). */
#include "commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench_usage(FILE *f, int rc) {
    fprintf(f, "usage: vlm bench --tokenizer MODEL_DIR|tokenizer.json --file TEXT [--repeat N] [--no-special]\n"
               "  encodes every line of TEXT (without its newline) on one thread; prints tokens/s\n");
    return rc;
}

int vlm_bench_tokenizer(int argc, char **argv) {
    const char *path = NULL, *file = NULL;
    long repeat = 1;
    int flags = VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = strtol(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--no-special")) flags &= ~VLM_TOK_ADD_SPECIAL;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return bench_usage(stdout, 0);
        else return bench_usage(stderr, 2);
    }
    if (!path || !file || repeat < 1) return bench_usage(stderr, 2);
    struct vlm_error err = {0};
    struct vlm_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    double t0 = now_s();
    int rc = vlm_dir_exists(path) ? vlm_tokenizer_load_dir(path, &tok, &err) : vlm_tokenizer_load(path, NULL, &tok, &err);
    double t_load = now_s() - t0;
    if (!rc) rc = vlm_read_file(file, (size_t)1 << 31, &text, &len, &err);
    size_t total = 0, docs = 0;
    double best = 0;
    for (long r = 0; !rc && r < repeat; r++) {
        size_t count = 0, nd = 0;
        double t1 = now_s();
        for (size_t pos = 0; !rc && pos < len;) {
            const char *nl = memchr(text + pos, '\n', len - pos);
            size_t end = nl ? (size_t)(nl - text) : len;
            int32_t *ids = NULL;
            size_t n = 0;
            rc = vlm_tokenize(tok, text + pos, end - pos, flags, &ids, &n, &err);
            vlm_free(ids);
            count += n; nd++;
            pos = end + 1;
        }
        double dt = now_s() - t1;
        if (!rc && (best == 0 || dt < best)) best = dt;
        total = count; docs = nd;
    }
    if (rc) fprintf(stderr, "vlm bench --tokenizer: %s\n", err.msg);
    else printf("{\"impl\": \"vlm\", \"docs\": %zu, \"bytes\": %zu, \"tokens\": %zu, \"seconds\": %.4f, "
                "\"tokens_per_s\": %.0f, \"load_seconds\": %.3f}\n",
                docs, len, total, best, best > 0 ? (double)total / best : 0.0, t_load);
    vlm_free(text);
    vlm_tokenizer_free(tok);
    return rc ? 1 : 0;
}

int cmd_bench_tokenizer(int argc, char **argv) { return vlm_bench_tokenizer(argc, argv); }
