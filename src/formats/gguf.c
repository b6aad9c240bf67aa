/* gguf.c — GGUF v2/v3 parsing: header, metadata, tensor infos, data section, each field read
 * through a bounds-checked cursor so truncation anywhere is an error naming file and offset;
 * sizes from the file go through overflow-checked arithmetic (RELIABILITY item 13). */
#include "formats/gguf.h"

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

/* ggml types: name, elements per block, bytes per block, our dtype (VLM_DT_COUNT: not loaded). */
struct gguf_ggml_type { uint32_t id; const char *name; uint32_t blk; uint32_t bytes; enum vlm_dtype dt; };
static const struct gguf_ggml_type ggml_types[] = {
    {0, "F32", 1, 4, VLM_DT_F32},       {1, "F16", 1, 2, VLM_DT_F16},
    {2, "Q4_0", 32, 18, VLM_DT_Q4_0},   {3, "Q4_1", 32, 20, VLM_DT_Q4_1},
    {6, "Q5_0", 32, 22, VLM_DT_Q5_0},   {7, "Q5_1", 32, 24, VLM_DT_Q5_1},
    {8, "Q8_0", 32, 34, VLM_DT_Q8_0},   {9, "Q8_1", 32, 40, VLM_DT_COUNT},
    {10, "Q2_K", 256, 84, VLM_DT_COUNT}, {11, "Q3_K", 256, 110, VLM_DT_COUNT},
    {12, "Q4_K", 256, 144, VLM_DT_Q4_K}, {13, "Q5_K", 256, 176, VLM_DT_Q5_K},
    {14, "Q6_K", 256, 210, VLM_DT_Q6_K}, {15, "Q8_K", 256, 292, VLM_DT_COUNT},
    {16, "IQ2_XXS", 256, 66, VLM_DT_COUNT}, {17, "IQ2_XS", 256, 74, VLM_DT_COUNT},
    {18, "IQ3_XXS", 256, 98, VLM_DT_COUNT}, {19, "IQ1_S", 256, 50, VLM_DT_COUNT},
    {20, "IQ4_NL", 32, 18, VLM_DT_COUNT},   {21, "IQ3_S", 256, 110, VLM_DT_COUNT},
    {22, "IQ2_S", 256, 82, VLM_DT_COUNT},   {23, "IQ4_XS", 256, 136, VLM_DT_COUNT},
    {24, "I8", 1, 1, VLM_DT_COUNT},   {25, "I16", 1, 2, VLM_DT_COUNT},
    {26, "I32", 1, 4, VLM_DT_COUNT},  {27, "I64", 1, 8, VLM_DT_COUNT},
    {28, "F64", 1, 8, VLM_DT_COUNT},  {29, "IQ1_M", 256, 56, VLM_DT_COUNT},
    {30, "BF16", 1, 2, VLM_DT_BF16},  {34, "TQ1_0", 256, 54, VLM_DT_COUNT},
    {35, "TQ2_0", 256, 66, VLM_DT_COUNT}, {39, "MXFP4", 32, 17, VLM_DT_COUNT},
};

static const struct gguf_ggml_type *ggml_type(uint32_t id) {
    for (size_t i = 0; i < sizeof ggml_types / sizeof ggml_types[0]; i++)
        if (ggml_types[i].id == id) return &ggml_types[i];
    return NULL;
}

const char *vlm_gguf_type_name(uint32_t id) {
    const struct gguf_ggml_type *t = ggml_type(id);
    return t ? t->name : NULL;
}

size_t vlm_gguf_value_size(uint32_t type) {
    static const uint8_t sz[VLM_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < VLM_GGUF_TYPE_COUNT ? sz[type] : 0;
}

/* A bounds-checked reader over the file. */
struct cur { const uint8_t *p; size_t size, pos; const char *fname; struct vlm_error *err; };

static int trunc_err(struct cur *c, size_t need, const char *what) {
    return vlm_error_set(c->err, VLM_E_FORMAT, "%s: truncated at offset %zu reading %s (%zu bytes needed, %zu left)",
                         c->fname, c->pos, what, need, c->size - c->pos);
}

static int rd(struct cur *c, void *dst, size_t n, const char *what) {
    if (n > c->size - c->pos) return trunc_err(c, n, what);
    memcpy(dst, c->p + c->pos, n);   /* GGUF is little-endian, as every host we build for */
    c->pos += n;
    return VLM_OK;
}

static int rd_u32(struct cur *c, uint32_t *v, const char *what) { return rd(c, v, 4, what); }
static int rd_u64(struct cur *c, uint64_t *v, const char *what) { return rd(c, v, 8, what); }

/* A string: u64 length, bytes. *s points into the file. */
static int rd_str(struct cur *c, uint64_t cap, const char **s, uint64_t *len, const char *what) {
    size_t at = c->pos;
    int rc = rd_u64(c, len, what);
    if (rc != VLM_OK) return rc;
    if (*len > cap)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: %s at offset %zu has length %llu (limit %llu)",
                             c->fname, what, at, (unsigned long long)*len, (unsigned long long)cap);
    if (*len > c->size - c->pos) return trunc_err(c, (size_t)*len, what);
    *s = (const char *)c->p + c->pos;
    c->pos += (size_t)*len;
    return VLM_OK;
}

