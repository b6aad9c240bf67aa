/* media.h — image bytes from a request's image_url: data: URLs (strict base64), http(s)://
 * through libcurl under the address policy (public addresses only unless opened, the
 * connection pinned to the checked address, every redirect hop re-checked), and file:// only
 * inside --allowed-local-media-path. Errors are generic: no paths, addresses or library text. */
#ifndef VLM_SERVER_MEDIA_H
#define VLM_SERVER_MEDIA_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

struct vlm_media_policy {
    const char  *local_root;        /* realpath of --allowed-local-media-path; NULL = no file:// */
    const char *const *domains;     /* --allowed-media-domains (lower case); NULL/0 = any */
    size_t       n_domains;
    int          allow_private;     /* let http(s) reach loopback/private/link-local addresses */
    long         timeout_ms;        /* total time for one fetch, all hops (VLLM_IMAGE_FETCH_TIMEOUT) */
    int          max_redirects;     /* 0 = redirects refused (VLLM_MEDIA_URL_ALLOW_REDIRECTS=0) */
    size_t       max_bytes;         /* cap on an image's encoded bytes from any source */
};

/* Fills p with the defaults: no local files, any domain, public addresses only, 5 s,
 * 5 redirect hops, 20 MiB. */
void vlm_media_policy_default(struct vlm_media_policy *p);

/* Call once at start-up, before threads fetch (curl_global_init). */
int vlm_media_global_init(struct vlm_error *err);

/* Loads the bytes url[0..len) names into *data (vlm_malloc'd, caller frees) / *n.
 * Codes: VLM_E_FORMAT (malformed URL or data: URL), VLM_E_UNSUPPORTED (scheme),
 * VLM_E_FORBIDDEN (refused by policy: address, domain, path, file type),
 * VLM_E_TOO_LARGE (past max_bytes, found before buffering more than the cap),
 * VLM_E_FETCH (network error, HTTP status other than 200, timeout, encoded body),
 * VLM_E_NOT_FOUND (a local file that does not exist), VLM_E_NOMEM. Thread-safe. */
int vlm_media_load(const struct vlm_media_policy *p, const char *url, size_t len,
                   uint8_t **data, size_t *n, struct vlm_error *err);

/* The data: URL part alone (exposed for the fuzzer and tests). */
int vlm_media_load_data_url(const char *url, size_t len, size_t max_bytes, uint8_t **data,
                            size_t *n, struct vlm_error *err);

/* The file:// part alone: path is the URL's percent-encoded path. */
int vlm_media_load_file(const char *root, const char *path, size_t max_bytes, uint8_t **data,
                        size_t *n, struct vlm_error *err);

#endif
