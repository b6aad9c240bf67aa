/* resolve.c — a model name to a folder: an existing folder as is; a hub id through the cache
 * (offline: refs/ and snapshots/ only), else model info at the revision (its commit and files),
 * config.json first (the caller's check runs before any weights move), then the rest. */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/log.h"

#include <dirent.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

struct vlm_hub_opts vlm_hub_default_opts(void) {
    struct vlm_hub_opts o;
    memset(&o, 0, sizeof o);
    o.offline = -1;
    return o;
}

bool vlm_hub_is_repo_id(const char *name) {
    return name && !vlm_dir_exists(name) && !vlm_file_exists(name) && hub_valid_repo_id(name);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* What a cached snapshot lacks for loading: config.json, and every shard its index lists (or
 * some weights file). Returns a message fragment in buf, "" when complete. */
static void snapshot_missing(const char *snap, bool weights_needed, char *buf, size_t cap) {
    buf[0] = 0;
    if (!weights_needed) return;   /* tokenizer/processor users take what the snapshot has */
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", snap);
    if (vlm_file_exists(path)) {
        json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
        json_t *map = json_object_get(root, "weight_map"), *v;
        const char *k;
        json_object_foreach(map, k, v) {
            const char *shard = json_string_value(v);
            if (!shard || !hub_valid_relpath(shard)) continue;
            snprintf(path, sizeof path, "%s/%s", snap, shard);
            if (!vlm_file_exists(path)) {
                snprintf(buf, cap, "%s (listed in model.safetensors.index.json)", shard);
                break;
            }
        }
        json_decref(root);
        if (buf[0]) return;
    }
    snprintf(path, sizeof path, "%s/config.json", snap);
    if (!vlm_file_exists(path)) {
        snprintf(buf, cap, "config.json");
        return;
    }
    DIR *d = opendir(snap);
    struct dirent *e;
    bool weights = false;
    while (d && !weights && (e = readdir(d)))
        weights = ends_with(e->d_name, ".safetensors") || ends_with(e->d_name, ".gguf");
    if (d) closedir(d);
    if (!weights) snprintf(buf, cap, "weights (*.safetensors or *.gguf)");
}

/* Offline (or the hub unreachable): refs/<rev> -> snapshots/<commit>, complete or a clear error. */
static int resolve_cached(const char *repo_id, const char *rev, const char *repo_dir, const char *why,
                          bool weights_needed, char **dir, struct vlm_error *err) {
    char commit[HUB_COMMIT_LEN + 1], snap[4200], missing[600];
    if (hub_is_commit(rev)) memcpy(commit, rev, sizeof commit);
    else if (!hub_cache_read_ref(repo_dir, rev, commit))
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s (revision %s) is not in the cache: no %s/refs/%s (%s); run "
                             "`vlm pull %s%s%s` where the hub is reachable", repo_id, rev, repo_dir, rev, why, repo_id,
                             strcmp(rev, "main") ? " --revision " : "", strcmp(rev, "main") ? rev : "");
    snprintf(snap, sizeof snap, "%s/snapshots/%s", repo_dir, commit);
    if (!vlm_dir_exists(snap))
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s (revision %s) is not in the cache: no snapshot %s (%s)",
                             repo_id, rev, snap, why);
    snapshot_missing(snap, weights_needed, missing, sizeof missing);
    if (missing[0])
        return vlm_error_set(err, VLM_E_NOT_FOUND, "the cached snapshot %s of %s lacks %s (%s); run `vlm pull %s` "
                             "where the hub is reachable", snap, repo_id, missing, why, repo_id);
    *dir = vlm_strdup(snap);
    return *dir ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

/* HEAD {endpoint}/{repo}/resolve/{commit}/{file}: etag, size and where the bytes are. Redirects
 * on the hub's own origin are followed; one leaving it names the download URL (sent no token). */
