/* cmd_ls.c — `vlm ls` (alias `vlm list`): the models in the shared Hugging Face cache, one row
 * per snapshot, with its refs, size, and whether this engine runs its architecture. */
#include "commands.h"
#include "formats/config.h"
#include "hub/hub.h"
#include "models/model.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

static void engine_verdict(const struct vlm_hub_cached *c, char *out, size_t cap) {
    if (!c->has_config) { snprintf(out, cap, "no (no config.json)"); return; }
    struct vlm_config cfg;
    struct vlm_error err = {0};
    if (vlm_config_load(c->dir, &cfg, &err) != VLM_OK) { snprintf(out, cap, "no (config.json unreadable)"); return; }
    snprintf(out, cap, "%s (%s)", vlm_family_find(cfg.arch) ? "yes" : "no", *cfg.arch ? cfg.arch : "no architecture");
    vlm_config_free(&cfg);
}

int cmd_ls(int argc, char **argv) {
    const char *root_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--download-dir") && i + 1 < argc) root_arg = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vlm ls [--download-dir D]\n\nLists the models in the Hugging Face cache ($HF_HUB_CACHE, $HF_HOME/hub,\n"
                   "~/.cache/huggingface/hub, or D): repo id, refs or commit, size on disk, file count,\n"
                   "and whether vlm.c runs the architecture in its config.json.\n");
            return 0;
        } else { fprintf(stderr, "vlm ls: unexpected argument '%s'\n", argv[i]); return 2; }
    }
    char *root = NULL;
    struct vlm_error err = {0};
    struct vlm_hub_cached *list = NULL;
    size_t n = 0;
    if (vlm_hub_cache_root(root_arg, &root, &err) || vlm_hub_list(root, &list, &n, &err)) {
        fprintf(stderr, "vlm ls: %s\n", err.msg);
        vlm_free(root);
        return 1;
    }
    printf("cache %s\n", root);
    if (n) printf("%-44s %-20s %10s %6s  %s\n", "MODEL", "REVISION", "SIZE", "FILES", "RUNS ON vlm.c");
    for (size_t i = 0; i < n; i++) {
        char rev[64], size[32], verdict[256];
        snprintf(rev, sizeof rev, "%s", *list[i].refs ? list[i].refs : list[i].commit);
        if (!*list[i].refs) rev[12] = 0;
        double b = (double)list[i].bytes;
        if (b >= 1073741824.0) snprintf(size, sizeof size, "%.2f GiB", b / 1073741824.0);
        else snprintf(size, sizeof size, "%.1f MiB", b / 1048576.0);
        engine_verdict(&list[i], verdict, sizeof verdict);
        printf("%-44s %-20s %10s %6zu  %s\n", list[i].repo_id, rev, size, list[i].n_files, verdict);
    }
    if (!n) printf("(no models cached)\n");
    vlm_hub_list_free(list, n);
    vlm_free(root);
    return 0;
}
