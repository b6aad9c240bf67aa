/* model_ref.c — how every `vlm` command names a model: a folder, or a hub id (org/name) with
 * --revision, --hf-token, --download-dir and --allow-pattern, resolved through src/hub; before
 * weights are downloaded, config.json's architecture is checked against the engine's registry. */
#include "commands.h"
#include "formats/config.h"
#include "hub/hub.h"
#include "models/model.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdio.h>
#include <string.h>

int vlm_model_ref_flag(struct vlm_model_ref *r, const char *cmd, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const char **dst = !strcmp(a, "--revision") ? &r->revision
                     : !strcmp(a, "--hf-token") ? &r->hf_token
                     : !strcmp(a, "--download-dir") ? &r->download_dir : NULL;
    bool allow = !strcmp(a, "--allow-pattern");
    if (!dst && !allow) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "vlm %s: %s needs a value\n", cmd, a);
        return -1;
    }
    const char *v = argv[++*i];
    if (dst) *dst = v;
    else if (r->n_allow < sizeof r->allow / sizeof r->allow[0]) r->allow[r->n_allow++] = v;
    else { fprintf(stderr, "vlm %s: too many --allow-pattern\n", cmd); return -1; }
    return 1;
}

int vlm_tool_check_arch(const char *config_path, void *user, struct vlm_error *err) {
    (void)user;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", config_path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    struct vlm_config c;
    int rc = vlm_config_load(dir, &c, err);
    if (rc) return rc;
    if (!vlm_family_find(c.arch)) {
        char names[1024];
        vlm_family_names(names, sizeof names);
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "architecture %s is not one vlm.c runs (it runs %s); nothing else "
                           "was downloaded", *c.arch ? c.arch : "(none in config.json)", names);
    }
    vlm_config_free(&c);
    return rc;
}

int vlm_model_ref_resolve(const char *cmd, const char *name, const struct vlm_model_ref *r, bool check_arch,
                          char **dir) {
    struct vlm_hub_opts o = vlm_hub_default_opts();
    o.revision = r->revision;
    o.token = r->hf_token;
    o.cache_dir = r->download_dir;
    o.allow_patterns = r->allow;
    o.n_allow = r->n_allow;
    o.skip_weights = r->no_weights;
    for (size_t k = 0; k < r->n_allow; k++) o.want_gguf |= strstr(r->allow[k], ".gguf") != NULL;
    if (check_arch) o.check_config = vlm_tool_check_arch;
    struct vlm_error err = {0};
    if (vlm_hub_resolve(name, &o, dir, &err) != VLM_OK) {
        fprintf(stderr, "vlm %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}
