/* gguf_write.c — GGUF v3 writer: metadata and tensor infos collected in memory, then the
 * header and the tensor data streamed to a temp file (little-endian, as every GGUF reader
 * expects), renamed into place when every declared byte has been written. */
#include "formats/gguf_write.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

struct wtensor { char *name; uint64_t offset, nbytes; };

struct vlm_gguf_writer {
    char *path, *tmp;
    FILE *f;
    struct vlm_buf kv;        /* serialized key/value pairs */
    uint64_t n_kv;
    char **keys; size_t n_keys, cap_keys;
    struct vlm_buf infos;     /* serialized tensor infos */
    struct wtensor *t; size_t n_t, cap_t;
    uint64_t data_size;       /* end of the last declared tensor */
    uint32_t alignment;
    int begun, finished;
    size_t cur;               /* tensor whose bytes come next */
    uint64_t cur_done;        /* bytes of it written */
};

static const struct { enum vlm_dtype dt; uint32_t id; } ggml_ids[] = {
    {VLM_DT_F32, 0}, {VLM_DT_F16, 1}, {VLM_DT_Q4_0, 2}, {VLM_DT_Q4_1, 3}, {VLM_DT_Q5_0, 6},
    {VLM_DT_Q5_1, 7}, {VLM_DT_Q8_0, 8}, {VLM_DT_Q4_K, 12}, {VLM_DT_Q5_K, 13}, {VLM_DT_Q6_K, 14},
    {VLM_DT_BF16, 30},
};

uint32_t vlm_gguf_ggml_type(enum vlm_dtype t) {
    for (size_t i = 0; i < sizeof ggml_ids / sizeof ggml_ids[0]; i++)
        if (ggml_ids[i].dt == t) return ggml_ids[i].id;
    return UINT32_MAX;
}