static int head_file(struct hub_http *http, const struct hub_env *env, const char *repo_id, const char *commit,
                     struct hub_file *f, struct vlm_error *err) {
    char esc[HUB_URL_MAX], url[HUB_URL_MAX], next[HUB_URL_MAX];
    if (!hub_url_escape(f->rel, true, esc, sizeof esc) ||
        snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", env->endpoint, repo_id, commit, esc) >= (int)sizeof url)
        return vlm_error_set(err, VLM_E_INVALID, "%s: URL too long", f->rel);
    struct hub_head h;
    for (int hop = 0;; hop++) {
        int rc = hub_http_head(http, url, env->token, &h, err);
        if (rc) return rc;
        if (h.status >= 400) return hub_http_status_error(&h, f->rel, repo_id, env->endpoint, env->token != NULL, err);
        bool redirect = h.status >= 300 && h.status < 400 && h.location[0];
        if (redirect && !hub_url_join(url, h.location, next, sizeof next))
            return vlm_error_set(err, VLM_E_FORMAT, "%s: the hub sent an unusable redirect", f->rel);
        if (redirect && hub_same_origin(url, next) && hop < 5) {
            memcpy(url, next, strlen(next) + 1);
            continue;
        }
        if (!h.commit[0])
            return vlm_error_set(err, VLM_E_FORMAT, "%s: the answer has no valid X-Repo-Commit header, so %s does not "
                                 "look like a Hugging Face hub (check HF_ENDPOINT and proxy settings)", f->rel, env->endpoint);
        if (strcmp(h.commit, commit))
            return vlm_error_set(err, VLM_E_FORMAT, "%s: asked for commit %s, the hub answered for %s", f->rel, commit, h.commit);
        const char *etag = h.linked_etag[0] ? h.linked_etag : h.etag;
        if (!etag[0]) return vlm_error_set(err, VLM_E_FORMAT, "%s: the hub sent no usable ETag", f->rel);
        memcpy(f->etag, etag, strlen(etag) + 1);
        f->size_known = h.has_linked_size || (!redirect && h.has_content_length);
        f->size = h.has_linked_size ? h.linked_size : h.content_length;
        f->send_token = !redirect;
        memcpy(f->url, redirect ? next : url, strlen(redirect ? next : url) + 1);
        return VLM_OK;
    }
}

/* HEADs in parallel: each thread its own connection, files taken in order. */
struct heads {
    struct hub_file *files;
    size_t n;
    atomic_size_t next;
    const struct hub_env *env;
    const char *repo_id, *commit;
    pthread_mutex_t mu;
    struct vlm_error err;
};

static void *head_worker(void *arg) {
    struct heads *h = arg;
    struct hub_http *http = NULL;
    struct vlm_error err = {0};
    int rc = hub_http_new(&http, &err);
    for (size_t i; !rc && (i = atomic_fetch_add(&h->next, 1)) < h->n;)
        rc = head_file(http, h->env, h->repo_id, h->commit, &h->files[i], &err);
    if (rc) {
        pthread_mutex_lock(&h->mu);
        if (!h->err.code) h->err = err;
        pthread_mutex_unlock(&h->mu);
        atomic_store(&h->next, h->n);
    }
    hub_http_free(http);
    return NULL;
}

static int head_all(struct hub_file *files, size_t n, const struct hub_env *env, const char *repo_id,
                    const char *commit, struct vlm_error *err) {
    struct heads h = {.files = files, .n = n, .env = env, .repo_id = repo_id, .commit = commit};
    atomic_init(&h.next, 0);
    pthread_mutex_init(&h.mu, NULL);
    pthread_t th[8];
    int nt = n < 8 ? (int)n : 8, started = 0;
    for (; started < nt; started++)
        if (pthread_create(&th[started], NULL, head_worker, &h) != 0) break;
    if (started == 0) head_worker(&h);
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&h.mu);
    if (h.err.code) *err = h.err;
    return h.err.code;
}

