/* list.c — the models in a cache (`vlm ls`): every models--org--name/snapshots/<commit>, with the
 * refs naming it, its size (blobs counted once) and whether it has a config.json. */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct inode_set { struct { dev_t dev; ino_t ino; } *v; size_t n, cap; };

static bool inode_add(struct inode_set *s, const struct stat *st) {
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].dev == st->st_dev && s->v[i].ino == st->st_ino) return false;
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        void *nv = vlm_realloc(s->v, nc * sizeof *s->v);
        if (!nv) return false;
        s->v = nv, s->cap = nc;
    }
    s->v[s->n].dev = st->st_dev, s->v[s->n].ino = st->st_ino, s->n++;
    return true;
}

static void walk(const char *dir, int depth, struct inode_set *seen, struct vlm_hub_cached *c) {
    DIR *d = opendir(dir);
    if (!d || depth > 8) { if (d) closedir(d); return; }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
        char path[4200];
        struct stat st;
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path || stat(path, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) walk(path, depth + 1, seen, c);
        else if (S_ISREG(st.st_mode)) {
            c->n_files++;
            if (inode_add(seen, &st)) c->bytes += (uint64_t)st.st_size;
        }
    }
    closedir(d);
}

/* "main,v1": the refs (top level of refs/) holding commit. */
static char *refs_for(const char *repo_dir, const char *commit) {
    char path[4200];
    snprintf(path, sizeof path, "%s/refs", repo_dir);
    struct vlm_buf b = {0};
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char c[HUB_COMMIT_LEN + 1];
        if (e->d_name[0] == '.' || !hub_cache_read_ref(repo_dir, e->d_name, c) || strcmp(c, commit)) continue;
        vlm_buf_appendf(&b, "%s%s", b.len ? "," : "", e->d_name);
    }
    if (d) closedir(d);
    char *s = vlm_buf_take(&b);
    return s ? s : vlm_strdup("");
}

static void cached_clear(struct vlm_hub_cached *c) {
    vlm_free(c->repo_id);
    vlm_free(c->commit);
    vlm_free(c->refs);
    vlm_free(c->dir);
}

static int cmp_cached(const void *a, const void *b) {
    const struct vlm_hub_cached *x = a, *y = b;
    int c = strcmp(x->repo_id, y->repo_id);
    return c ? c : strcmp(x->commit, y->commit);
}

static int add_repo(const char *root, const char *folder, struct vlm_hub_cached **out, size_t *n, size_t *cap) {
    char repo_dir[4200], snaps[4300];
    snprintf(repo_dir, sizeof repo_dir, "%s/%s", root, folder);
    snprintf(snaps, sizeof snaps, "%s/snapshots", repo_dir);
    DIR *d = opendir(snaps);
    if (!d) return VLM_OK;
    struct dirent *e;
    int rc = VLM_OK;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            void *nv = vlm_realloc(*out, nc * sizeof **out);
            if (!nv) { rc = VLM_E_NOMEM; break; }
            *out = nv, *cap = nc;
        }
        struct vlm_hub_cached *c = &(*out)[*n];
        memset(c, 0, sizeof *c);
        const char *name = folder + strlen("models--"), *sep = strstr(name, "--");
        struct vlm_buf id = {0};
        if (sep) vlm_buf_appendf(&id, "%.*s/%s", (int)(sep - name), name, sep + 2);
        else vlm_buf_appendf(&id, "%s", name);
        c->repo_id = vlm_buf_take(&id);
        c->commit = vlm_strdup(e->d_name);
        c->refs = refs_for(repo_dir, e->d_name);
        c->dir = vlm_path_join(snaps, e->d_name);
        if (!c->repo_id || !c->commit || !c->refs || !c->dir) { cached_clear(c); rc = VLM_E_NOMEM; break; }
        struct inode_set seen = {0};
        walk(c->dir, 0, &seen, c);
        vlm_free(seen.v);
        char cfg[4400];
        snprintf(cfg, sizeof cfg, "%s/config.json", c->dir);
        c->has_config = vlm_file_exists(cfg);
        (*n)++;
    }
    closedir(d);
    return rc;
}

int vlm_hub_list(const char *cache_root, struct vlm_hub_cached **out, size_t *n, struct vlm_error *err) {
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    DIR *d = opendir(cache_root);
    if (!d) return VLM_OK;   /* no cache yet: nothing cached */
    struct dirent *e;
    int rc = VLM_OK;
    while (!rc && (e = readdir(d)))
        if (!strncmp(e->d_name, "models--", 8)) rc = add_repo(cache_root, e->d_name, out, n, &cap);
    closedir(d);
    if (rc) {
        vlm_hub_list_free(*out, *n);
        *out = NULL, *n = 0;
        return vlm_error_set(err, rc, "out of memory listing %s", cache_root);
    }
    if (*n) qsort(*out, *n, sizeof **out, cmp_cached);
    return VLM_OK;
}

void vlm_hub_list_free(struct vlm_hub_cached *list, size_t n) {
    for (size_t i = 0; i < n; i++) cached_clear(&list[i]);
    vlm_free(list);
}
