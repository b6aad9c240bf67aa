/* weights.c — the weight map: a name-hashed table of tensor views over mmap'd files, shared by
 * the safetensors and (later) GGUF readers; shape checks that name the tensor and file. */
#include "formats/weights.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

void vlm_weights_init(struct vlm_weights *w) { memset(w, 0, sizeof *w); }

void vlm_weights_free(struct vlm_weights *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        vlm_free(w->w[i].name);
        vlm_free(w->w[i].owned);
        vlm_free(w->w[i].src_name);
    }
    for (int i = 0; i < w->n_files; i++) {
        vlm_free(w->files[i]);
        vlm_munmap(&w->maps[i]);
    }
    vlm_free(w->w);
    vlm_free(w->slots);
    vlm_free(w->files);
    vlm_free(w->maps);
    memset(w, 0, sizeof *w);
}

int vlm_weights_add_file(struct vlm_weights *w, const char *path, struct vlm_mmap *m, struct vlm_error *err) {
    if (w->n_files >= VLM_WEIGHTS_MAX_FILES)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "%s: more than %d weight files", path, VLM_WEIGHTS_MAX_FILES);
    char **f = vlm_realloc(w->files, sizeof *f * (size_t)(w->n_files + 1));
    if (!f) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    w->files = f;
    struct vlm_mmap *mm = vlm_realloc(w->maps, sizeof *mm * (size_t)(w->n_files + 1));
    if (!mm) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    w->maps = mm;
    char *p = vlm_strdup(path);
    if (!p) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    w->files[w->n_files] = p;
    w->maps[w->n_files] = *m;
    m->data = NULL;
    m->size = 0;
    return w->n_files++;
}

static uint64_t name_hash(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int rehash(struct vlm_weights *w, size_t n_slots) {
    uint32_t *s = vlm_calloc(n_slots, sizeof *s);
    if (!s) return VLM_E_NOMEM;
    for (size_t i = 0; i < w->n; i++) {
        size_t j = name_hash(w->w[i].name, strlen(w->w[i].name)) & (n_slots - 1);
        while (s[j]) j = (j + 1) & (n_slots - 1);
        s[j] = (uint32_t)(i + 1);
    }
    vlm_free(w->slots);
    w->slots = s;
    w->n_slots = n_slots;
    return VLM_OK;
}

static long find(const struct vlm_weights *w, const char *name, size_t n) {
    if (!w->n_slots) return -1;
    size_t j = name_hash(name, n) & (w->n_slots - 1);
    while (w->slots[j]) {
        const char *e = w->w[w->slots[j] - 1].name;
        if (strlen(e) == n && memcmp(e, name, n) == 0) return (long)w->slots[j] - 1;
        j = (j + 1) & (w->n_slots - 1);
    }
    return -1;
}

static size_t elem_align(enum vlm_dtype t) {
    switch (t) {
    case VLM_DT_F32: return 4;
    case VLM_DT_F16: case VLM_DT_BF16: return 2;
    default: return 1;
    }
}

int vlm_weights_add(struct vlm_weights *w, const char *name, size_t name_len,
                    const struct vlm_tensor *t, int file, struct vlm_error *err) {
    const char *fname = (file >= 0 && file < w->n_files) ? w->files[file] : "";
    if (w->n >= VLM_WEIGHTS_MAX_TENSORS)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "%s: more than %d tensors", fname, VLM_WEIGHTS_MAX_TENSORS);
    if (find(w, name, name_len) >= 0)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%.*s' appears twice", fname, (int)name_len, name);
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct vlm_weight *nw = vlm_realloc(w->w, sizeof *nw * cap);
        if (!nw) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        w->w = nw;
        w->cap = cap;
    }
    struct vlm_weight *e = &w->w[w->n];
    memset(e, 0, sizeof *e);
    e->name = vlm_strndup(name, name_len);
    if (!e->name) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    e->t = *t;
    e->file = file;
    if (t->nbytes && ((uintptr_t)t->data % elem_align(t->type)) != 0) {
        e->owned = vlm_malloc(t->nbytes);   /* malloc alignment suits every dtype */
        if (!e->owned) {
            vlm_free(e->name);
            return vlm_error_set(err, VLM_E_NOMEM, "out of memory copying tensor '%.*s'", (int)name_len, name);
        }
        memcpy(e->owned, t->data, t->nbytes);
        e->t.data = e->owned;
    }
    w->n++;
    w->total_bytes += t->nbytes;
    if (w->n * 2 > w->n_slots) {
        if (rehash(w, w->n_slots ? w->n_slots * 2 : 256) != VLM_OK) {
            w->n--;
            vlm_free(e->name);
            vlm_free(e->owned);
            return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        }
    } else {
        size_t j = name_hash(e->name, name_len) & (w->n_slots - 1);
        while (w->slots[j]) j = (j + 1) & (w->n_slots - 1);
        w->slots[j] = (uint32_t)w->n;
    }
    return VLM_OK;
}