int vlm_gguf_writer_open(const char *path, struct vlm_gguf_writer **out, struct vlm_error *err) {
    *out = NULL;
    struct vlm_gguf_writer *w = vlm_calloc(1, sizeof *w);
    size_t n = strlen(path);
    if (!w || !(w->path = vlm_memdup(path, n + 1)) || !(w->tmp = vlm_malloc(n + 5))) {
        vlm_gguf_writer_free(w);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    memcpy(w->tmp, path, n);
    memcpy(w->tmp + n, ".tmp", 5);
    w->alignment = 32;
    if (!(w->f = fopen(w->tmp, "wb"))) {
        int rc = vlm_error_set(err, VLM_E_IO, "%s: cannot create", w->tmp);
        vlm_gguf_writer_free(w);
        return rc;
    }
    setvbuf(w->f, NULL, _IOFBF, 1 << 20);
    *out = w;
    return VLM_OK;
}

void vlm_gguf_writer_free(struct vlm_gguf_writer *w) {
    if (!w) return;
    if (w->f) {
        fclose(w->f);
        remove(w->tmp);
    }
    for (size_t i = 0; i < w->n_keys; i++) vlm_free(w->keys[i]);
    for (size_t i = 0; i < w->n_t; i++) vlm_free(w->t[i].name);
    vlm_free(w->keys);
    vlm_free(w->t);
    vlm_buf_free(&w->kv);
    vlm_buf_free(&w->infos);
    vlm_free(w->path);
    vlm_free(w->tmp);
    vlm_free(w);
}

/* ---- little-endian serialization into a buffer ---- */

static int put_le(struct vlm_buf *b, uint64_t v, int n) {
    uint8_t x[8];
    for (int i = 0; i < n; i++) x[i] = (uint8_t)(v >> (8 * i));
    return vlm_buf_append(b, x, (size_t)n);
}

static int put_str(struct vlm_buf *b, const char *s, size_t len) {
    int rc = put_le(b, len, 8);
    return rc == VLM_OK && len ? vlm_buf_append(b, s, len) : rc;
}

/* One scalar of type ty from val (its C type) in little-endian order. */
static int put_scalar(struct vlm_buf *b, enum vlm_gguf_type ty, const void *val) {
    uint64_t u = 0;
    switch (ty) {
    case VLM_GGUF_BOOL: u = *(const uint8_t *)val != 0; break;
    case VLM_GGUF_U8: case VLM_GGUF_I8: u = *(const uint8_t *)val; break;
    case VLM_GGUF_U16: case VLM_GGUF_I16: { uint16_t x; memcpy(&x, val, 2); u = x; break; }
    case VLM_GGUF_U32: case VLM_GGUF_I32: case VLM_GGUF_F32: { uint32_t x; memcpy(&x, val, 4); u = x; break; }
    default: memcpy(&u, val, 8); break;
    }
    return put_le(b, u, (int)vlm_gguf_value_size(ty));
}

static int is_scalar(enum vlm_gguf_type ty) {
    return ty < VLM_GGUF_TYPE_COUNT && ty != VLM_GGUF_STRING && ty != VLM_GGUF_ARRAY;
}

static int nomem(struct vlm_error *err, int rc) {
    return vlm_error_set(err, rc, rc == VLM_E_NOMEM ? "out of memory" : "GGUF metadata too large");
}

/* Checks the key is new and writable; records it; writes key + type tag. */
static int begin_kv(struct vlm_gguf_writer *w, const char *key, uint32_t ty, struct vlm_error *err) {
    size_t n = key ? strlen(key) : 0;
    if (w->begun) return vlm_error_set(err, VLM_E_INVALID, "%s: metadata \"%.64s\" after the data began", w->path, key ? key : "");
    if (!n || n > VLM_GGUF_MAX_KEY) return vlm_error_set(err, VLM_E_INVALID, "%s: a metadata key must have 1-65535 bytes", w->path);
    for (size_t i = 0; i < w->n_keys; i++)
        if (!strcmp(w->keys[i], key)) return vlm_error_set(err, VLM_E_INVALID, "%s: metadata key \"%s\" written twice", w->path, key);
    if (w->n_keys == w->cap_keys) {
        size_t cap = w->cap_keys ? 2 * w->cap_keys : 64;
        char **k = vlm_realloc(w->keys, cap * sizeof *k);
        if (!k) return nomem(err, VLM_E_NOMEM);
        w->keys = k;
        w->cap_keys = cap;
    }
    if (!(w->keys[w->n_keys] = vlm_memdup(key, n + 1))) return nomem(err, VLM_E_NOMEM);
    w->n_keys++;
    w->n_kv++;
    int rc = put_str(&w->kv, key, n);
    if (rc == VLM_OK) rc = put_le(&w->kv, ty, 4);
    return rc == VLM_OK ? rc : nomem(err, rc);
}

int vlm_gguf_write_kv(struct vlm_gguf_writer *w, const char *key, enum vlm_gguf_type ty,
                      const void *val, struct vlm_error *err) {
    if (!is_scalar(ty)) return vlm_error_set(err, VLM_E_INVALID, "%s: \"%s\": type %d is not a scalar", w->path, key, (int)ty);
    if (!strcmp(key, "general.alignment")) {
        uint32_t a;
        if (ty != VLM_GGUF_U32) return vlm_error_set(err, VLM_E_INVALID, "%s: general.alignment must be a u32", w->path);
        memcpy(&a, val, 4);
        if (!a || (a & (a - 1)) || a > VLM_GGUF_MAX_ALIGNMENT)
            return vlm_error_set(err, VLM_E_INVALID, "%s: general.alignment %u is not a power of two up to %u", w->path, a, VLM_GGUF_MAX_ALIGNMENT);
        if (w->n_t) return vlm_error_set(err, VLM_E_INVALID, "%s: general.alignment must come before the tensors", w->path);
        w->alignment = a;
    }
    int rc = begin_kv(w, key, ty, err);
    if (rc != VLM_OK) return rc;
    rc = put_scalar(&w->kv, ty, val);
    return rc == VLM_OK ? rc : nomem(err, rc);
}

int vlm_gguf_write_u32(struct vlm_gguf_writer *w, const char *key, uint32_t v, struct vlm_error *err) {
    return vlm_gguf_write_kv(w, key, VLM_GGUF_U32, &v, err);
}
int vlm_gguf_write_i32(struct vlm_gguf_writer *w, const char *key, int32_t v, struct vlm_error *err) {
    return vlm_gguf_write_kv(w, key, VLM_GGUF_I32, &v, err);
}
int vlm_gguf_write_f32(struct vlm_gguf_writer *w, const char *key, float v, struct vlm_error *err) {
    return vlm_gguf_write_kv(w, key, VLM_GGUF_F32, &v, err);
}
int vlm_gguf_write_bool(struct vlm_gguf_writer *w, const char *key, int v, struct vlm_error *err) {
    uint8_t b = v != 0;
    return vlm_gguf_write_kv(w, key, VLM_GGUF_BOOL, &b, err);
}

int vlm_gguf_write_str(struct vlm_gguf_writer *w, const char *key, const char *s, size_t len,
                       struct vlm_error *err) {
    int rc = begin_kv(w, key, VLM_GGUF_STRING, err);
    if (rc != VLM_OK) return rc;
    rc = put_str(&w->kv, s, len);
    return rc == VLM_OK ? rc : nomem(err, rc);
}

int vlm_gguf_write_cstr(struct vlm_gguf_writer *w, const char *key, const char *s, struct vlm_error *err) {
    return vlm_gguf_write_str(w, key, s, strlen(s), err);
}

int vlm_gguf_write_arr(struct vlm_gguf_writer *w, const char *key, enum vlm_gguf_type ty,
                       const void *vals, uint64_t n, struct vlm_error *err) {
    if (!is_scalar(ty)) return vlm_error_set(err, VLM_E_INVALID, "%s: \"%s\": arrays of type %d are written with vlm_gguf_write_arr_str or not at all", w->path, key, (int)ty);
    int rc = begin_kv(w, key, VLM_GGUF_ARRAY, err);
    if (rc == VLM_OK) rc = put_le(&w->kv, ty, 4);
    if (rc == VLM_OK) rc = put_le(&w->kv, n, 8);
    size_t sz = vlm_gguf_value_size(ty);
    for (uint64_t i = 0; rc == VLM_OK && i < n; i++) rc = put_scalar(&w->kv, ty, (const uint8_t *)vals + i * sz);
    return rc == VLM_OK || rc == VLM_E_INVALID ? rc : nomem(err, rc);
}

int vlm_gguf_write_arr_str(struct vlm_gguf_writer *w, const char *key, const char *const *s,
                           const size_t *lens, uint64_t n, struct vlm_error *err) {
    int rc = begin_kv(w, key, VLM_GGUF_ARRAY, err);
    if (rc == VLM_OK) rc = put_le(&w->kv, VLM_GGUF_STRING, 4);
    if (rc == VLM_OK) rc = put_le(&w->kv, n, 8);
    for (uint64_t i = 0; rc == VLM_OK && i < n; i++) rc = put_str(&w->kv, s[i], lens ? lens[i] : strlen(s[i]));
    return rc == VLM_OK || rc == VLM_E_INVALID ? rc : nomem(err, rc);
}

static uint64_t align_up(uint64_t x, uint32_t a) { return (x + a - 1) / a * a; }

int vlm_gguf_write_tensor_info(struct vlm_gguf_writer *w, const char *name, enum vlm_dtype t,
                               int n_dims, const int64_t *ne, struct vlm_error *err) {
    size_t len = strlen(name);
    uint32_t id = vlm_gguf_ggml_type(t);
    if (w->begun) return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s declared after the data began", w->path, name);
    if (!len || len > VLM_GGUF_MAX_KEY) return vlm_error_set(err, VLM_E_INVALID, "%s: a tensor name must have 1-65535 bytes", w->path);
    if (id == UINT32_MAX) return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s: dtype %d has no ggml type", w->path, name, (int)t);
    if (n_dims < 1 || n_dims > 4) return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s: %d dimensions (1-4)", w->path, name, n_dims);
    uint64_t nel = 1;
    for (int d = 0; d < n_dims; d++) {
        if (ne[d] < 0 || (ne[d] && nel > UINT64_MAX / 2 / (uint64_t)ne[d]))
            return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s: bad dimension %lld", w->path, name, (long long)ne[d]);
        nel *= (uint64_t)ne[d];
    }
    if (ne[0] % vlm_dtype_block_elems(t))
        return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s: row of %lld is not a multiple of %s's block of %d", w->path, name, (long long)ne[0], vlm_dtype_name(t), vlm_dtype_block_elems(t));
    for (size_t i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, name)) return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s declared twice", w->path, name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        struct wtensor *nt = vlm_realloc(w->t, cap * sizeof *nt);
        if (!nt) return nomem(err, VLM_E_NOMEM);
        w->t = nt;
        w->cap_t = cap;
    }
    struct wtensor *wt = &w->t[w->n_t];
    wt->nbytes = ne[0] ? (uint64_t)vlm_dtype_row_bytes(t, ne[0]) * (nel / (uint64_t)ne[0]) : 0;
    wt->offset = align_up(w->data_size, w->alignment);
    if (!(wt->name = vlm_memdup(name, len + 1))) return nomem(err, VLM_E_NOMEM);
    w->n_t++;
    w->data_size = wt->offset + wt->nbytes;
    int rc = put_str(&w->infos, name, len);
    if (rc == VLM_OK) rc = put_le(&w->infos, (uint64_t)n_dims, 4);
    for (int d = 0; rc == VLM_OK && d < n_dims; d++) rc = put_le(&w->infos, (uint64_t)ne[d], 8);
    if (rc == VLM_OK) rc = put_le(&w->infos, id, 4);
    if (rc == VLM_OK) rc = put_le(&w->infos, wt->offset, 8);
    return rc == VLM_OK ? rc : nomem(err, rc);
}

