/* http_cors.c — CORS as vLLM's server applies it (FastAPI's CORSMiddleware with
 * --allowed-origins/--allowed-methods/--allowed-headers ["*"] and --allow-credentials by
 * default off): simple requests from an allowed origin get Access-Control-Allow-Origin, and a
 * preflight OPTIONS is answered by the server itself. */
#include "server/http_internal.h"
#include "server/http_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const any[] = {"*"};

static int listed(const char *const *list, int n, const char *v, int icase) {
    if (!list || n <= 0) { list = any; n = 1; }
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], "*") || (icase ? !strcasecmp(list[i], v) : !strcmp(list[i], v))) return 1;
    return 0;
}

static int wildcard(const char *const *list, int n) {
    if (!list || n <= 0) return 1;
    for (int i = 0; i < n; i++) if (!strcmp(list[i], "*")) return 1;
    return 0;
}

/* Access-Control-Allow-Origin (+ credentials, Vary) for an allowed origin. */
static int origin_headers(const struct vlm_http *s, const char *origin, char *out, size_t cap) {
    const struct vlm_http_config *c = &s->cfg;
    int star = wildcard(c->cors_origins, c->n_cors_origins);
    int n = snprintf(out, cap, "Access-Control-Allow-Origin: %s\r\n%s%s", star && !c->cors_credentials ? "*" : origin,
                     c->cors_credentials ? "Access-Control-Allow-Credentials: true\r\n" : "",
                     star && !c->cors_credentials ? "" : "Vary: Origin\r\n");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

void vlm_http_cors_headers(const struct vlm_http *s, const struct vlm_http_head *h, char *out, size_t cap) {
    out[0] = 0;
    if (!h->origin[0] || !listed(s->cfg.cors_origins, s->cfg.n_cors_origins, h->origin, 0)) return;
    if (origin_headers(s, h->origin, out, cap) < 0) out[0] = 0;
}

int vlm_http_cors_preflight(const struct vlm_http *s, const struct vlm_http_head *h, char *out, size_t cap) {
    const struct vlm_http_config *c = &s->cfg;
    out[0] = 0;
    if (!listed(c->cors_origins, c->n_cors_origins, h->origin, 0) ||
        !listed(c->cors_methods, c->n_cors_methods, h->acr_method, 1))
        return 400;
    char methods[512] = "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT";
    if (!wildcard(c->cors_methods, c->n_cors_methods)) {
        size_t used = 0;
        methods[0] = 0;
        for (int i = 0; i < c->n_cors_methods && used < sizeof methods; i++)
            used += (size_t)snprintf(methods + used, sizeof methods - used, "%s%s", i ? ", " : "", c->cors_methods[i]);
    }
    /* requested headers: all allowed with "*", else each must be listed (the CORS-safelisted ones always are) */
    const char *want = h->acr_headers;
    if (!wildcard(c->cors_headers, c->n_cors_headers)) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", want);
        for (char *sv = NULL, *t = strtok_r(tmp, ", ", &sv); t; t = strtok_r(NULL, ", ", &sv))
            if (strcasecmp(t, "accept") && strcasecmp(t, "accept-language") && strcasecmp(t, "content-language") &&
                strcasecmp(t, "content-type") && !listed(c->cors_headers, c->n_cors_headers, t, 1))
                return 400;
    }
    int n = origin_headers(s, h->origin, out, cap);
    if (n < 0) return 400;
    int m = snprintf(out + n, cap - (size_t)n, "Access-Control-Allow-Methods: %s\r\n%s%s%sAccess-Control-Max-Age: 600\r\n",
                     methods, want[0] ? "Access-Control-Allow-Headers: " : "", want, want[0] ? "\r\n" : "");
    if (m < 0 || (size_t)m >= cap - (size_t)n) { out[0] = 0; return 400; }
    return 200;
}
