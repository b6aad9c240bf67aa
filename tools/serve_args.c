/* serve_args.c — how `vlm serve` reads command lines as people paste them from vLLM: a
 * --config FILE.yaml whose keys are flag names (the command line wins over it), --flag=value,
 * and a suggestion of the nearest flag for a mistyped one. */
#include "serve_args.h"

#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

struct argv_buf {
    char **v;
    int n, cap;
};

static int push(struct argv_buf *a, const char *s, size_t len) {
    if (a->n + 2 > a->cap) {
        int nc = a->cap ? a->cap * 2 : 64;
        char **p = vlm_realloc(a->v, sizeof *p * (size_t)nc);
        if (!p) return -1;
        a->v = p;
        a->cap = nc;
    }
    char *c = vlm_malloc(len + 1);
    if (!c) return -1;
    memcpy(c, s, len);
    c[len] = 0;
    a->v[a->n++] = c;
    a->v[a->n] = NULL;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

/* A YAML scalar without its quotes and trailing comment. */
static char *scalar(char *v) {
    v = trim(v);
    if (*v == '"' || *v == '\'') {
        char q = *v++, *e = strchr(v, q);
        if (e) *e = 0;
        return v;
    }
    char *hash = strstr(v, " #");
    if (hash) *hash = 0;
    return trim(v);
}

/* The flags whose value is a JSON list in vLLM (the rest take a YAML list as several values). */
static int json_list_flag(const char *key) {
    return !strcmp(key, "allowed-origins") || !strcmp(key, "allowed-methods") || !strcmp(key, "allowed-headers");
}

static int emit_list(struct argv_buf *a, const char *key, char **items, int n) {
    if (json_list_flag(key)) {
        char buf[4096];
        size_t used = (size_t)snprintf(buf, sizeof buf, "[");
        for (int i = 0; i < n && used < sizeof buf; i++)
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s\"%s\"", i ? "," : "", items[i]);
        if (used + 2 > sizeof buf) return -1;
        buf[used++] = ']';
        return push(a, buf, used);
    }
    for (int i = 0; i < n; i++)
        if (push(a, items[i], strlen(items[i]))) return -1;
    return 0;
}

/* Flow list "[a, b]" -> items (in place). */
static int flow_items(char *v, char **items, int max) {
    int n = 0;
    v[strlen(v) - 1] = 0;
    for (char *sv = NULL, *t = strtok_r(v + 1, ",", &sv); t && n < max; t = strtok_r(NULL, ",", &sv))
        if (*(t = scalar(t))) items[n++] = t;
    return n;
}

int vlm_serve_read_config(const char *path, char ***out, int *n_out, char *err, size_t err_len) {
    char *text = NULL;
    size_t len = 0;
    struct vlm_error e;
    *out = NULL;
    *n_out = 0;
    if (vlm_read_file(path, 1u << 20, &text, &len, &e) != VLM_OK) {
        snprintf(err, err_len, "--config %s: cannot read the file", path);
        return -1;
    }
    struct argv_buf a = {0};
    char *items[256], *key = NULL, flag[256];
    int n_items = 0, line_no = 0, rc = 0;
    for (char *sv = NULL, *line = strtok_r(text, "\n", &sv); line && !rc; line = strtok_r(NULL, "\n", &sv)) {
        line_no++;
        char *t = trim(line);
        if (!*t || *t == '#' || !strcmp(t, "---")) continue;
        if (t[0] == '-' && (t[1] == ' ' || !t[1])) {          /* "- item" of a block list */
            if (!key || n_items >= 256) { rc = -1; break; }
            items[n_items++] = scalar(t + 1);
            continue;
        }
        if (key && n_items && emit_list(&a, key, items, n_items)) { rc = -1; break; }
        key = NULL;
        n_items = 0;
        char *colon = strchr(t, ':');
        if (!colon || line[0] == ' ' || line[0] == '\t') { rc = -1; break; }
        *colon = 0;
        char *k = trim(t), *v = trim(colon + 1);
        while (*k == '-') k++;
        if (snprintf(flag, sizeof flag, "--%s", k) >= (int)sizeof flag || push(&a, flag, strlen(flag))) { rc = -1; break; }
        if (!*v) { key = a.v[a.n - 1] + 2; continue; }      /* a block list follows */
        if (!strcmp(v, "true") || !strcmp(v, "True")) continue;
        if (!strcmp(v, "false") || !strcmp(v, "False")) { vlm_free(a.v[--a.n]); a.v[a.n] = NULL; continue; }
        if (v[0] == '[' && v[strlen(v) - 1] == ']') {
            int n = flow_items(v, items, 256);
            if (emit_list(&a, k, items, n)) rc = -1;
            continue;
        }
        v = v[0] == '{' ? v : scalar(v);
        if (push(&a, v, strlen(v))) rc = -1;
    }
    if (!rc && key && n_items && emit_list(&a, key, items, n_items)) rc = -1;
    vlm_free(text);
    if (rc) {
        snprintf(err, err_len, "--config %s: line %d is not 'key: value' YAML of vLLM flags", path, line_no);
        vlm_serve_free_args(a.v, a.n);
        return -1;
    }
    *out = a.v;
    *n_out = a.n;
    return 0;
}

void vlm_serve_free_args(char **v, int n) {
    for (int i = 0; i < n; i++) vlm_free(v[i]);
    vlm_free(v);
}

/* Edit distance with a cap (cheap enough for flag names). */
static int distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

const char *vlm_nearest_flag(const char *word, const char *const *flags, int n) {
    const char *best = NULL;
    int bd = 4;
    size_t wl = strcspn(word, "=");
    char w[128];
    if (wl >= sizeof w) return NULL;
    memcpy(w, word, wl);
    w[wl] = 0;
    for (int i = 0; i < n; i++) {
        int d = distance(w, flags[i]);
        if (d < bd) { bd = d; best = flags[i]; }
    }
    return best && bd <= (int)(strlen(w) / 3 + 1) ? best : NULL;
}