static int wr(struct vlm_gguf_writer *w, const void *p, size_t n, struct vlm_error *err) {
    if (n && fwrite(p, 1, n, w->f) != n) return vlm_error_set(err, VLM_E_IO, "%s: write failed (disk full?)", w->tmp);
    return VLM_OK;
}

static int zeros(struct vlm_gguf_writer *w, uint64_t n, struct vlm_error *err) {
    static const uint8_t z[256];
    int rc = VLM_OK;
    while (rc == VLM_OK && n) {
        size_t k = n < sizeof z ? (size_t)n : sizeof z;
        rc = wr(w, z, k, err);
        n -= k;
    }
    return rc;
}

int vlm_gguf_writer_begin_data(struct vlm_gguf_writer *w, struct vlm_error *err) {
    if (w->begun) return vlm_error_set(err, VLM_E_INVALID, "%s: data already begun", w->path);
    struct vlm_buf h = {0};
    int rc = vlm_buf_append(&h, "GGUF", 4);
    if (rc == VLM_OK) rc = put_le(&h, 3, 4);
    if (rc == VLM_OK) rc = put_le(&h, w->n_t, 8);
    if (rc == VLM_OK) rc = put_le(&h, w->n_kv, 8);
    if (rc != VLM_OK) {
        vlm_buf_free(&h);
        return nomem(err, rc);
    }
    uint64_t head = h.len + w->kv.len + w->infos.len;
    rc = wr(w, h.data, h.len, err);
    vlm_buf_free(&h);
    if (rc == VLM_OK) rc = wr(w, w->kv.data, w->kv.len, err);
    if (rc == VLM_OK) rc = wr(w, w->infos.data, w->infos.len, err);
    if (rc == VLM_OK) rc = zeros(w, align_up(head, w->alignment) - head, err);
    w->begun = 1;
    vlm_buf_free(&w->kv);
    vlm_buf_free(&w->infos);
    return rc;
}

