/* cmd_quantize.c — `vlm quantize SRC OUT.gguf --type T [--mmproj-out MMPROJ.gguf]`: a model folder
 * written as the GGUF pair llama.cpp's convert_hf_to_gguf.py + llama-quantize make (same names,
 * Q/K row order, metadata, per-tensor type mix), which llama.cpp and vlm.c both load. */
#include "commands.h"
#include "models/gguf_export.h"
#include "util/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlm quantize SRC_DIR OUT.gguf --type TYPE [--mmproj-out MMPROJ.gguf] [options]\n\n"
            "Writes SRC_DIR (config.json, *.safetensors, tokenizer.json) as llama.cpp's text GGUF\n"
            "and, with --mmproj-out, its vision \"mmproj\" GGUF, laid out as convert_hf_to_gguf.py\n"
            "(f32/f16/bf16/q8_0) and llama-quantize (q4_0, q4_k_m, q5_k_m) would.\n\n"
            "  --type T            f32 | f16 | bf16 | q8_0 | q4_0 | q4_k_m | q5_k_m\n"
            "  --mmproj-out F      also write the vision tower + projector to F\n"
            "  --mmproj-type T     f32 | f16 | bf16 | q8_0 (default: f16 for q4_0/q4_k_m/q5_k_m, else --type)\n"
            "  --tokenizer-pre P   llama.cpp's pre-tokenizer name when it is not recognised\n"
            "  --threads N         quantization threads (default 2)\n"
            "  -v, --verbose       one line per tensor\n");
}

int cmd_quantize(int argc, char **argv) {
    struct vlm_gguf_export_params p = {0};
    p.ftype = -1;
    p.mmproj_ftype = -1;
    p.n_threads = 2;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) { p.verbose = 1; continue; }
        if (a[0] == '-' && !v) { fprintf(stderr, "vlm quantize: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--type")) {
            if ((p.ftype = vlm_gguf_ftype_parse(v)) < 0) { fprintf(stderr, "vlm quantize: unknown --type '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--mmproj-type")) {
            if ((p.mmproj_ftype = vlm_gguf_ftype_parse(v)) < 0) { fprintf(stderr, "vlm quantize: unknown --mmproj-type '%s'\n", v); return 2; }
        } else if (!strcmp(a, "--mmproj-out")) {
            p.mmproj_out = v;
        } else if (!strcmp(a, "--tokenizer-pre")) {
            p.tokenizer_pre = v;
        } else if (!strcmp(a, "--threads")) {
            char *end;
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1024) { fprintf(stderr, "vlm quantize: --threads must be 1..1024\n"); return 2; }
            p.n_threads = (int)n;
        } else if (a[0] == '-' || npos == 2) {
            fprintf(stderr, "vlm quantize: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            pos[npos++] = a;
            continue;
        }
        i++;
    }
    if (npos != 2 || p.ftype < 0) { usage(stderr); return 2; }
    p.src_dir = pos[0];
    p.out = pos[1];
    struct vlm_error err;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (vlm_gguf_export(&p, &err) != VLM_OK) {
        fprintf(stderr, "vlm quantize: %s\n", err.msg);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "vlm quantize: wrote %s%s%s (%s) in %.1f s\n", p.out, p.mmproj_out ? " and " : "",
            p.mmproj_out ? p.mmproj_out : "", vlm_gguf_ftype_name(p.ftype),
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}
