/* env.c — where the hub is and who we are, read as huggingface_hub reads it: HF_ENDPOINT,
 * HF_TOKEN then the token file ($HF_TOKEN_PATH, else $HF_HOME/token), the cache root
 * ($HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub,
 * ~/.cache/huggingface/hub) and offline mode (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE). */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static bool env_true(const char *name) {
    const char *v = env(name);
    return v && (!strcmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") || !strcasecmp(v, "true"));
}

/* ~ and ~/x expanded with $HOME (os.path.expanduser). */
static char *expand_home(const char *p) {
    if (p[0] != '~' || (p[1] && p[1] != '/')) return vlm_strdup(p);
    const char *home = env("HOME");
    if (!home) return vlm_strdup(p);
    struct vlm_buf b = {0};
    if (vlm_buf_appendf(&b, "%s%s", home, p + 1)) { vlm_buf_free(&b); return NULL; }
    return vlm_buf_take(&b);
}

static char *hf_home(void) {
    const char *h = env("HF_HOME");
    if (h) return expand_home(h);
    struct vlm_buf b = {0};
    const char *xdg = env("XDG_CACHE_HOME");
    int rc = xdg ? vlm_buf_appendf(&b, "%s/huggingface", xdg) : vlm_buf_appendf(&b, "~/.cache/huggingface");
    if (rc) { vlm_buf_free(&b); return NULL; }
    char *raw = vlm_buf_take(&b), *out = expand_home(raw);
    vlm_free(raw);
    return out;
}

int vlm_hub_cache_root(const char *override, char **out, struct vlm_error *err) {
    const char *v = override && *override ? override : env("HF_HUB_CACHE");
    if (!v) v = env("HUGGINGFACE_HUB_CACHE");
    if (v) *out = expand_home(v);
    else {
        char *home = hf_home();
        *out = home ? vlm_path_join(home, "hub") : NULL;
        vlm_free(home);
    }
    return *out ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

/* The first line of the token file, trimmed; NULL if none. */
static char *token_from_file(void) {
    char *path = NULL;
    const char *p = env("HF_TOKEN_PATH");
    if (p) path = expand_home(p);
    else {
        char *home = hf_home();
        path = home ? vlm_path_join(home, "token") : NULL;
        vlm_free(home);
    }
    char *text = NULL;
    size_t len = 0;
    if (!path || !vlm_file_exists(path) || vlm_read_file(path, 1 << 16, &text, &len, NULL) != VLM_OK) {
        vlm_free(path);
        return NULL;
    }
    vlm_free(path);
    char *s = text;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
    size_t n = strcspn(s, "\r\n");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    char *tok = n ? vlm_strndup(s, n) : NULL;
    vlm_free(text);
    return tok;
}


static bool token_ok(const char *t) {
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || *t == 0x7f) return false;   /* it goes into a header line */
    return true;
}

int hub_env_load(const struct vlm_hub_opts *o, struct hub_env *e, struct vlm_error *err) {
    memset(e, 0, sizeof *e);
    const char *ep = o->endpoint && *o->endpoint ? o->endpoint : env("HF_ENDPOINT");
    e->endpoint = vlm_strdup(ep ? ep : "https://huggingface.co");
    if (!e->endpoint) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    for (size_t n = strlen(e->endpoint); n && e->endpoint[n - 1] == '/'; n--) e->endpoint[n - 1] = 0;
    if ((strncmp(e->endpoint, "http://", 7) && strncmp(e->endpoint, "https://", 8)) || !token_ok(e->endpoint)) {
        hub_env_free(e);
        return vlm_error_set(err, VLM_E_INVALID, "HF_ENDPOINT must be an http:// or https:// URL without spaces");
    }
    const char *t = o->token && *o->token ? o->token : env("HF_TOKEN");
    if (!t) t = env("HUGGING_FACE_HUB_TOKEN");
    e->token = t ? vlm_strdup(t) : token_from_file();
    if (e->token && !token_ok(e->token)) {
        hub_env_free(e);
        return vlm_error_set(err, VLM_E_INVALID, "the Hugging Face token holds spaces or control characters");
    }
    e->offline = o->offline >= 0 ? o->offline == 1 : env_true("HF_HUB_OFFLINE") || env_true("TRANSFORMERS_OFFLINE");
    int rc = vlm_hub_cache_root(o->cache_dir, &e->cache_root, err);
    if (rc) hub_env_free(e);
    return rc;
}

void hub_env_free(struct hub_env *e) {
    vlm_free(e->endpoint);
    vlm_free(e->token);
    vlm_free(e->cache_root);
    memset(e, 0, sizeof *e);
}
