/* info.c — the hub's model info (GET /api/models/{repo}/revision/{rev}): the commit a
 * revision names ("sha") and the repo's files ("siblings[].rfilename"), checked as untrusted. */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void hub_info_free(struct hub_info *info) {
    if (!info) return;
    for (size_t i = 0; i < info->n_files; i++) vlm_free(info->files[i]);
    vlm_free(info->files);
    memset(info, 0, sizeof *info);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int parse_siblings(json_t *sib, struct hub_info *out, struct vlm_error *err) {
    if (!json_is_array(sib)) return vlm_error_set(err, VLM_E_FORMAT, "model info: \"siblings\" is not an array");
    size_t n = json_array_size(sib);
    if (n > HUB_MAX_FILES)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "model info: %zu files (limit %d)", n, HUB_MAX_FILES);
    out->files = vlm_calloc(n ? n : 1, sizeof *out->files);
    if (!out->files) return vlm_error_set(err, VLM_E_NOMEM, "model info: out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *name = json_object_get(json_array_get(sib, i), "rfilename");
        const char *s = json_string_value(name);
        if (!s || strlen(s) != json_string_length(name) || !hub_valid_relpath(s))
            return vlm_error_set(err, VLM_E_FORMAT, "model info: siblings[%zu] has no valid \"rfilename\"", i);
        if (!(out->files[out->n_files] = vlm_strdup(s))) return vlm_error_set(err, VLM_E_NOMEM, "model info: out of memory");
        out->n_files++;
    }
    qsort(out->files, out->n_files, sizeof *out->files, cmp_names);
    for (size_t i = 1; i < out->n_files; i++)
        if (!strcmp(out->files[i - 1], out->files[i]))
            return vlm_error_set(err, VLM_E_FORMAT, "model info: file \"%s\" listed twice", out->files[i]);
    return VLM_OK;
}

int hub_info_parse(const char *json, size_t len, struct hub_info *out, struct vlm_error *err) {
    memset(out, 0, sizeof *out);
    if (len > HUB_INFO_MAX) return vlm_error_set(err, VLM_E_TOO_LARGE, "model info: %zu bytes", len);
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) return vlm_error_set(err, VLM_E_FORMAT, "model info: invalid JSON at line %d: %s", je.line, je.text);
    int rc = VLM_OK;
    const char *sha = json_string_value(json_object_get(root, "sha"));
    if (!json_is_object(root)) rc = vlm_error_set(err, VLM_E_FORMAT, "model info: not a JSON object");
    else if (!sha || !hub_is_commit(sha))
        rc = vlm_error_set(err, VLM_E_FORMAT, "model info: no commit (\"sha\" of 40 hex digits)");
    else {
        memcpy(out->sha, sha, HUB_COMMIT_LEN + 1);
        json_t *g = json_object_get(root, "gated");
        out->gated = json_is_true(g) || json_is_string(g);
        json_t *sib = json_object_get(root, "siblings");
        rc = sib ? parse_siblings(sib, out, err) : vlm_error_set(err, VLM_E_FORMAT, "model info: no \"siblings\"");
    }
    json_decref(root);
    if (rc) hub_info_free(out);
    return rc;
}