/* Skips n elements of a fixed-size type or walks n strings, checking each length. */
static int skip_array(struct cur *c, uint32_t type, uint64_t n, const char *key) {
    if (type == VLM_GGUF_STRING) {
        for (uint64_t i = 0; i < n; i++) {
            const char *s;
            uint64_t len;
            int rc = rd_str(c, VLM_GGUF_MAX_STRING, &s, &len, "an array string");
            if (rc != VLM_OK) return vlm_error_prefix(c->err, "key '%.200s'", key), rc;
        }
        return VLM_OK;
    }
    size_t bytes;
    if (!vlm_mul_ok((size_t)n, vlm_gguf_value_size(type), &bytes) || bytes > c->size - c->pos)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: key '%.200s': array of %llu elements at offset %zu runs past the end of the file",
                             c->fname, key, (unsigned long long)n, c->pos);
    c->pos += bytes;
    return VLM_OK;
}

static int bad_type(struct cur *c, size_t at, uint32_t t, const char *key) {
    return vlm_error_set(c->err, VLM_E_FORMAT, "%s: key '%.200s' at offset %zu has unknown value type %u",
                         c->fname, key, at, t);
}

/* Reads one value of type kv->type into kv. */
static int rd_value(struct cur *c, struct vlm_gguf_kv *kv) {
    size_t at = c->pos;
    kv->offset = at;
    if (kv->type == VLM_GGUF_STRING) {
        const char *s;
        int rc = rd_str(c, VLM_GGUF_MAX_STRING, &s, &kv->n, "a string value");
        if (rc != VLM_OK) return vlm_error_prefix(c->err, "key '%.200s'", kv->key), rc;
        kv->str = s;
        return VLM_OK;
    }
    if (kv->type == VLM_GGUF_ARRAY) {
        int rc = rd_u32(c, &kv->arr_type, "an array type");
        if (rc == VLM_OK) rc = rd_u64(c, &kv->n, "an array length");
        if (rc != VLM_OK) return rc;
        if (kv->arr_type == VLM_GGUF_ARRAY)
            return vlm_error_set(c->err, VLM_E_UNSUPPORTED, "%s: key '%.200s' at offset %zu: nested arrays are not supported",
                                 c->fname, kv->key, at);
        if (kv->arr_type >= VLM_GGUF_TYPE_COUNT) return bad_type(c, at, kv->arr_type, kv->key);
        if (kv->n > VLM_GGUF_MAX_ARRAY)
            return vlm_error_set(c->err, VLM_E_FORMAT, "%s: key '%.200s' at offset %zu: array of %llu elements (limit %u)",
                                 c->fname, kv->key, at, (unsigned long long)kv->n, VLM_GGUF_MAX_ARRAY);
        kv->offset = c->pos;
        kv->arr = c->p + c->pos;
        return skip_array(c, kv->arr_type, kv->n, kv->key);
    }
    size_t sz = vlm_gguf_value_size(kv->type);
    if (!sz) return bad_type(c, at, kv->type, kv->key);
    uint8_t b[8] = {0};
    int rc = rd(c, b, sz, "a value");
    if (rc != VLM_OK) return vlm_error_prefix(c->err, "key '%.200s'", kv->key), rc;
    switch (kv->type) {
    case VLM_GGUF_U8: case VLM_GGUF_BOOL: kv->v.u = b[0]; break;
    case VLM_GGUF_I8: kv->v.i = (int8_t)b[0]; break;
    case VLM_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); kv->v.u = x; break; }
    case VLM_GGUF_I16: { int16_t x; memcpy(&x, b, 2); kv->v.i = x; break; }
    case VLM_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); kv->v.u = x; break; }
    case VLM_GGUF_I32: { int32_t x; memcpy(&x, b, 4); kv->v.i = x; break; }
    case VLM_GGUF_F32: { float x; memcpy(&x, b, 4); kv->v.f = x; break; }
    case VLM_GGUF_U64: memcpy(&kv->v.u, b, 8); break;
    case VLM_GGUF_I64: memcpy(&kv->v.i, b, 8); break;
    case VLM_GGUF_F64: memcpy(&kv->v.f, b, 8); break;
    default: return bad_type(c, at, kv->type, kv->key);
    }
    if (kv->type == VLM_GGUF_BOOL && b[0] > 1)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: key '%.200s' at offset %zu: bool value %u", c->fname, kv->key, at, b[0]);
    return VLM_OK;
}

