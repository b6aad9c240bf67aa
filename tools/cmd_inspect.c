/* cmd_inspect.c — `vlm inspect MODEL_DIR`: what a model folder holds, as vlm.c loads it:
 * architecture and family, vision and text sizes, tensor count and bytes per dtype, weight
 * files, EOS/BOS/image token ids, tokenizer, chat template and processor presence. For a
 * .gguf file, its metadata and tensor types first (inspect_gguf.c). */
#include "commands.h"
#include "models/model.h"
#include "models/qwen25vl.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/file.h"
#include "vlm.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv) {
    const char *dir = NULL, *mmproj = NULL;
    struct vlm_model_ref ref = {0};
    char *resolved = NULL;
    for (int i = 1; i < argc; i++) {
        { int k_ = vlm_model_ref_flag(&ref, "inspect", argc, argv, &i); if (k_ < 0) return 2; if (k_) continue; }
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vlm inspect [MODEL | FILE.gguf [--mmproj MMPROJ.gguf]]\n\nLoads MODEL (default: the demo model) and prints its architecture,\n"
                   "sizes, tensor count and dtypes, special token ids and which text/image parts it has.\n"
                   "A .gguf file's metadata and tensor types are listed first (and the mmproj's); the model\n"
                   "summary follows when the file(s) load as a model.\n\n" VLM_MODEL_REF_HELP);
            return 0;
        }
        if (!strcmp(argv[i], "--mmproj") && i + 1 < argc) { mmproj = argv[++i]; continue; }
        if (argv[i][0] == '-' || dir) { fprintf(stderr, "vlm inspect: unexpected argument '%s'\n", argv[i]); return 2; }
        dir = argv[i];
    }
    if (!dir) dir = vlm_tool_default_model();
    if (vlm_model_ref_resolve("inspect", dir, &ref, true, &resolved)) return 1;
    dir = resolved;
    int gguf_file = vlm_file_exists(dir) && strlen(dir) > 5 && !strcmp(dir + strlen(dir) - 5, ".gguf");
    if (gguf_file && vlm_inspect_gguf(dir)) { vlm_free(resolved); return 1; }
    if (mmproj && vlm_inspect_gguf(mmproj)) { vlm_free(resolved); return 1; }
    struct vlm_model_params mp = vlm_model_default_params();
    mp.mmproj = mmproj;
    struct vlm_model *m;
    if (vlm_model_load(dir, &mp, &m) != VLM_OK) {
        fprintf(stderr, "vlm inspect: %s\n", vlm_last_error());
        return gguf_file ? 0 : 1;   /* a lone text .gguf was listed; it needs its mmproj to load */
    }
    printf("\n");
    const struct vlm_model_info *mi = &m->info;
    printf("model          %s\narchitecture   %s (model_type %s)\n", dir, mi->arch, m->cfg.model_type);
    if (m->family->describe) m->family->describe(m, stdout);
    size_t bytes[VLM_DT_COUNT] = {0}, count[VLM_DT_COUNT] = {0};
    for (size_t i = 0; i < m->weights.n; i++) {
        int ty = m->weights.w[i].t.type;
        if (ty >= 0 && ty < VLM_DT_COUNT) { bytes[ty] += m->weights.w[i].t.nbytes; count[ty]++; }
    }
    printf("tensors        %zu in %d file(s), %.1f MiB\n", m->weights.n, m->weights.n_files, mi->weight_bytes / 1048576.0);
    for (int t = 0; t < VLM_DT_COUNT; t++)
        if (count[t]) printf("               %-5s %5zu tensors  %9.1f MiB\n", vlm_dtype_name((enum vlm_dtype)t), count[t], bytes[t] / 1048576.0);
    printf("tokens         bos %d, eos", mi->bos_id);
    for (int i = 0; i < mi->n_eos; i++) printf(" %d", mi->eos_ids[i]);
    printf(", image %d\n", mi->image_token_id);
    printf("tokenizer      %s", m->tok ? (gguf_file || mmproj ? "from GGUF metadata" : "tokenizer.json") : "none");
    if (m->tok) printf(" (%zu tokens)", vlm_tokenizer_vocab_size(m->tok));
    printf("\nchat template  %s\nprocessor      %s\n", m->tmpl ? "yes" : "none", m->proc ? "yes" : "none");
    vlm_model_free(m);
    vlm_free(resolved);
    return 0;
}
