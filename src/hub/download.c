/* download.c — the transfer engine: every file to fetch is cut into pieces (one for small
 * files, many for large ones), worker threads take pieces in order and write them with pwrite
 * into blobs/<etag>.incomplete; a large file's progress per piece is kept beside it in
 * <etag>.incomplete.parts so a killed run resumes where each piece stopped (a small file
 * resumes from the .incomplete's length, as huggingface_hub did). A finished file is checked
 * (size; SHA-256 for LFS etags, the git blob SHA-1 otherwise) before it is renamed into
 * blobs/ and linked from the snapshot: a mismatch discards it. */
#include "hub/hub_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define PARTS_HEAD 64           /* "vlm-hub-parts 1 <size> <piece> <n>" padded */
#define PARTS_LINE 21           /* "%020llu\n" per piece: bytes done */
#define PARTS_EVERY (256u << 10) /* record a piece's progress every 256 KiB (a 21-byte pwrite) */
#define RETRIES 3

struct dl_file {
    struct hub_file *f;
    size_t idx;
    char inc[4200], parts[4200], blob[4200];
    int fd, parts_fd;
    uint64_t piece;
    size_t n_pieces, left;      /* left: pieces not finished (under dl.mu) */
};

struct dl_piece {
    struct dl_file *file;
    size_t k;
    uint64_t start, end;        /* [start, end); end == UINT64_MAX: size unknown */
    uint64_t done, recorded;
};

struct dl {
    pthread_mutex_t mu;
    struct dl_file *files;
    size_t n_files;
    struct dl_piece *pieces;
    size_t n_pieces, next;
    const struct hub_env *env;
    const char *repo_dir, *commit;
    struct hub_progress *prog;
    atomic_int abort;
    struct vlm_error err;
};

uint64_t hub_piece_bytes(void) {
    const char *v = getenv("VLM_HUB_PIECE_BYTES");
    if (v && *v) {
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (!*end && n >= 4096) return n;
    }
    return 64u << 20;
}

static void fail(struct dl *d, const struct vlm_error *e) {
    pthread_mutex_lock(&d->mu);
    if (!d->err.code) d->err = *e;
    atomic_store(&d->abort, 1);
    pthread_mutex_unlock(&d->mu);
}

static int io_error(const char *what, const char *path, int e, struct vlm_error *err) {
    if (e == ENOSPC || e == EDQUOT)
        return vlm_error_set(err, VLM_E_IO, "disk full while %s %s: free some space (or pass --download-dir) and run "
                             "again; the transfer resumes where it stopped", what, path);
    return vlm_error_set(err, VLM_E_IO, "%s %s: %s", what, path, strerror(e));
}

/* ---- the per-piece progress file ---- */

static void parts_record(struct dl_piece *p) {
    struct dl_file *f = p->file;
    if (f->parts_fd < 0 || p->recorded == p->done) return;
    char line[PARTS_LINE + 1];
    snprintf(line, sizeof line, "%020" PRIu64 "\n", p->done);
    if (pwrite(f->parts_fd, line, PARTS_LINE, (off_t)(PARTS_HEAD + PARTS_LINE * p->k)) == PARTS_LINE)
        p->recorded = p->done;
}

