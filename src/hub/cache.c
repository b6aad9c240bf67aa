/* cache.c — the cache layout huggingface_hub uses, so that both share one cache:
 * <root>/models--org--name/{blobs/<etag>, snapshots/<commit>/<path> -> ../../blobs/<etag>,
 * refs/<revision> holding the commit}. Writes are atomic (temporary name, then rename). */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int hub_mkdirs(const char *path, struct vlm_error *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return vlm_error_set(err, VLM_E_INVALID, "path too long: %s", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return vlm_error_set(err, VLM_E_IO, "cannot create %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    return vlm_dir_exists(path) ? VLM_OK : vlm_error_set(err, VLM_E_IO, "%s is not a directory", path);
}

bool hub_cache_read_ref(const char *repo_dir, const char *revision, char commit[HUB_COMMIT_LEN + 1]) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, revision) >= (int)sizeof path) return false;
    char *text = NULL;
    size_t len = 0;
    if (!vlm_file_exists(path) || vlm_read_file(path, 256, &text, &len, NULL) != VLM_OK) return false;
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ')) text[--len] = 0;
    bool ok = hub_is_commit(text);
    if (ok) memcpy(commit, text, HUB_COMMIT_LEN + 1);
    vlm_free(text);
    return ok;
}

/* Writes data to path through path.<pid>.tmp + rename. */
static int write_atomic(const char *path, const char *data, size_t n, struct vlm_error *err) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return vlm_error_set(err, VLM_E_IO, "cannot write %s: %s", tmp, strerror(errno));
    ssize_t w = write(fd, data, n);
    int e = errno;
    close(fd);
    if (w != (ssize_t)n || rename(tmp, path) != 0) {
        e = w != (ssize_t)n ? e : errno;
        unlink(tmp);
        return vlm_error_set(err, VLM_E_IO, "cannot write %s: %s", path, strerror(e));
    }
    return VLM_OK;
}

int hub_cache_write_ref(const char *repo_dir, const char *revision, const char *commit, struct vlm_error *err) {
    if (!strcmp(revision, commit)) return VLM_OK;
    char have[HUB_COMMIT_LEN + 1];
    if (hub_cache_read_ref(repo_dir, revision, have) && !strcmp(have, commit)) return VLM_OK;
    char path[4096];
    if (snprintf(path, sizeof path, "%s/refs/%s", repo_dir, revision) >= (int)sizeof path)
        return vlm_error_set(err, VLM_E_INVALID, "revision name too long");
    char *slash = strrchr(path, '/');
    *slash = 0;
    int rc = hub_mkdirs(path, err);
    *slash = '/';
    return rc ? rc : write_atomic(path, commit, HUB_COMMIT_LEN, err);   /* no newline, as huggingface_hub */
}

int hub_cache_link(const char *repo_dir, const char *commit, const char *rel, const char *etag,
                   struct vlm_error *err) {
    char path[4096], target[4096], tmp[4200];
    if (snprintf(path, sizeof path, "%s/snapshots/%s/%s", repo_dir, commit, rel) >= (int)sizeof path)
        return vlm_error_set(err, VLM_E_INVALID, "path too long for %s", rel);
    /* ../../blobs/<etag> from snapshots/<commit>/, one more ../ per folder inside the repo */
    size_t k = 0;
    k += (size_t)snprintf(target + k, sizeof target - k, "../../");
    for (const char *p = rel; (p = strchr(p, '/')); p++) k += (size_t)snprintf(target + k, sizeof target - k, "../");
    snprintf(target + k, sizeof target - k, "blobs/%s", etag);
    char *slash = strrchr(path, '/');
    *slash = 0;
    int rc = hub_mkdirs(path, err);
    *slash = '/';
    if (rc) return rc;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return vlm_error_set(err, VLM_E_IO, "cannot link %s: %s", path, strerror(e));
    }
    return VLM_OK;
}

bool hub_cache_has(const char *repo_dir, const char *commit, const char *rel) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/snapshots/%s/%s", repo_dir, commit, rel) >= (int)sizeof path) return false;
    return vlm_file_exists(path);
}