int vlm_weights_add_owned(struct vlm_weights *w, const char *name, size_t name_len,
                          const struct vlm_tensor *t, int file, void *owned, struct vlm_error *err) {
    int rc = vlm_weights_add(w, name, name_len, t, file, err);
    if (rc != VLM_OK) {
        vlm_free(owned);
        return rc;
    }
    struct vlm_weight *e = &w->w[w->n - 1];
    if (e->owned) {   /* add copied it (owned buffers are malloc-aligned, so this is rare) */
        vlm_free(owned);
        return VLM_OK;
    }
    e->owned = owned;
    return VLM_OK;
}

int vlm_weights_set_src_name(struct vlm_weights *w, const char *src_name, struct vlm_error *err) {
    if (!w->n) return VLM_OK;
    struct vlm_weight *e = &w->w[w->n - 1];
    vlm_free(e->src_name);
    e->src_name = vlm_strdup(src_name);
    return e->src_name ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

/* " ('blk.0.attn_q.weight' in the file)" when the tensor was renamed, else "". */
static const char *src_note(const struct vlm_weights *w, const char *name, char *buf, size_t n) {
    long i = find(w, name, strlen(name));
    buf[0] = 0;
    if (i >= 0 && w->w[i].src_name) snprintf(buf, n, " ('%s' in the file)", w->w[i].src_name);
    return buf;
}

const struct vlm_tensor *vlm_weights_get(const struct vlm_weights *w, const char *name) {
    long i = find(w, name, strlen(name));
    return i < 0 ? NULL : &w->w[i].t;
}

const char *vlm_weights_file_of(const struct vlm_weights *w, const char *name) {
    long i = find(w, name, strlen(name));
    if (i < 0 || w->w[i].file < 0 || w->w[i].file >= w->n_files) return "";
    return w->files[w->w[i].file];
}

static void shape_str(char *buf, size_t n, int n_dims, const int64_t *ne) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i <= n_dims && k + 1 < n; i++) {
        int r = i == n_dims ? snprintf(buf + k, n - k, ")")
                            : snprintf(buf + k, n - k, "%s%lld", i ? ", " : "(", (long long)ne[i]);
        if (r < 0) break;
        k += (size_t)r;
    }
    if (n_dims == 0 && n > 2) snprintf(buf, n, "()");
}

int vlm_weights_require(const struct vlm_weights *w, const char *name, int n_dims,
                        const int64_t *ne, const struct vlm_tensor **out, struct vlm_error *err) {
    const struct vlm_tensor *t = vlm_weights_get(w, name);
    *out = NULL;
    if (!t) {
        const char *where = w->n_files == 1 ? w->files[0] : "the model's weight files";
        return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: missing tensor '%s'", where, name);
    }
    int ok = t->n_dims == n_dims;
    for (int i = 0; ok && i < n_dims; i++) ok = t->ne[i] == ne[i];
    if (!ok) {
        char want[96], got[96];
        shape_str(want, sizeof want, n_dims, ne);
        shape_str(got, sizeof got, t->n_dims, t->ne);
        char note[300];
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s'%s has shape %s, expected %s",
                             vlm_weights_file_of(w, name), name, src_note(w, name, note, sizeof note), got, want);
    }
    if ((unsigned)t->type >= VLM_DT_COUNT || !vlm_matmul_supported(t->type)) {
        char note[300];
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tensor '%s'%s has dtype %s, not supported yet",
                             vlm_weights_file_of(w, name), name, src_note(w, name, note, sizeof note), vlm_dtype_name(t->type));
    }
    *out = t;
    return VLM_OK;
}

int vlm_weights_mat(const struct vlm_weights *w, const char *name, int64_t a, int64_t b,
                    const struct vlm_tensor **out, struct vlm_error *err) {
    int64_t ne[2] = {a, b};
    return vlm_weights_require(w, name, 2, ne, out, err);
}

int vlm_weights_vec_f32(const struct vlm_weights *w, const char *name, int64_t n, float **cur,
                        const float **out, struct vlm_error *err) {
    const struct vlm_tensor *t;
    int64_t ne[1] = {n};
    int rc = vlm_weights_require(w, name, 1, ne, &t, err);
    if (rc != VLM_OK) return rc;
    struct vlm_tensor row = *t;   /* one row of n elements: the conversion every dtype has */
    row.n_dims = 2;
    row.ne[0] = 1;
    row.ne[1] = n;
    vlm_tensor_row_f32(&row, 0, *cur);
    *out = *cur;
    *cur += n;
    return VLM_OK;
}