static int parts_create(struct dl_file *f, struct dl_piece *ps, struct vlm_error *err) {
    f->parts_fd = open(f->parts, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (f->parts_fd < 0) return io_error("creating", f->parts, errno, err);
    char head[PARTS_HEAD + 1];
    memset(head, ' ', PARTS_HEAD);
    int n = snprintf(head, sizeof head, "vlm-hub-parts 1 %" PRIu64 " %" PRIu64 " %zu", f->f->size, f->piece, f->n_pieces);
    head[n] = ' ';
    head[PARTS_HEAD - 1] = '\n';
    if (pwrite(f->parts_fd, head, PARTS_HEAD, 0) != PARTS_HEAD) return io_error("writing", f->parts, errno, err);
    for (size_t k = 0; k < f->n_pieces; k++) {
        ps[k].recorded = UINT64_MAX;
        parts_record(&ps[k]);
    }
    return VLM_OK;
}

/* Reads an existing progress file made for this size: its geometry wins over today's setting. */
static bool parts_read_geometry(const char *path, uint64_t size, uint64_t *piece, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return false;
    char head[PARTS_HEAD + 1] = {0};
    bool ok = fread(head, 1, PARTS_HEAD, fp) == PARTS_HEAD;
    fclose(fp);
    unsigned long long s, p, c;
    if (!ok || sscanf(head, "vlm-hub-parts 1 %llu %llu %llu", &s, &p, &c) != 3) return false;
    if (s != size || p < 4096 || c == 0 || c > (1u << 20) || s / p + (s % p != 0) != c) return false;
    *piece = p;
    *n = (size_t)c;
    return true;
}

static void parts_read_done(struct dl_file *f, struct dl_piece *ps) {
    for (size_t k = 0; k < f->n_pieces; k++) {
        char line[PARTS_LINE + 1] = {0};
        char *end;
        ps[k].done = 0;
        if (pread(f->parts_fd, line, PARTS_LINE, (off_t)(PARTS_HEAD + PARTS_LINE * k)) != PARTS_LINE) continue;
        unsigned long long v = strtoull(line, &end, 10);
        if (end == line + PARTS_LINE - 1 && v <= ps[k].end - ps[k].start) ps[k].done = v;
        ps[k].recorded = ps[k].done;
    }
}

/* ---- checking a finished file ---- */

static int verify(struct dl_file *f, uint64_t size, struct vlm_error *err) {
    const char *etag = f->f->etag;
    size_t elen = strlen(etag);
    bool is_hex = true;
    for (size_t i = 0; i < elen; i++) is_hex &= (etag[i] >= '0' && etag[i] <= '9') || (etag[i] >= 'a' && etag[i] <= 'f');
    const EVP_MD *md = is_hex && elen == 64 ? EVP_sha256() : is_hex && elen == 40 ? EVP_sha1() : NULL;
    if (!md) return VLM_OK;   /* an etag that is no digest (some mirrors): the size check is all we have */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t *buf = vlm_malloc(4u << 20);
    int rc = VLM_OK;
    if (!ctx || !buf || !EVP_DigestInit_ex(ctx, md, NULL)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory hashing %s", f->f->rel);
    if (!rc && elen == 40) {   /* git's blob id: sha1("blob <size>\0" + bytes) */
        char pre[48];
        int n = snprintf(pre, sizeof pre, "blob %" PRIu64, size);
        EVP_DigestUpdate(ctx, pre, (size_t)n + 1);
    }
    for (uint64_t off = 0; !rc && off < size;) {
        ssize_t got = pread(f->fd, buf, 4u << 20, (off_t)off);
        if (got <= 0) rc = io_error("reading", f->inc, got < 0 ? errno : EIO, err);
        else EVP_DigestUpdate(ctx, buf, (size_t)got), off += (uint64_t)got;
    }
    uint8_t dg[EVP_MAX_MD_SIZE];
    unsigned int dn = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (!rc && EVP_DigestFinal_ex(ctx, dg, &dn)) {
        for (unsigned i = 0; i < dn; i++) snprintf(hex + 2 * i, 3, "%02x", dg[i]);
        if (strcmp(hex, etag))
            rc = vlm_error_set(err, VLM_E_FORMAT,
                               "checksum mismatch for %s: the hub names it %s %s but the bytes received hash to %s; "
                               "the download was discarded and nothing entered the cache (run again to retry; if it "
                               "repeats, the server or a proxy corrupts the file)",
                               f->f->rel, elen == 64 ? "sha256" : "git blob", etag, hex);
    }
    EVP_MD_CTX_free(ctx);
    vlm_free(buf);
    return rc;
}

static int finish_file(struct dl *d, struct dl_file *f, struct vlm_error *err) {
    struct stat st;
    if (fstat(f->fd, &st) != 0) return io_error("checking", f->inc, errno, err);
    uint64_t size = (uint64_t)st.st_size;
    if (f->f->size_known && size != f->f->size)
        return vlm_error_set(err, VLM_E_FETCH, "%s: received %" PRIu64 " bytes, the hub announced %" PRIu64
                             "; run again to resume", f->f->rel, size, f->f->size);
    int rc = verify(f, size, err);
    if (rc == VLM_E_FORMAT) {
        unlink(f->inc);
        if (f->parts_fd >= 0) unlink(f->parts);
    }
    if (rc) return rc;
    if (rename(f->inc, f->blob) != 0) return io_error("moving into the cache", f->blob, errno, err);
    if (f->parts_fd >= 0) unlink(f->parts);
    rc = hub_cache_link(d->repo_dir, d->commit, f->f->rel, f->f->etag, err);
    if (!rc) hub_progress_done(d->prog, f->idx);
    return rc;
}

/* ---- one piece ---- */

struct sink_ctx {
    struct dl *d;
    struct dl_piece *p;
    struct vlm_error err;
};

static bool sink(void *user, const void *data, size_t n) {
    struct sink_ctx *s = user;
    struct dl_piece *p = s->p;
    if (atomic_load(&s->d->abort)) return false;
    if (p->end != UINT64_MAX && n > p->end - p->start - p->done) {
        vlm_error_set(&s->err, VLM_E_FETCH, "%s: the server sent more bytes than the hub announced", p->file->f->rel);
        return false;
    }
    const uint8_t *b = data;
    for (size_t w = 0; w < n;) {
        ssize_t k = pwrite(p->file->fd, b + w, n - w, (off_t)(p->start + p->done + w));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            io_error("writing", p->file->inc, k < 0 ? errno : ENOSPC, &s->err);
            return false;
        }
        w += (size_t)k;
    }
    p->done += n;
    if (p->done - p->recorded >= PARTS_EVERY || p->recorded == UINT64_MAX) parts_record(p);
    hub_progress_add(s->d->prog, p->file->idx, n);
    return true;
}

static int run_piece(struct dl *d, struct hub_http *http, struct dl_piece *p, struct vlm_error *err) {
    struct dl_file *f = p->file;
    for (int attempt = 0;; attempt++) {
        bool known = p->end != UINT64_MAX;
        if (known && p->start + p->done == p->end) return VLM_OK;
        struct sink_ctx s = {.d = d, .p = p};
        struct hub_head head;
        bool transport = false;
        int64_t to = known && f->n_pieces > 1 ? (int64_t)(p->end - 1) : -1;   /* one stream: open-ended */
        int rc = hub_http_range(http, f->f->url, f->f->send_token ? d->env->token : NULL, p->start + p->done, to,
                                sink, &s, &head, &transport, err);
        parts_record(p);
        if (s.err.code) { *err = s.err; return err->code; }
        if (atomic_load(&d->abort)) return VLM_E_CANCELLED;
        if (rc == VLM_E_UNSUPPORTED && f->n_pieces == 1 && p->done > 0) {
            /* the server ignored Range: start this file again from its first byte */
            if (ftruncate(f->fd, 0) != 0) return io_error("truncating", f->inc, errno, err);
            hub_progress_start(d->prog, f->idx, f->f->rel, f->f->size_known ? f->f->size : 0, 0);
            p->done = 0;
            continue;
        }
        if (rc == VLM_E_FETCH && !transport && head.status >= 400 && head.status != 429 && head.status < 500)
            return vlm_error_set(err, VLM_E_FETCH, "%s: the download server answered HTTP %d", f->f->rel, head.status);
        if (rc == VLM_OK && !known) return VLM_OK;
        bool short_body = rc == VLM_OK && p->start + p->done != p->end;
        if (rc == VLM_OK && !short_body) return VLM_OK;
        if (attempt >= RETRIES) {
            if (short_body || transport)
                return vlm_error_set(err, VLM_E_FETCH, "transfer of %s interrupted after %" PRIu64 " bytes (%s): run the "
                                     "same command again to resume from %s", f->f->rel, p->done,
                                     short_body ? "the connection closed early" : err->msg, f->inc);
            return rc;
        }
        VLM_LOGW("hub: %s: %s; retrying from byte %" PRIu64, f->f->rel,
                 short_body ? "the connection closed early" : err->msg, p->start + p->done);
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 300000000L * (attempt + 1)};
        nanosleep(&ts, NULL);
    }
}

