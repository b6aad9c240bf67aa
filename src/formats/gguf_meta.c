/* gguf_meta.c — lookups over a parsed GGUF file: metadata entries by key with typed,
 * range-checked getters (errors name the file and key), array element access, tensors by name. */
#include <math.h>
#include <string.h>

#include "formats/gguf.h"
#include "util/alloc.h"
#include "util/error.h"

const struct vlm_gguf_kv *vlm_gguf_find(const struct vlm_gguf *g, const char *key) {
    for (size_t i = 0; i < g->n_kv; i++)
        if (g->kv[i].key && !strcmp(g->kv[i].key, key)) return &g->kv[i];
    return NULL;
}

const struct vlm_gguf_tensor *vlm_gguf_tensor(const struct vlm_gguf *g, const char *name) {
    for (size_t i = 0; i < g->n_tensors; i++)
        if (g->t[i].name && !strcmp(g->t[i].name, name)) return &g->t[i];
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t <= VLM_GGUF_I32 || t == VLM_GGUF_U64 || t == VLM_GGUF_I64;
}
static int is_signed(uint32_t t) {
    return t == VLM_GGUF_I8 || t == VLM_GGUF_I16 || t == VLM_GGUF_I32 || t == VLM_GGUF_I64;
}

int vlm_gguf_get_int(const struct vlm_gguf *g, const char *key, long long def, long long lo,
                     long long hi, long long *out, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, key);
    *out = def;
    if (!kv) return VLM_OK;
    int ok = is_int_type(kv->type);
    long long v = 0;
    if (ok && is_signed(kv->type)) v = kv->v.i;
    else if (ok) { ok = kv->v.u <= (uint64_t)INT64_MAX; v = (long long)kv->v.u; }
    if (!ok || v < lo || v > hi)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: key '%s' (offset %zu) must be an integer in [%lld, %lld]",
                             g->fname, key, kv->offset, lo, hi);
    *out = v;
    return VLM_OK;
}

int vlm_gguf_get_num(const struct vlm_gguf *g, const char *key, double def, double lo, double hi,
                     double *out, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, key);
    *out = def;
    if (!kv) return VLM_OK;
    double v = 0;
    int ok = 1;
    if (kv->type == VLM_GGUF_F32 || kv->type == VLM_GGUF_F64) v = kv->v.f;
    else if (is_int_type(kv->type)) v = is_signed(kv->type) ? (double)kv->v.i : (double)kv->v.u;
    else ok = 0;
    if (!ok || !isfinite(v) || v < lo || v > hi)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: key '%s' (offset %zu) must be a number in [%g, %g]",
                             g->fname, key, kv->offset, lo, hi);
    *out = v;
    return VLM_OK;
}

int vlm_gguf_get_bool(const struct vlm_gguf *g, const char *key, int def, int *out, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, key);
    *out = def;
    if (!kv) return VLM_OK;
    if (kv->type != VLM_GGUF_BOOL)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: key '%s' (offset %zu) must be a bool", g->fname, key, kv->offset);
    *out = kv->v.u != 0;
    return VLM_OK;
}

int vlm_gguf_get_str(const struct vlm_gguf *g, const char *key, char **out, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, key);
    *out = NULL;
    if (!kv) return VLM_OK;
    if (kv->type != VLM_GGUF_STRING || memchr(kv->str, 0, (size_t)kv->n))
        return vlm_error_set(err, VLM_E_FORMAT, "%s: key '%s' (offset %zu) must be a string without NUL bytes",
                             g->fname, key, kv->offset);
    *out = vlm_strndup(kv->str, (size_t)kv->n);
    return *out ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

int vlm_gguf_get_arr(const struct vlm_gguf *g, const char *key, uint32_t want,
                     const struct vlm_gguf_kv **out, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, key);
    *out = NULL;
    if (!kv) return VLM_OK;
    int ok = kv->type == VLM_GGUF_ARRAY;
    if (ok && want == VLM_GGUF_I64) ok = is_int_type(kv->arr_type);
    else if (ok && want == VLM_GGUF_F64) ok = is_int_type(kv->arr_type) || kv->arr_type == VLM_GGUF_F32 || kv->arr_type == VLM_GGUF_F64;
    else if (ok) ok = kv->arr_type == want;
    if (!ok)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: key '%s' (offset %zu) is not an array of the expected type",
                             g->fname, key, kv->offset);
    *out = kv;
    return VLM_OK;
}

int64_t vlm_gguf_arr_int(const struct vlm_gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->arr + (size_t)i * vlm_gguf_value_size(kv->arr_type);
    switch (kv->arr_type) {
    case VLM_GGUF_U8: case VLM_GGUF_BOOL: return p[0];
    case VLM_GGUF_I8: return (int8_t)p[0];
    case VLM_GGUF_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
    case VLM_GGUF_I16: { int16_t x; memcpy(&x, p, 2); return x; }
    case VLM_GGUF_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
    case VLM_GGUF_I32: { int32_t x; memcpy(&x, p, 4); return x; }
    case VLM_GGUF_U64: { uint64_t x; memcpy(&x, p, 8); return x > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)x; }
    case VLM_GGUF_I64: { int64_t x; memcpy(&x, p, 8); return x; }
    default: return 0;   /* not an integer array (vlm_gguf_get_arr checked) */
    }
}

double vlm_gguf_arr_num(const struct vlm_gguf_kv *kv, uint64_t i) {
    const uint8_t *p = kv->arr + (size_t)i * vlm_gguf_value_size(kv->arr_type);
    if (kv->arr_type == VLM_GGUF_F32) { float x; memcpy(&x, p, 4); return x; }
    if (kv->arr_type == VLM_GGUF_F64) { double x; memcpy(&x, p, 8); return x; }
    return (double)vlm_gguf_arr_int(kv, i);
}

void vlm_gguf_arr_str(const struct vlm_gguf *g, size_t *pos, const char **s, size_t *len) {
    uint64_t n;
    memcpy(&n, g->base + *pos, 8);
    *s = (const char *)g->base + *pos + 8;
    *len = (size_t)n;
    *pos += 8 + (size_t)n;
}
