/* config.c — config.json reader with typed getters that refuse wrong types and ranges. */
#include "formats/config.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

int vlm_config_load(const char *dir, struct vlm_config *c, struct vlm_error *err) {
    memset(c, 0, sizeof *c);
    c->path = vlm_path_join(dir, "config.json");
    if (!c->path) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    char *text;
    size_t len;
    int rc = vlm_read_file(c->path, VLM_CONFIG_MAX_BYTES, &text, &len, err);
    if (rc != VLM_OK) return rc;
    json_error_t je;
    c->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    vlm_free(text);
    if (!c->root) return vlm_error_set(err, VLM_E_FORMAT, "%s: not valid JSON (%s, line %d)", c->path, je.text, je.line);
    if (!json_is_object(c->root)) return vlm_error_set(err, VLM_E_FORMAT, "%s: not a JSON object", c->path);
    json_t *a = json_object_get(c->root, "architectures");
    c->arch = json_is_array(a) && json_is_string(json_array_get(a, 0)) ? json_string_value(json_array_get(a, 0)) : "";
    const char *mt = json_string_value(json_object_get(c->root, "model_type"));
    c->model_type = mt ? mt : "";
    return VLM_OK;
}

void vlm_config_free(struct vlm_config *c) {
    if (!c) return;
    json_decref(c->root);
    vlm_free(c->path);
    memset(c, 0, sizeof *c);
}

int vlm_config_sub(const struct vlm_config *c, const char *key, json_t **out, struct vlm_error *err) {
    json_t *o = json_object_get(c->root, key);
    *out = NULL;
    if (o && !json_is_null(o) && !json_is_object(o))
        return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" is not an object", c->path, key);
    *out = json_is_object(o) ? o : NULL;
    return VLM_OK;
}

static json_t *lookup(json_t *obj, const char *key) {
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    return json_is_null(v) ? NULL : v;
}

int vlm_config_int(const struct vlm_config *c, json_t *obj, const char *key, long long def,
                   long long lo, long long hi, long long *out, struct vlm_error *err) {
    json_t *v = lookup(obj, key);
    long long x = def;
    if (v) {
        if (json_is_integer(v)) x = json_integer_value(v);
        else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) && fabs(json_real_value(v)) < 9e15)
            x = (long long)json_real_value(v);
        else return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" is not an integer", c->path, key);
    }
    if (x < lo || x > hi)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" = %lld outside [%lld, %lld]", c->path, key, x, lo, hi);
    *out = x;
    return VLM_OK;
}

int vlm_config_num(const struct vlm_config *c, json_t *obj, const char *key, double def,
                   double lo, double hi, double *out, struct vlm_error *err) {
    json_t *v = lookup(obj, key);
    double x = def;
    if (v) {
        if (!json_is_number(v)) return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" is not a number", c->path, key);
        x = json_number_value(v);
    }
    if (!(x >= lo && x <= hi))
        return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" = %g outside [%g, %g]", c->path, key, x, lo, hi);
    *out = x;
    return VLM_OK;
}

int vlm_config_bool(const struct vlm_config *c, json_t *obj, const char *key, int def,
                    int *out, struct vlm_error *err) {
    json_t *v = lookup(obj, key);
    if (v && !json_is_boolean(v)) return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" is not a boolean", c->path, key);
    *out = v ? json_is_true(v) : def;
    return VLM_OK;
}

int vlm_config_str(const struct vlm_config *c, json_t *obj, const char *key, const char *def,
                   const char **out, struct vlm_error *err) {
    json_t *v = lookup(obj, key);
    if (v && !json_is_string(v)) return vlm_error_set(err, VLM_E_FORMAT, "%s: \"%s\" is not a string", c->path, key);
    *out = v ? json_string_value(v) : def;
    return VLM_OK;
}
