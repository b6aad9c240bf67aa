/* hub_internal.h — the pieces of src/hub/ shared between its files: parsers of what the hub
 * sends (model info JSON, response headers, redirect locations), the names it may give us
 * (repo paths, revisions, etags) checked before they touch the file system, the cache layout
 * and the transfer engine. */
#ifndef VLM_HUB_INTERNAL_H
#define VLM_HUB_INTERNAL_H

#include "hub/hub.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUB_COMMIT_LEN 40
#define HUB_ETAG_MAX 128          /* a blob file name: sha256 (64) or git sha1 (40) in practice */
#define HUB_URL_MAX 4096
#define HUB_PATH_MAX 1024         /* a file path inside a repo */
#define HUB_MAX_FILES 100000      /* siblings in one model info */
#define HUB_INFO_MAX (64u << 20)  /* bytes of a model info response */

/* ---- names (names.c) ---- */
bool hub_is_commit(const char *s);                   /* 40 lower-case hex digits */
bool hub_valid_repo_id(const char *s);               /* huggingface_hub's validate_repo_id */
bool hub_valid_revision(const char *s);              /* safe as refs/<rev> (may hold '/', as refs/pr/1) */
bool hub_valid_relpath(const char *s);               /* safe under snapshots/<commit>/ */
/* models--org--name (vlm_malloc'd). */
char *hub_repo_folder(const char *repo_id);
/* fnmatch over the whole path, '*' crossing '/', as huggingface_hub's filter_repo_objects. */
bool hub_glob(const char *pattern, const char *path);
/* The files a model needs (top-level config, weights, tokenizer, processor, templates). */
bool hub_wanted(const char *path, const struct vlm_hub_opts *o);

/* ---- model info (info.c) ---- */
struct hub_info {
    char    sha[HUB_COMMIT_LEN + 1];
    char  **files;       /* siblings' rfilename, each checked with hub_valid_relpath */
    size_t  n_files;
    int     gated;       /* 0 no, 1 "auto"/"manual"/true */
};
/* Parses GET /api/models/{repo}/revision/{rev}. Refuses duplicate keys, a missing or malformed
 * sha, unsafe file names and more than HUB_MAX_FILES siblings. */
int  hub_info_parse(const char *json, size_t len, struct hub_info *out, struct vlm_error *err);
void hub_info_free(struct hub_info *info);

/* ---- response headers (headers.c) ---- */
struct hub_head {
    int      status;                         /* of the last status line seen */
    char     commit[HUB_COMMIT_LEN + 1];     /* X-Repo-Commit, "" if absent or malformed */
    char     etag[HUB_ETAG_MAX + 1];         /* ETag, normalized; "" if absent or unsafe */
    char     linked_etag[HUB_ETAG_MAX + 1];  /* X-Linked-Etag, normalized */
    char     location[HUB_URL_MAX];          /* Location, "" if absent or too long */
    char     error_code[64];                 /* X-Error-Code */
    uint64_t linked_size, content_length;    /* X-Linked-Size, Content-Length */
    bool     has_linked_size, has_content_length;
    uint64_t range_start, range_end, range_total;  /* Content-Range: bytes a-b/t */
    bool     has_range;
};
void hub_head_reset(struct hub_head *h);
/* One header line as libcurl hands it over (with or without CRLF); a status line resets the
 * struct (each response of a redirect chain starts afresh). Malformed values are dropped. */
void hub_head_line(struct hub_head *h, const char *line, size_t n);
/* W/"x" or "x" -> x, refused (false) unless it is a safe file name of at most HUB_ETAG_MAX. */
bool hub_etag_normalize(const char *raw, size_t n, char *out, size_t cap);
/* Location (absolute, scheme-relative, or path) against base -> out; false if too long. */
bool hub_url_join(const char *base, const char *loc, char *out, size_t cap);
/* Same scheme, host (case-insensitive) and port (defaults filled). */
bool hub_same_origin(const char *a, const char *b);
/* Percent-encodes s into out (keeping unreserved and, if keep_slash, '/'); false if too long. */
bool hub_url_escape(const char *s, bool keep_slash, char *out, size_t cap);

