/* http.c — the hub's HTTP through libcurl: small GETs into memory (model info), HEAD without
 * following redirects (file metadata), ranged GETs streamed to a sink (file bytes); and the
 * hub's error answers turned into messages a user can act on. */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "vlm.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hub_http {
    CURL *curl;
    char  errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1; }

int hub_http_new(struct hub_http **out, struct vlm_error *err) {
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc) return vlm_error_set(err, VLM_E_INTERNAL, "libcurl initialisation failed");
    struct hub_http *h = vlm_calloc(1, sizeof *h);
    if (!h || !(h->curl = curl_easy_init())) {
        vlm_free(h);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory (libcurl handle)");
    }
    *out = h;
    return VLM_OK;
}

void hub_http_free(struct hub_http *h) {
    if (!h) return;
    curl_easy_cleanup(h->curl);
    vlm_free(h);
}

static long env_seconds(const char *name, long dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    char *end;
    double d = strtod(v, &end);
    return *end || d < 1 || d > 86400 ? dflt : (long)d;
}

static size_t on_header(char *p, size_t size, size_t n, void *user) {
    hub_head_line(user, p, size * n);
    return size * n;
}

/* Options every request shares; the token only goes to the URL it was meant for (libcurl
 * drops a custom Authorization header when a redirect changes host). */
static struct curl_slist *setup(struct hub_http *h, const char *url, const char *token, struct hub_head *head) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    hub_head_reset(head);
    h->errbuf[0] = 0;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, env_seconds("HF_HUB_ETAG_TIMEOUT", 10));
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, head);
    char ua[96];
    snprintf(ua, sizeof ua, "vlm/%s; hf_hub-compatible", vlm_version());
    curl_easy_setopt(c, CURLOPT_USERAGENT, ua);
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept-Encoding: identity");
    if (token && hdrs) {
        char line[4200];
        snprintf(line, sizeof line, "Authorization: Bearer %s", token);
        struct curl_slist *more = curl_slist_append(hdrs, line);
        if (more) hdrs = more;
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

static int transport_error(struct hub_http *h, CURLcode rc, const char *url, struct vlm_error *err) {
    /* The URL may be a signed CDN link: name only its origin. */
    char origin[256];
    size_t n = strcspn(url, "?");
    const char *p = strstr(url, "://");
    if (p) n = (size_t)(p + 3 - url) + strcspn(p + 3, "/?#");
    snprintf(origin, sizeof origin, "%.*s", (int)(n < 200 ? n : 200), url);
    return vlm_error_set(err, VLM_E_FETCH, "cannot reach %s: %s", origin, h->errbuf[0] ? h->errbuf : curl_easy_strerror(rc));
}

struct membuf { struct vlm_buf b; bool over; };

static size_t on_body(char *p, size_t size, size_t n, void *user) {
    struct membuf *m = user;
    if (vlm_buf_append(&m->b, p, size * n) != VLM_OK) { m->over = true; return 0; }
    return size * n;
}

int hub_http_get(struct hub_http *h, const char *url, const char *token, size_t max, char **body,
                 size_t *len, struct hub_head *head, struct vlm_error *err) {
    *body = NULL;
    *len = 0;
    struct curl_slist *hdrs = setup(h, url, token, head);
    struct membuf m = {.b = {.max = max}};
    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h->curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, env_seconds("HF_HUB_ETAG_TIMEOUT", 10) * 6);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &m);
    CURLcode rc = curl_easy_perform(h->curl);
    curl_slist_free_all(hdrs);
    if (m.over) {
        vlm_buf_free(&m.b);
        return vlm_error_set(err, VLM_E_TOO_LARGE, "answer from %s is larger than %zu bytes", url, max);
    }
    if (rc != CURLE_OK) {
        vlm_buf_free(&m.b);
        return transport_error(h, rc, url, err);
    }
    *len = m.b.len;
    vlm_buf_cstr(&m.b);
    *body = vlm_buf_take(&m.b);
    if (!*body) *body = vlm_strdup("");
    return *body ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

static size_t discard(char *p, size_t size, size_t n, void *user) {
    (void)p, (void)user;
    return size * n;
}

