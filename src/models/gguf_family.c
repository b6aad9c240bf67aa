/* gguf_family.c — helpers the per-family GGUF tables share: copying checked metadata values
 * into the config objects a family's load reads. */
#include "models/gguf_family.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

int vlm_gguf_cfg_int(const struct vlm_gguf *g, const char *key, long long lo, long long hi, json_t *obj,
                     const char *name, struct vlm_error *err) {
    if (!vlm_gguf_find(g, key)) return VLM_OK;
    long long v;
    int rc = vlm_gguf_get_int(g, key, 0, lo, hi, &v, err);
    if (rc == VLM_OK && json_object_set_new(obj, name, json_integer(v)))
        rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    return rc;
}

int vlm_gguf_cfg_num(const struct vlm_gguf *g, const char *key, double lo, double hi, json_t *obj,
                     const char *name, struct vlm_error *err) {
    if (!vlm_gguf_find(g, key)) return VLM_OK;
    double v;
    int rc = vlm_gguf_get_num(g, key, 0, lo, hi, &v, err);
    if (rc == VLM_OK && json_object_set_new(obj, name, json_real(v)))
        rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    return rc;
}

const char *vlm_gguf_arch_key(const struct vlm_gguf *g, const char *suffix, char *buf, size_t n) {
    snprintf(buf, n, "%s.%s", g->arch, suffix);
    return buf;
}

long long vlm_gguf_token_id(const struct vlm_gguf *g, const char *s) {
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, "tokenizer.ggml.tokens");
    if (!kv || kv->type != VLM_GGUF_ARRAY || kv->arr_type != VLM_GGUF_STRING) return -1;
    size_t pos = kv->offset, n = strlen(s);
    for (uint64_t i = 0; i < kv->n; i++) {
        const char *t;
        size_t len;
        vlm_gguf_arr_str(g, &pos, &t, &len);
        if (len == n && !memcmp(t, s, n)) return (long long)i;
    }
    return -1;
}
