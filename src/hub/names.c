/* names.c — the names the hub and the user give us, checked before they become paths (repo
 * ids, revisions, repo file paths), and which repo files a model needs. */
#include "hub/hub_internal.h"
#include "util/alloc.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

static bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool hub_is_commit(const char *s) {
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f'))) return false;
    return n == HUB_COMMIT_LEN;
}

/* One part of a repo id: 1..96 of [A-Za-z0-9_.-], starting and ending with a word char. */
static bool repo_part_ok(const char *s, size_t n) {
    if (n == 0 || n > 96 || !is_word(s[0]) || !is_word(s[n - 1])) return false;
    for (size_t i = 0; i < n; i++)
        if (!is_word(s[i]) && s[i] != '-' && s[i] != '.') return false;
    return true;
}

bool hub_valid_repo_id(const char *s) {
    const char *slash = strchr(s, '/');
    if (!slash || strchr(slash + 1, '/')) return false;
    size_t n = strlen(s);
    if (strstr(s, "--") || strstr(s, "..") || (n >= 4 && !strcmp(s + n - 4, ".git"))) return false;
    return repo_part_ok(s, (size_t)(slash - s)) && repo_part_ok(slash + 1, strlen(slash + 1));
}

/* Path components: no empty, ".", ".." or hidden-control parts; printable ASCII or UTF-8 bytes;
 * no backslash (a Windows separator on the hub side). */
static bool components_ok(const char *s, size_t max) {
    size_t n = strlen(s);
    if (n == 0 || n > max || s[0] == '/' || s[n - 1] == '/') return false;
    const char *p = s;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == 0 || len > 255 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c < 0x20 || c == 0x7f || c == '\\') return false;
        }
        p += len;
        if (*p == '/') p++;
    }
    return true;
}

bool hub_valid_relpath(const char *s) { return components_ok(s, HUB_PATH_MAX); }

bool hub_valid_revision(const char *s) {
    if (!components_ok(s, 255)) return false;
    for (const char *p = s; *p; p++)
        if (!is_word(*p) && *p != '-' && *p != '.' && *p != '/' && *p != '+') return false;
    return true;
}

char *hub_repo_folder(const char *repo_id) {
    size_t n = strlen("models--") + 2 * strlen(repo_id) + 1;
    char *out = vlm_malloc(n);
    if (!out) return NULL;
    size_t k = (size_t)snprintf(out, n, "models--");
    for (const char *p = repo_id; *p; p++) {
        if (*p == '/') { out[k++] = '-'; out[k++] = '-'; }
        else out[k++] = *p;
    }
    out[k] = 0;
    return out;
}

bool hub_glob(const char *pattern, const char *path) {
    /* filter_repo_objects also treats a pattern ending in '/' as "everything below". */
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '/') return strncmp(pattern, path, n) == 0;
    return fnmatch(pattern, path, 0) == 0;
}

/* What transformers' AutoConfig, AutoTokenizer, AutoProcessor and the weights loader read. */
static const char *const model_files[] = {
    "config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json",
    "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "preprocessor_config.json",
    "processor_config.json", "chat_template.json", "chat_template.jinja",
};

bool hub_wanted(const char *path, const struct vlm_hub_opts *o) {
    for (size_t i = 0; i < o->n_allow; i++)
        if (hub_glob(o->allow_patterns[i], path)) return true;
    if (strchr(path, '/')) return false;   /* onnx/, original/, ...: other runtimes' copies */
    for (size_t i = 0; i < sizeof model_files / sizeof model_files[0]; i++)
        if (!strcmp(path, model_files[i])) return true;
    if (o->skip_weights) return false;
    if (hub_glob("*.safetensors", path) || hub_glob("*.safetensors.index.json", path)) return true;
    return o->want_gguf && hub_glob("*.gguf", path);
}
