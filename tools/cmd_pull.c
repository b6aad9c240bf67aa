/* cmd_pull.c — `vlm pull org/name [--revision R]`: downloads what a model needs into the shared
 * Hugging Face cache without serving it (for login nodes), then prints the snapshot folder. */
#include "commands.h"
#include "hub/hub.h"
#include "util/alloc.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: vlm pull MODEL [--revision R] [--hf-token T] [--download-dir D] [--allow-pattern G]...\n\n"
               "Downloads the files a model needs (config, weights, tokenizer, processor, chat template)\n"
               "into the Hugging Face cache, resuming partial files, and prints the snapshot folder.\n"
               "The architecture is checked against what vlm.c runs before any weights are fetched\n"
               "(--any-architecture skips that check).\n\n" VLM_MODEL_REF_HELP);
}

int cmd_pull(int argc, char **argv) {
    struct vlm_model_ref ref = {0};
    const char *name = NULL;
    bool check = true;
    for (int i = 1; i < argc; i++) {
        int k = vlm_model_ref_flag(&ref, "pull", argc, argv, &i);
        if (k < 0) return 2;
        if (k) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        if (!strcmp(argv[i], "--any-architecture")) { check = false; continue; }
        if (argv[i][0] == '-' || name) { fprintf(stderr, "vlm pull: unexpected argument '%s'\n\n", argv[i]); usage(stderr); return 2; }
        name = argv[i];
    }
    if (!name) { usage(stderr); return 2; }
    if (!vlm_hub_is_repo_id(name)) {
        fprintf(stderr, "vlm pull: '%s' is not a hub model id (org/name)%s\n", name,
                strchr(name, '/') ? " or names an existing path" : "");
        return 2;
    }
    char *dir = NULL;
    if (vlm_model_ref_resolve("pull", name, &ref, check, &dir)) return 1;
    printf("%s\n", dir);
    vlm_free(dir);
    return 0;
}
