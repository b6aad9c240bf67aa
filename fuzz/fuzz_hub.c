/* fuzz_hub.c — what a hub (or a hostile mirror) sends: model info JSON, response header lines,
 * redirect locations, etags and file names. Parsers must never read out of bounds, and what
 * they accept must be safe to use as a file name or path under the cache. */
#include "hub/hub_internal.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

/* A path that stays under its folder: no absolute start, no "." or ".." component, no
 * backslash or control bytes. */
static void check_name(const char *s) {
    if (!*s || s[0] == '/' || strstr(s, "\\")) abort();
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20) abort();
    for (const char *p = s; *p;) {
        size_t len = strcspn(p, "/");
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) abort();
        p += len;
        if (*p) p++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    char *s = vlm_strndup((const char *)data + 1, size - 1);   /* NUL-terminated copy (stops at a NUL) */
    if (!s) return 0;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0: {
        struct hub_info info;
        if (hub_info_parse((const char *)data + 1, n, &info, NULL) == 0) {
            if (!hub_is_commit(info.sha)) abort();
            for (size_t i = 0; i < info.n_files; i++) check_name(info.files[i]);
            hub_info_free(&info);
        }
        break;
    }
    case 1: {
        struct hub_head h;
        hub_head_reset(&h);
        const char *p = (const char *)data + 1, *end = p + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p + 1) : (size_t)(end - p);
            hub_head_line(&h, p, len);
            p += len;
        }
        if (h.etag[0]) { check_name(h.etag); if (strchr(h.etag, '/') || h.etag[0] == '.') abort(); }
        if (h.linked_etag[0] && (strchr(h.linked_etag, '/') || h.linked_etag[0] == '.')) abort();
        if (h.commit[0] && !hub_is_commit(h.commit)) abort();
        if (h.has_range && (h.range_start > h.range_end || h.range_end >= h.range_total)) abort();
        break;
    }
    case 2: {
        char *nl = strchr(s, '\n');
        const char *base = s, *loc = nl ? nl + 1 : "";
        if (nl) *nl = 0;
        char out[HUB_URL_MAX];
        if (hub_url_join(base, loc, out, sizeof out) && strlen(out) >= sizeof out) abort();
        (void)hub_same_origin(base, loc);
        if (hub_url_escape(base, true, out, sizeof out))
            for (const char *p = out; *p; p++) if ((unsigned char)*p <= 0x20 || *p == '?' || *p == '#') abort();
        break;
    }
    default: {
        char e[HUB_ETAG_MAX + 1];
        if (hub_etag_normalize(s, strlen(s), e, sizeof e) && (strchr(e, '/') || e[0] == '.')) abort();
        if (hub_valid_relpath(s)) check_name(s);
        if (hub_valid_revision(s)) check_name(s);
        if (hub_valid_repo_id(s)) { char *f = hub_repo_folder(s); if (f && strchr(f, '/')) abort(); vlm_free(f); }
        break;
    }
    }
    vlm_free(s);
    return 0;
}