/* A set of names for duplicate detection (open addressing over indices into a name array). */
struct nameset { uint32_t *slots; size_t mask; };

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int nameset_init(struct nameset *ns, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 2) cap *= 2;
    ns->slots = vlm_calloc(cap, sizeof *ns->slots);
    ns->mask = cap - 1;
    return ns->slots ? VLM_OK : VLM_E_NOMEM;
}

/* Inserts names[i]; returns 0 if an equal name is already there. */
static int nameset_add(struct nameset *ns, char *const *names, size_t stride, uint32_t i) {
    const char *s = *(char *const *)((const char *)names + stride * i);
    size_t j = fnv(s) & ns->mask;
    while (ns->slots[j]) {
        const char *o = *(char *const *)((const char *)names + stride * (ns->slots[j] - 1));
        if (!strcmp(o, s)) return 0;
        j = (j + 1) & ns->mask;
    }
    ns->slots[j] = i + 1;
    return 1;
}

/* A key or tensor name: a string without NUL bytes, copied. */
static int rd_name(struct cur *c, uint64_t cap, char **out, const char *what) {
    const char *s;
    uint64_t len;
    size_t at = c->pos;
    int rc = rd_str(c, cap, &s, &len, what);
    if (rc != VLM_OK) return rc;
    if (memchr(s, 0, (size_t)len))
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: %s at offset %zu holds a NUL byte", c->fname, what, at);
    *out = vlm_strndup(s, (size_t)len);
    return *out ? VLM_OK : vlm_error_set(c->err, VLM_E_NOMEM, "out of memory");
}

static int parse_kvs(struct cur *c, struct vlm_gguf *g) {
    struct nameset ns = {0};
    if (nameset_init(&ns, g->n_kv) != VLM_OK) return vlm_error_set(c->err, VLM_E_NOMEM, "out of memory");
    int rc = VLM_OK;
    for (size_t i = 0; i < g->n_kv && rc == VLM_OK; i++) {
        struct vlm_gguf_kv *kv = &g->kv[i];
        size_t at = c->pos;
        if ((rc = rd_name(c, VLM_GGUF_MAX_KEY, &kv->key, "a metadata key")) != VLM_OK) break;
        if (!nameset_add(&ns, &g->kv[0].key, sizeof *kv, (uint32_t)i)) {
            rc = vlm_error_set(c->err, VLM_E_FORMAT, "%s: metadata key '%.200s' at offset %zu appears twice", c->fname, kv->key, at);
            break;
        }
        if ((rc = rd_u32(c, &kv->type, "a value type")) != VLM_OK) break;
        if (kv->type >= VLM_GGUF_TYPE_COUNT) { rc = bad_type(c, c->pos - 4, kv->type, kv->key); break; }
        rc = rd_value(c, kv);
    }
    vlm_free(ns.slots);
    return rc;
}

