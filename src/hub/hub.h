/* hub.h — models by name: a folder path, or a Hugging Face hub id (org/name) resolved through
 * the cache exactly as huggingface_hub lays it out (blobs/, snapshots/<commit>/ symlinks,
 * refs/<revision>), downloading what is missing over the hub's HTTP API. Knows nothing of models:
 * callers pass a check run on config.json before any weights are fetched. */
#ifndef VLM_HUB_HUB_H
#define VLM_HUB_HUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vlm_error;

enum vlm_hub_progress {
    VLM_HUB_PROGRESS_AUTO,   /* bars on a terminal (stderr), one line per file otherwise */
    VLM_HUB_PROGRESS_NONE,
    VLM_HUB_PROGRESS_LINES,
    VLM_HUB_PROGRESS_BARS,
};

struct vlm_hub_opts {
    const char *revision;        /* branch, tag or commit; NULL = "main" */
    const char *token;           /* NULL: $HF_TOKEN, then $HF_TOKEN_PATH or $HF_HOME/token */
    const char *cache_dir;       /* NULL: $HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub */
    const char *endpoint;        /* NULL: $HF_ENDPOINT, else https://huggingface.co */
    const char *const *allow_patterns;  /* extra fnmatch globs over repo paths (as snapshot_download) */
    size_t n_allow;
    bool want_gguf;              /* also fetch *.gguf files */
    bool skip_weights;           /* no *.safetensors / *.gguf (tokenizer, processor, template users) */
    int offline;                 /* -1: from HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE; 0 no; 1 yes */
    int n_connections;           /* parallel transfers; 0 = 8 */
    enum vlm_hub_progress progress;
    /* Run on snapshot/config.json (when the repo has one) before any other file is fetched;
     * a non-zero return stops the download with that error. NULL: no check. */
    int (*check_config)(const char *config_path, void *user, struct vlm_error *err);
    void *check_user;
};

struct vlm_hub_opts vlm_hub_default_opts(void);

/* true if name has the form of a hub repo id (org/name, huggingface_hub's validate_repo_id
 * rules) and is not an existing path. */
bool vlm_hub_is_repo_id(const char *name);

/* name -> a folder to load: an existing directory as is; a repo id through the cache,
 * downloading the files a model needs when missing (unless offline). *dir is vlm_malloc'd.
 * Errors say what the user can do (gated, not found, offline and not cached, disk full,
 * interrupted: run again to resume, checksum mismatch). */
int vlm_hub_resolve(const char *name, const struct vlm_hub_opts *o, char **dir, struct vlm_error *err);

/* The cache root in use: override, else the environment as huggingface_hub reads it. */
int vlm_hub_cache_root(const char *override, char **out, struct vlm_error *err);

/* One cached snapshot, for `vlm ls`. */
struct vlm_hub_cached {
    char    *repo_id;            /* org/name */
    char    *commit;             /* snapshot folder name */
    char    *refs;               /* refs pointing at it, comma-separated ("" if none) */
    char    *dir;                /* snapshot path */
    uint64_t bytes;              /* sum of the files it links (each blob counted once) */
    size_t   n_files;
    bool     has_config;
};
int  vlm_hub_list(const char *cache_root, struct vlm_hub_cached **out, size_t *n, struct vlm_error *err);
void vlm_hub_list_free(struct vlm_hub_cached *list, size_t n);

#endif