/* ---- environment (env.c) ---- */
struct hub_env {
    char *endpoint;     /* no trailing '/' */
    char *token;        /* NULL if none */
    char *cache_root;
    bool  offline;
};
int  hub_env_load(const struct vlm_hub_opts *o, struct hub_env *e, struct vlm_error *err);
void hub_env_free(struct hub_env *e);

/* ---- cache layout (cache.c) ---- */
/* refs/<revision> -> commit (40 hex) if the file exists and holds one. */
bool hub_cache_read_ref(const char *repo_dir, const char *revision, char commit[HUB_COMMIT_LEN + 1]);
int  hub_cache_write_ref(const char *repo_dir, const char *revision, const char *commit, struct vlm_error *err);
/* snapshots/<commit>/<rel> -> ../../blobs/<etag> (relative, as huggingface_hub); replaces atomically. */
int  hub_cache_link(const char *repo_dir, const char *commit, const char *rel, const char *etag,
                    struct vlm_error *err);
/* mkdir -p */
int  hub_mkdirs(const char *path, struct vlm_error *err);
/* 1 if snapshots/<commit>/<rel> exists and resolves to a regular file. */
bool hub_cache_has(const char *repo_dir, const char *commit, const char *rel);

/* ---- HTTP (http.c) ---- */
struct hub_http;   /* one libcurl handle, reused for keep-alive; one thread at a time */
int  hub_http_new(struct hub_http **out, struct vlm_error *err);
void hub_http_free(struct hub_http *h);
/* GET url into *body (vlm_malloc'd, NUL-terminated, at most max bytes). The status and headers
 * land in *head; a transport failure is VLM_E_FETCH. */
int  hub_http_get(struct hub_http *h, const char *url, const char *token, size_t max, char **body,
                  size_t *len, struct hub_head *head, struct vlm_error *err);
/* HEAD url, no redirects followed. */
int  hub_http_head(struct hub_http *h, const char *url, const char *token, struct hub_head *head,
                   struct vlm_error *err);
/* GET url bytes [from, to] (to < 0: to the end) handing each block to sink; redirects followed,
 * token sent only if non-NULL. sink returns false to abort. *curl_failed: the transport broke
 * (retry-able) rather than the server answering. */
typedef bool (*hub_sink_fn)(void *user, const void *data, size_t n);
int  hub_http_range(struct hub_http *h, const char *url, const char *token, uint64_t from, int64_t to,
                    hub_sink_fn sink, void *user, struct hub_head *head, bool *transport_failed,
                    struct vlm_error *err);
/* Turns a hub error answer into an actionable message (gated, not found, token). */
int  hub_http_status_error(const struct hub_head *head, const char *what, const char *repo_id,
                           const char *endpoint, bool have_token, struct vlm_error *err);

/* ---- transfers (download.c, progress.c) ---- */
struct hub_file {
    const char *rel;             /* path in the repo */
    char        url[HUB_URL_MAX];/* where the bytes are (after the hub's redirect) */
    bool        send_token;      /* false once the URL leaves the hub's origin */
    char        etag[HUB_ETAG_MAX + 1];
    uint64_t    size;
    bool        size_known;
};
struct hub_progress;
struct hub_progress *hub_progress_new(enum vlm_hub_progress mode, size_t n_files);
void hub_progress_start(struct hub_progress *p, size_t i, const char *name, uint64_t size, uint64_t have);
void hub_progress_add(struct hub_progress *p, size_t i, uint64_t n);
void hub_progress_done(struct hub_progress *p, size_t i);
void hub_progress_free(struct hub_progress *p);

/* Fetches files[0..n) into repo_dir/blobs/<etag> (resuming <etag>.incomplete, pieces in
 * parallel, checksums verified) and links each into snapshots/<commit>/. */
int hub_download(const char *repo_dir, const char *commit, struct hub_file *files, size_t n,
                 const struct hub_env *env, int n_conn, enum vlm_hub_progress mode, struct vlm_error *err);

/* Tuning for tests: a file of more than 2 pieces is split (VLM_HUB_PIECE_BYTES, default 64 MiB). */
uint64_t hub_piece_bytes(void);

#endif