static int parse_tensor_info(struct cur *c, struct vlm_gguf_tensor *t) {
    t->info_offset = c->pos;
    int rc = rd_name(c, VLM_GGUF_MAX_KEY, &t->name, "a tensor name");
    if (rc == VLM_OK) rc = rd_u32(c, &t->n_dims, "a tensor's dimension count");
    if (rc != VLM_OK) return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s' (offset %zu) has %u dimensions (1 to 4)",
                             c->fname, t->name, t->info_offset, t->n_dims);
    size_t nel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t v = 0;
        if ((rc = rd_u64(c, &v, "a tensor dimension")) != VLM_OK) return rc;
        if (v > (uint64_t)INT64_MAX || !vlm_mul_ok(nel, (size_t)v, &nel) || nel > (size_t)INT64_MAX)
            return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s' (offset %zu): dimensions overflow",
                                 c->fname, t->name, t->info_offset);
        t->ne[d] = (int64_t)v;
    }
    if ((rc = rd_u32(c, &t->ggml_type, "a tensor type")) != VLM_OK) return rc;
    if ((rc = rd_u64(c, &t->offset, "a tensor offset")) != VLM_OK) return rc;
    const struct gguf_ggml_type *ty = ggml_type(t->ggml_type);
    if (!ty)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s' (offset %zu) has unknown type %u",
                             c->fname, t->name, t->info_offset, t->ggml_type);
    t->dtype = ty->dt;
    if (t->ne[0] % ty->blk)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s' (offset %zu): row of %lld elements is not a multiple of %s's block of %u",
                             c->fname, t->name, t->info_offset, (long long)t->ne[0], ty->name, ty->blk);
    if (!vlm_mul_ok(nel / ty->blk, ty->bytes, &t->nbytes))
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s' (offset %zu): size overflows", c->fname, t->name, t->info_offset);
    return VLM_OK;
}

static int cmp_by_offset(const void *a, const void *b) {
    const struct vlm_gguf_tensor *x = *(struct vlm_gguf_tensor *const *)a, *y = *(struct vlm_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places every tensor inside the data section: aligned, in bounds, non-overlapping. */
static int place_tensors(struct cur *c, struct vlm_gguf *g) {
    size_t data_size = g->size - g->data_offset;
    for (size_t i = 0; i < g->n_tensors; i++) {
        struct vlm_gguf_tensor *t = &g->t[i];
        size_t end;
        if (t->offset % g->alignment)
            return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s': data offset %llu is not a multiple of the alignment %u",
                                 c->fname, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || !vlm_add_ok((size_t)t->offset, t->nbytes, &end) || end > data_size)
            return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor '%.200s': bytes [%llu, +%zu) past the end of the data section (%zu bytes at file offset %zu; file truncated?)",
                                 c->fname, t->name, (unsigned long long)t->offset, t->nbytes, data_size, g->data_offset);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2) return VLM_OK;
    struct vlm_gguf_tensor **by = vlm_malloc(sizeof *by * g->n_tensors);
    if (!by) return vlm_error_set(c->err, VLM_E_NOMEM, "out of memory");
    for (size_t i = 0; i < g->n_tensors; i++) by[i] = &g->t[i];
    qsort(by, g->n_tensors, sizeof *by, cmp_by_offset);
    int rc = VLM_OK;
    for (size_t i = 1; i < g->n_tensors && rc == VLM_OK; i++)
        if (by[i]->nbytes && by[i - 1]->offset + by[i - 1]->nbytes > by[i]->offset)
            rc = vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensors '%.200s' (data offset %llu, %zu bytes) and '%.200s' (data offset %llu) overlap",
                               c->fname, by[i - 1]->name, (unsigned long long)by[i - 1]->offset, by[i - 1]->nbytes,
                               by[i]->name, (unsigned long long)by[i]->offset);
    vlm_free(by);
    return rc;
}

static int parse_header(struct cur *c, struct vlm_gguf *g, uint64_t *n_t, uint64_t *n_kv) {
    char magic[4];
    int rc = rd(c, magic, 4, "the magic");
    if (rc != VLM_OK) return rc;
    if (memcmp(magic, "GGUF", 4))
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: not a GGUF file (no GGUF magic at offset 0)", c->fname);
    if ((rc = rd_u32(c, &g->version, "the version")) != VLM_OK) return rc;
    if (g->version == 0x02000000u || g->version == 0x03000000u)
        return vlm_error_set(c->err, VLM_E_UNSUPPORTED, "%s: the version at offset 4 is byte-swapped: a big-endian GGUF file (only little-endian files are read)", c->fname);
    if (g->version != 2 && g->version != 3)
        return vlm_error_set(c->err, VLM_E_UNSUPPORTED, "%s: GGUF version %u at offset 4 (versions 2 and 3 are read)", c->fname, g->version);
    if ((rc = rd_u64(c, n_t, "the tensor count")) != VLM_OK) return rc;
    if ((rc = rd_u64(c, n_kv, "the metadata count")) != VLM_OK) return rc;
    /* Each key/value takes at least 8 (length) + 4 (type) + 1 bytes, each tensor info at
     * least 8 + 4 + 8 + 4 + 8: counts the remaining bytes cannot hold are refused before any
     * allocation sized by them. */
    size_t left = c->size - c->pos;
    if (*n_kv > VLM_GGUF_MAX_KV || *n_kv > left / 13)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: metadata count %llu at offset 16 is more than the file can hold (limit %u)",
                             c->fname, (unsigned long long)*n_kv, VLM_GGUF_MAX_KV);
    if (*n_t > VLM_GGUF_MAX_TENSORS || *n_t > left / 32)
        return vlm_error_set(c->err, VLM_E_FORMAT, "%s: tensor count %llu at offset 8 is more than the file can hold (limit %u)",
                             c->fname, (unsigned long long)*n_t, VLM_GGUF_MAX_TENSORS);
    return VLM_OK;
}