static int fetch(const struct hub_env *env, const char *repo_id, const char *repo_dir, const char *commit,
                 const struct vlm_hub_opts *o, const char **names, size_t n, struct vlm_error *err) {
    if (n == 0) return VLM_OK;
    struct hub_file *files = vlm_calloc(n, sizeof *files);
    if (!files) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) files[i].rel = names[i];
    int rc = head_all(files, n, env, repo_id, commit, err);
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += files[i].size;
    if (!rc) {
        if (o->progress != VLM_HUB_PROGRESS_NONE)
            fprintf(stderr, "vlm: fetching %zu file%s (%.1f MiB) of %s at %.12s into %s\n", n, n == 1 ? "" : "s",
                    total / 1048576.0, repo_id, commit, repo_dir);
        rc = hub_download(repo_dir, commit, files, n, env, o->n_connections, o->progress, err);
    }
    vlm_free(files);
    return rc;
}

/* The files to fetch: what a model needs, less what the snapshot has; config.json apart. */
static int plan(const struct hub_info *info, const struct vlm_hub_opts *o, const char *repo_dir,
                const char ***out, size_t *n_out, bool *need_config, struct vlm_error *err) {
    bool has_single = false;
    for (size_t i = 0; i < info->n_files; i++)
        has_single |= !strcmp(info->files[i], "model.safetensors") || !strcmp(info->files[i], "model.safetensors.index.json");
    const char **names = vlm_calloc(info->n_files ? info->n_files : 1, sizeof *names);
    if (!names) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    size_t n = 0;
    *need_config = false;
    for (size_t i = 0; i < info->n_files; i++) {
        const char *f = info->files[i];
        if (!hub_wanted(f, o)) continue;
        /* Mistral-style repos carry their weights twice; transformers reads model*.safetensors */
        if (has_single && !strncmp(f, "consolidated", 12) && ends_with(f, ".safetensors")) continue;
        if (hub_cache_has(repo_dir, info->sha, f)) continue;
        if (!strcmp(f, "config.json")) *need_config = true;
        else names[n++] = f;
    }
    *out = names;
    *n_out = n;
    return VLM_OK;
}

/* A repo without weights vlm.c reads fails here, before anything is downloaded. */
static int check_weights(const struct hub_info *info, const char *repo_id, const struct vlm_hub_opts *o,
                         struct vlm_error *err) {
    bool st = false, gguf = false, bin = false;
    for (size_t i = 0; i < info->n_files; i++) {
        const char *f = info->files[i];
        st |= ends_with(f, ".safetensors");
        gguf |= ends_with(f, ".gguf");
        bin |= ends_with(f, ".bin") || ends_with(f, ".pt") || ends_with(f, ".pth");
    }
    if (st || (gguf && o->want_gguf)) return VLM_OK;
    if (gguf)
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s has GGUF weights only: choose a file with --allow-pattern "
                             "(e.g. --allow-pattern '*Q4_K_M.gguf')", repo_id);
    return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s has no safetensors weights%s; vlm.c reads safetensors and GGUF",
                         repo_id, bin ? " (only PyTorch .bin/.pt files)" : "");
}

/* .no_exist/<commit>/<name> for the model files the repo lacks, as huggingface_hub records a
 * 404, so transformers online does not ask again for each optional file. */
static void mark_absent(const struct hub_info *info, const char *repo_dir) {
    static const char *const optional[] = {
        "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "added_tokens.json", "preprocessor_config.json", "processor_config.json", "chat_template.json",
        "chat_template.jinja",
    };
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/.no_exist/%s", repo_dir, info->sha);
    bool made = false;
    for (size_t k = 0; k < sizeof optional / sizeof optional[0]; k++) {
        bool have = false;
        for (size_t i = 0; i < info->n_files && !have; i++) have = !strcmp(info->files[i], optional[k]);
        if (have) continue;
        if (!made && hub_mkdirs(dir, NULL) != VLM_OK) return;
        made = true;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, optional[k]);
        FILE *fp = fopen(path, "ab");
        if (fp) fclose(fp);
    }
}