static void *worker(void *arg) {
    struct dl *d = arg;
    struct hub_http *http = NULL;
    struct vlm_error err = {0};
    if (hub_http_new(&http, &err)) { fail(d, &err); return NULL; }
    for (;;) {
        pthread_mutex_lock(&d->mu);
        struct dl_piece *p = !atomic_load(&d->abort) && d->next < d->n_pieces ? &d->pieces[d->next++] : NULL;
        pthread_mutex_unlock(&d->mu);
        if (!p) break;
        vlm_error_clear(&err);
        if (run_piece(d, http, p, &err) != VLM_OK) {
            if (err.code != VLM_E_CANCELLED) fail(d, &err);
            break;
        }
        pthread_mutex_lock(&d->mu);
        bool last = --p->file->left == 0;
        pthread_mutex_unlock(&d->mu);
        if (last && finish_file(d, p->file, &err) != VLM_OK) { fail(d, &err); break; }
    }
    hub_http_free(http);
    return NULL;
}

/* ---- planning ---- */

/* Opens and locks blobs/<etag>.incomplete, so two processes never write one blob; waits for
 * another download of it to end, after which the blob may simply be there (*present). */
static int open_locked(struct dl_file *f, bool *present, struct vlm_error *err) {
    *present = false;
    for (int tries = 0; tries < 100; tries++) {
        f->fd = open(f->inc, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (f->fd < 0) return io_error("opening", f->inc, errno, err);
        if (flock(f->fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EWOULDBLOCK) fprintf(stderr, "vlm: waiting for another process downloading %s\n", f->f->rel);
            if (errno != EWOULDBLOCK || flock(f->fd, LOCK_EX) != 0) {
                int e = errno;
                close(f->fd), f->fd = -1;
                return io_error("locking", f->inc, e, err);
            }
        }
        struct stat a, b;
        if (access(f->blob, F_OK) == 0) {
            close(f->fd), f->fd = -1;
            *present = true;
            return VLM_OK;
        }
        if (fstat(f->fd, &a) == 0 && stat(f->inc, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) return VLM_OK;
        close(f->fd), f->fd = -1;   /* the file locked was renamed or removed meanwhile: again */
    }
    return vlm_error_set(err, VLM_E_IO, "cannot lock %s", f->inc);
}

/* How many pieces: an existing progress file made for this size keeps its geometry. */
static void plan_geometry(struct dl_file *f, uint64_t piece_bytes, bool *resumed_parts) {
    uint64_t size = f->f->size;
    *resumed_parts = f->f->size_known && parts_read_geometry(f->parts, size, &f->piece, &f->n_pieces);
    if (*resumed_parts) return;
    if (size / piece_bytes > 4096) piece_bytes = size / 4096 + 1;   /* at most ~4096 pieces, whatever the size */
    f->piece = piece_bytes;
    f->n_pieces = f->f->size_known && size / 2 > piece_bytes ? (size_t)(size / piece_bytes + (size % piece_bytes != 0)) : 1;
    if (f->n_pieces == 1) f->piece = f->f->size_known ? size : UINT64_MAX;
}

/* Sets what each piece of the (open, locked) .incomplete already holds. */
static int plan_file(struct dl_file *f, struct dl_piece *ps, bool resumed_parts, struct vlm_error *err) {
    struct stat st;
    if (!resumed_parts) unlink(f->parts);
    if (fstat(f->fd, &st) != 0) return io_error("opening", f->inc, errno, err);
    uint64_t have = (uint64_t)st.st_size, size = f->f->size;
    if (resumed_parts && have == 0) resumed_parts = false;   /* the bytes are gone: start afresh */
    if (f->f->size_known && have > size) {
        if (ftruncate(f->fd, 0) != 0) return io_error("truncating", f->inc, errno, err);
        have = 0;
    }
    for (size_t k = 0; k < f->n_pieces; k++) {
        struct dl_piece *p = &ps[k];
        p->file = f, p->k = k;
        p->start = (uint64_t)k * f->piece;
        p->end = !f->f->size_known ? UINT64_MAX : p->start + f->piece < size ? p->start + f->piece : size;
        /* without a progress file the .incomplete is a contiguous prefix (single stream) */
        p->done = have > p->start ? (p->end == UINT64_MAX || have < p->end ? have : p->end) - p->start : 0;
        p->recorded = p->done;
    }
    f->left = f->n_pieces;
    f->parts_fd = -1;
    if (f->n_pieces > 1) {
        if (resumed_parts) {
            f->parts_fd = open(f->parts, O_RDWR | O_CLOEXEC);
            if (f->parts_fd < 0) return io_error("opening", f->parts, errno, err);
            parts_read_done(f, ps);
        } else {
            int rc = parts_create(f, ps, err);
            if (rc) return rc;
        }
    }
    return VLM_OK;
}

static int check_space(const char *dir, uint64_t need, struct vlm_error *err) {
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) return VLM_OK;
    uint64_t free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
    if (need > free_bytes)
        return vlm_error_set(err, VLM_E_IO, "not enough disk space in %s: %.1f MiB to download, %.1f MiB free; free "
                             "some space or pass --download-dir DIR", dir, need / 1048576.0, free_bytes / 1048576.0);
    return VLM_OK;
}

int hub_download(const char *repo_dir, const char *commit, struct hub_file *files, size_t n,
                 const struct hub_env *env, int n_conn, enum vlm_hub_progress mode, struct vlm_error *err) {
    char blobs[4200];
    snprintf(blobs, sizeof blobs, "%s/blobs", repo_dir);
    int rc = hub_mkdirs(blobs, err);
    if (rc) return rc;
    struct dl d = {.env = env, .repo_dir = repo_dir, .commit = commit};
    pthread_mutex_init(&d.mu, NULL);
    d.files = vlm_calloc(n ? n : 1, sizeof *d.files);
    d.prog = hub_progress_new(mode, n);
    uint64_t piece_bytes = hub_piece_bytes(), need = 0;
    size_t cap = 0;
    if (!d.files || !d.prog) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    /* room for what is missing, before any file is created */
    for (size_t i = 0; !rc && i < n; i++) {
        char path[4300];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", blobs, files[i].etag);
        if (!files[i].size_known || access(path, F_OK) == 0) continue;
        snprintf(path, sizeof path, "%s/%s.incomplete", blobs, files[i].etag);
        uint64_t have = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        uint64_t more = files[i].size > have ? files[i].size - have : 0;
        need = need + more < need ? UINT64_MAX : need + more;   /* sizes come from the server */
    }
    if (!rc) rc = check_space(blobs, need, err);
    for (size_t i = 0; !rc && i < n; i++) {
        struct dl_file *f = &d.files[d.n_files];
        f->f = &files[i], f->idx = i, f->fd = -1, f->parts_fd = -1;
        snprintf(f->blob, sizeof f->blob, "%s/%s", blobs, files[i].etag);
        snprintf(f->inc, sizeof f->inc, "%s.incomplete", f->blob);
        snprintf(f->parts, sizeof f->parts, "%s.incomplete.parts", f->blob);
        if (access(f->blob, F_OK) == 0) {   /* the blob is there (another revision has it): link only */
            rc = hub_cache_link(repo_dir, commit, files[i].rel, files[i].etag, err);
            continue;
        }
        bool resumed_parts, present;
        if ((rc = open_locked(f, &present, err))) break;
        if (present) {
            rc = hub_cache_link(repo_dir, commit, files[i].rel, files[i].etag, err);
            continue;
        }
        plan_geometry(f, piece_bytes, &resumed_parts);
        if (d.n_pieces + f->n_pieces > cap) {
            size_t nc = (d.n_pieces + f->n_pieces) * 2;
            struct dl_piece *np = vlm_realloc(d.pieces, nc * sizeof *np);
            if (!np) { close(f->fd); rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); break; }
            d.pieces = np, cap = nc;
        }
        rc = plan_file(f, d.pieces + d.n_pieces, resumed_parts, err);
        if (rc) { if (f->fd >= 0) close(f->fd); break; }
        d.n_pieces += f->n_pieces;
        d.n_files++;
        uint64_t have = 0;
        for (size_t k = d.n_pieces - f->n_pieces; k < d.n_pieces; k++) have += d.pieces[k].done;
        hub_progress_start(d.prog, i, files[i].rel, files[i].size_known ? files[i].size : 0, have);
    }
    /* pieces point at their file: fix them up now that the array has stopped moving */
    for (size_t k = 0, fi = 0; !rc && fi < d.n_files; fi++)
        for (size_t j = 0; j < d.files[fi].n_pieces; j++, k++) d.pieces[k].file = &d.files[fi];
    if (!rc && d.n_pieces) {
        int nt = n_conn > 0 ? n_conn : 8;
        if ((size_t)nt > d.n_pieces) nt = (int)d.n_pieces;
        pthread_t th[64];
        if (nt > 64) nt = 64;
        int started = 0;
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, worker, &d) != 0) break;
        if (started == 0) rc = vlm_error_set(err, VLM_E_INTERNAL, "cannot start download threads");
        for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
        if (!rc && d.err.code) *err = d.err, rc = d.err.code;
        if (!rc && d.next < d.n_pieces) rc = vlm_error_set(err, VLM_E_INTERNAL, "download stopped early");
    }
    for (size_t i = 0; i < d.n_files; i++) {
        if (d.files[i].fd >= 0) close(d.files[i].fd);
        if (d.files[i].parts_fd >= 0) close(d.files[i].parts_fd);
    }
    hub_progress_free(d.prog);
    vlm_free(d.pieces);
    vlm_free(d.files);
    pthread_mutex_destroy(&d.mu);
    return rc;
}