static int parse_alignment(struct cur *c, struct vlm_gguf *g) {
    g->alignment = 32;
    const struct vlm_gguf_kv *a = vlm_gguf_find(g, "general.alignment");
    if (a) {
        if (a->type != VLM_GGUF_U32 || a->v.u == 0 || (a->v.u & (a->v.u - 1)) || a->v.u > VLM_GGUF_MAX_ALIGNMENT)
            return vlm_error_set(c->err, VLM_E_FORMAT, "%s: general.alignment (offset %zu) must be a power-of-two u32 up to %u",
                                 c->fname, a->offset, VLM_GGUF_MAX_ALIGNMENT);
        g->alignment = (uint32_t)a->v.u;
    }
    const struct vlm_gguf_kv *ar = vlm_gguf_find(g, "general.architecture");
    g->arch_owned = vlm_strndup(ar && ar->type == VLM_GGUF_STRING ? ar->str : "", ar && ar->type == VLM_GGUF_STRING ? (size_t)ar->n : 0);
    if (!g->arch_owned) return vlm_error_set(c->err, VLM_E_NOMEM, "out of memory");
    g->arch = g->arch_owned;
    return VLM_OK;
}

int vlm_gguf_parse(const uint8_t *data, size_t size, const char *fname, struct vlm_gguf *g,
                   struct vlm_error *err) {
    memset(g, 0, sizeof *g);
    g->fname = fname;
    g->base = data;
    g->size = size;
    g->arch = "";
    struct cur c = {data, size, 0, fname, err};
    uint64_t n_t = 0, n_kv = 0;
    int rc = parse_header(&c, g, &n_t, &n_kv);
    if (rc != VLM_OK) return rc;
    g->kv = vlm_calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv);
    g->t = vlm_calloc(n_t ? (size_t)n_t : 1, sizeof *g->t);
    if (!g->kv || !g->t) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto fail; }
    g->n_kv = (size_t)n_kv;
    if ((rc = parse_kvs(&c, g)) != VLM_OK) goto fail;
    if ((rc = parse_alignment(&c, g)) != VLM_OK) goto fail;
    struct nameset ns = {0};
    if (nameset_init(&ns, (size_t)n_t) != VLM_OK) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto fail; }
    for (size_t i = 0; i < n_t && rc == VLM_OK; i++) {
        g->n_tensors = i + 1;   /* so a failure frees this entry's name */
        rc = parse_tensor_info(&c, &g->t[i]);
        if (rc == VLM_OK && !nameset_add(&ns, &g->t[0].name, sizeof g->t[0], (uint32_t)i))
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%.200s' (offset %zu) appears twice", fname, g->t[i].name, g->t[i].info_offset);
    }
    vlm_free(ns.slots);
    if (rc != VLM_OK) goto fail;
    g->n_tensors = (size_t)n_t;
    size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (g->n_tensors && pad > size - c.pos) { rc = trunc_err(&c, pad, "the padding before the data section"); goto fail; }
    g->data_offset = g->n_tensors ? c.pos + pad : c.pos;
    if ((rc = place_tensors(&c, g)) != VLM_OK) goto fail;
    return VLM_OK;
fail:
    vlm_gguf_free(g);
    return rc;
}

void vlm_gguf_free(struct vlm_gguf *g) {
    if (!g) return;
    for (size_t i = 0; g->kv && i < g->n_kv; i++) vlm_free(g->kv[i].key);
    for (size_t i = 0; g->t && i < g->n_tensors; i++) vlm_free(g->t[i].name);
    vlm_free(g->kv);
    vlm_free(g->t);
    vlm_free(g->arch_owned);
    memset(g, 0, sizeof *g);
    g->arch = "";
}