static int resolve_online(const char *repo_id, const char *rev, const struct hub_env *env, const char *repo_dir,
                          const struct vlm_hub_opts *o, char **dir, struct vlm_error *err) {
    char esc[600], url[HUB_URL_MAX];
    if (!hub_url_escape(rev, false, esc, sizeof esc)) return vlm_error_set(err, VLM_E_INVALID, "revision too long");
    snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", env->endpoint, repo_id, esc);
    struct hub_http *http = NULL;
    int rc = hub_http_new(&http, err);
    if (rc) return rc;
    char *body = NULL;
    size_t len = 0;
    struct hub_head h;
    rc = hub_http_get(http, url, env->token, HUB_INFO_MAX, &body, &len, &h, err);
    if (rc == VLM_E_FETCH || (!rc && (h.status >= 500 || h.status == 429))) {
        /* no network or the hub is down: the cache may still hold it, as huggingface_hub falls back */
        char why[600];
        if (rc) snprintf(why, sizeof why, "the hub is unreachable: %s", err->msg);
        else snprintf(why, sizeof why, "the hub answered HTTP %d", h.status);
        vlm_free(body);
        hub_http_free(http);
        return resolve_cached(repo_id, rev, repo_dir, why, !o->skip_weights, dir, err);
    }
    struct hub_info info = {0};
    char what[400];
    snprintf(what, sizeof what, "%s (revision %s)", repo_id, rev);
    if (!rc && h.status != 200) rc = hub_http_status_error(&h, what, repo_id, env->endpoint, env->token != NULL, err);
    if (!rc) rc = hub_info_parse(body, len, &info, err);
    vlm_free(body);
    const char **names = NULL;
    size_t n = 0;
    bool need_config = false;
    char snap[4200];
    snprintf(snap, sizeof snap, "%s/snapshots/%s", repo_dir, info.sha);
    if (!rc && !o->skip_weights) rc = check_weights(&info, repo_id, o, err);
    if (!rc) rc = hub_mkdirs(snap, err);
    if (!rc) rc = hub_cache_write_ref(repo_dir, rev, info.sha, err);
    if (!rc) rc = plan(&info, o, repo_dir, &names, &n, &need_config, err);
    if (!rc) mark_absent(&info, repo_dir);
    const char *cfg[] = {"config.json"};
    if (!rc && need_config) rc = fetch(env, repo_id, repo_dir, info.sha, o, cfg, 1, err);
    char cfg_path[4300];
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", snap);
    if (!rc && n && o->check_config && vlm_file_exists(cfg_path)) rc = o->check_config(cfg_path, o->check_user, err);
    if (!rc) rc = fetch(env, repo_id, repo_dir, info.sha, o, names, n, err);
    if (!rc && !(*dir = vlm_strdup(snap))) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    vlm_free(names);
    hub_info_free(&info);
    hub_http_free(http);
    return rc;
}

int vlm_hub_resolve(const char *name, const struct vlm_hub_opts *o, char **dir, struct vlm_error *err) {
    *dir = NULL;
    if (vlm_dir_exists(name)) {
        *dir = vlm_strdup(name);
        return *dir ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (!hub_valid_repo_id(name))
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: no such model folder, nor a hub model id (org/name)", name);
    const char *rev = o->revision && *o->revision ? o->revision : "main";
    if (!hub_valid_revision(rev)) return vlm_error_set(err, VLM_E_INVALID, "--revision %s: not a valid revision name", rev);
    struct hub_env env;
    int rc = hub_env_load(o, &env, err);
    if (rc) return rc;
    char *folder = hub_repo_folder(name), *repo_dir = folder ? vlm_path_join(env.cache_root, folder) : NULL;
    if (!repo_dir) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    else if (env.offline)
        rc = resolve_cached(name, rev, repo_dir, "downloads are off: HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set",
                            !o->skip_weights, dir, err);
    else
        rc = resolve_online(name, rev, &env, repo_dir, o, dir, err);
    vlm_free(folder);
    vlm_free(repo_dir);
    hub_env_free(&env);
    return rc;
}