int hub_http_head(struct hub_http *h, const char *url, const char *token, struct hub_head *head,
                  struct vlm_error *err) {
    struct curl_slist *hdrs = setup(h, url, token, head);
    curl_easy_setopt(h->curl, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT, env_seconds("HF_HUB_ETAG_TIMEOUT", 10) * 3);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, discard);
    CURLcode rc = curl_easy_perform(h->curl);
    curl_slist_free_all(hdrs);
    return rc == CURLE_OK ? VLM_OK : transport_error(h, rc, url, err);
}

struct range_ctx {
    hub_sink_fn sink;
    void *user;
    struct hub_head *head;
    uint64_t from;
    bool checked, refused, wrong_range, ignored_range;
};

static size_t on_range(char *p, size_t size, size_t n, void *user) {
    struct range_ctx *r = user;
    if (!r->checked) {
        r->checked = true;
        const struct hub_head *h = r->head;
        if (h->status == 206) r->wrong_range = !h->has_range || h->range_start != r->from;
        else if (h->status == 200) r->ignored_range = r->from > 0;
        else r->refused = true;
    }
    if (r->refused || r->wrong_range || r->ignored_range) return 0;
    return r->sink(r->user, p, size * n) ? size * n : 0;
}

int hub_http_range(struct hub_http *h, const char *url, const char *token, uint64_t from, int64_t to,
                   hub_sink_fn sink, void *user, struct hub_head *head, bool *transport_failed,
                   struct vlm_error *err) {
    *transport_failed = false;
    struct curl_slist *hdrs = setup(h, url, token, head);
    struct range_ctx r = {.sink = sink, .user = user, .head = head, .from = from};
    char range[64];
    if (from > 0 || to >= 0) {
        if (to >= 0) snprintf(range, sizeof range, "%llu-%lld", (unsigned long long)from, (long long)to);
        else snprintf(range, sizeof range, "%llu-", (unsigned long long)from);
        curl_easy_setopt(h->curl, CURLOPT_RANGE, range);
    }
    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h->curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(h->curl, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h->curl, CURLOPT_LOW_SPEED_TIME, env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", 10));
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, on_range);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, &r);
    CURLcode rc = curl_easy_perform(h->curl);
    curl_slist_free_all(hdrs);
    if (r.wrong_range)
        return vlm_error_set(err, VLM_E_FETCH, "the server answered a range request from byte %llu with another range",
                             (unsigned long long)from);
    if (r.ignored_range) return vlm_error_set(err, VLM_E_UNSUPPORTED, "the server ignored a range request");
    if (r.refused || (rc == CURLE_OK && head->status != 200 && head->status != 206))
        return vlm_error_set(err, VLM_E_FETCH, "HTTP %d", head->status);
    if (rc == CURLE_WRITE_ERROR) return vlm_error_set(err, VLM_E_CANCELLED, "transfer stopped by the receiver");
    if (rc != CURLE_OK) {
        *transport_failed = true;
        return transport_error(h, rc, url, err);
    }
    return VLM_OK;
}

int hub_http_status_error(const struct hub_head *head, const char *what, const char *repo_id,
                          const char *endpoint, bool have_token, struct vlm_error *err) {
    const char *code = head->error_code;
    int s = head->status;
    if (!strcmp(code, "GatedRepo") || (s == 403 && !strcmp(code, "")))
        return vlm_error_set(err, VLM_E_FORBIDDEN,
                             "%s is gated (HTTP %d): accept its license on %s/%s while logged in, then %s", repo_id, s,
                             endpoint, repo_id,
                             have_token ? "check that HF_TOKEN (or --hf-token) belongs to that account and may read gated repos"
                                        : "set HF_TOKEN (or pass --hf-token, or run `hf auth login`) to a token of that account");
    if (!strcmp(code, "RevisionNotFound"))
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: revision not found (HTTP %d); check --revision", what, s);
    if (!strcmp(code, "EntryNotFound"))
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: no such file in the repository (HTTP %d)", what, s);
    if (!strcmp(code, "RepoNotFound") || s == 401 || s == 404)
        return vlm_error_set(err, VLM_E_NOT_FOUND,
                             "%s: repository %s not found on %s (HTTP %d)%s", what, repo_id, endpoint, s,
                             have_token ? "; check the name, and that your token may read it if it is private"
                                        : "; check the name; if it is private or gated, set HF_TOKEN (or --hf-token)");
    if (s == 429) return vlm_error_set(err, VLM_E_FETCH, "%s: the hub is rate-limiting requests (HTTP 429); try again later", what);
    return vlm_error_set(err, VLM_E_FETCH, "%s: the hub answered HTTP %d", what, s);
}