/* Skips finished (or empty) tensors, writing the padding before the next one. */
static int advance(struct vlm_gguf_writer *w, struct vlm_error *err) {
    int rc = VLM_OK;
    while (rc == VLM_OK && w->cur < w->n_t && w->cur_done == w->t[w->cur].nbytes) {
        uint64_t end = w->t[w->cur].offset + w->t[w->cur].nbytes;
        w->cur++;
        w->cur_done = 0;
        if (w->cur < w->n_t) rc = zeros(w, w->t[w->cur].offset - end, err);
    }
    return rc;
}

int vlm_gguf_writer_data(struct vlm_gguf_writer *w, const void *p, size_t n, struct vlm_error *err) {
    if (!w->begun || w->finished) return vlm_error_set(err, VLM_E_INVALID, "%s: tensor data outside begin_data..finish", w->path);
    const uint8_t *b = p;
    int rc = advance(w, err);
    while (rc == VLM_OK && n) {
        if (w->cur >= w->n_t) return vlm_error_set(err, VLM_E_INVALID, "%s: %zu bytes of data past the last tensor", w->path, n);
        uint64_t left = w->t[w->cur].nbytes - w->cur_done;
        size_t k = left < n ? (size_t)left : n;
        rc = wr(w, b, k, err);
        w->cur_done += k;
        b += k;
        n -= k;
        if (rc == VLM_OK) rc = advance(w, err);
    }
    return rc;
}

int vlm_gguf_writer_finish(struct vlm_gguf_writer *w, struct vlm_error *err) {
    int rc = w->begun ? VLM_OK : vlm_gguf_writer_begin_data(w, err);
    if (rc == VLM_OK) rc = advance(w, err);
    if (rc != VLM_OK) return rc;
    if (w->cur < w->n_t)
        return vlm_error_set(err, VLM_E_INVALID, "%s: tensor %s has %llu of its %llu bytes", w->path, w->t[w->cur].name,
                             (unsigned long long)w->cur_done, (unsigned long long)w->t[w->cur].nbytes);
    w->finished = 1;
    FILE *f = w->f;
    w->f = NULL;
    if (fclose(f) != 0) {
        remove(w->tmp);
        return vlm_error_set(err, VLM_E_IO, "%s: write failed on close (disk full?)", w->tmp);
    }
    if (rename(w->tmp, w->path) != 0) {
        remove(w->tmp);
        return vlm_error_set(err, VLM_E_IO, "%s: cannot rename %s into place", w->path, w->tmp);
    }
    return VLM_OK;
}
