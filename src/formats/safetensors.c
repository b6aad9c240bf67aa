/* safetensors.c — safetensors reader: 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the data area; every field is checked against the
 * file's bytes before a view is handed out (RELIABILITY item 14). */
#include "formats/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "formats/weights.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

struct st_dtype { const char *name; int size; int type; /* -1: known, not loaded */ };
static const struct st_dtype st_dtypes[] = {
    {"F32", 4, VLM_DT_F32}, {"F16", 2, VLM_DT_F16}, {"BF16", 2, VLM_DT_BF16},
    {"F64", 8, -1}, {"I64", 8, -1}, {"U64", 8, -1}, {"I32", 4, -1}, {"U32", 4, -1},
    {"I16", 2, -1}, {"U16", 2, -1}, {"I8", 1, -1}, {"U8", 1, -1}, {"BOOL", 1, -1},
    {"F8_E4M3", 1, -1}, {"F8_E5M2", 1, -1},
};

struct st_range { size_t begin, end; const char *name; };

static int cmp_range(const void *a, const void *b) {
    const struct st_range *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end < y->end ? -1 : x->end > y->end);
}

static int get_u64(json_t *v, size_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return 0;
    *out = (size_t)json_integer_value(v);
    return 1;
}

/* Checks one tensor entry and fills t (data relative to the data area) and *r. */
static int parse_entry(const char *fname, const char *name, json_t *e, size_t data_size,
                       const struct st_dtype **dt_out, struct vlm_tensor *t, struct st_range *r,
                       struct vlm_error *err) {
    if (!json_is_object(e)) return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': entry is not an object", fname, name);
    json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"), *of = json_object_get(e, "data_offsets");
    if (!json_is_string(dt) || !json_is_array(sh) || !json_is_array(of) || json_array_size(of) != 2)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': needs dtype, shape and data_offsets [begin, end]", fname, name);
    const struct st_dtype *d = NULL;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (!strcmp(json_string_value(dt), st_dtypes[i].name)) d = &st_dtypes[i];
    if (!d) return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': unknown dtype '%.32s'", fname, name, json_string_value(dt));
    size_t nd = json_array_size(sh);
    if (nd > VLM_MAX_DIMS)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tensor '%s': %zu dimensions (at most %d)", fname, name, nd, VLM_MAX_DIMS);
    memset(t, 0, sizeof *t);
    size_t nel = 1;
    for (size_t i = 0; i < nd; i++) {
        size_t v;
        if (!get_u64(json_array_get(sh, i), &v) || !vlm_mul_ok(nel, v, &nel) || v > INT64_MAX)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': bad shape", fname, name);
        t->ne[i] = (int64_t)v;
    }
    t->n_dims = (int)nd;
    size_t nbytes, b, en;
    if (!vlm_mul_ok(nel, (size_t)d->size, &nbytes))
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': shape too large", fname, name);
    if (!get_u64(json_array_get(of, 0), &b) || !get_u64(json_array_get(of, 1), &en) || b > en)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': bad data_offsets", fname, name);
    if (en > data_size)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': data_offsets [%zu, %zu) past the end of the data (%zu bytes; file truncated?)",
                             fname, name, b, en, data_size);
    if (en - b != nbytes)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': shape x %s size is %zu bytes but data_offsets span %zu",
                             fname, name, d->name, nbytes, en - b);
    t->type = d->type >= 0 ? (enum vlm_dtype)d->type : VLM_DT_F32;
    t->nbytes = nbytes;
    r->begin = b;
    r->end = en;
    r->name = name;
    *dt_out = d;
    return VLM_OK;
}

int vlm_safetensors_parse(const uint8_t *data, size_t size, const char *fname,
                          struct vlm_weights *w, int file, struct vlm_error *err) {
    if (size < 8) return vlm_error_set(err, VLM_E_FORMAT, "%s: too short for a safetensors file (%zu bytes)", fname, size);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | data[i];
    if (hl > VLM_ST_MAX_HEADER) return vlm_error_set(err, VLM_E_FORMAT, "%s: header length %llu over the %u-byte cap", fname, (unsigned long long)hl, VLM_ST_MAX_HEADER);
    if (hl > size - 8) return vlm_error_set(err, VLM_E_FORMAT, "%s: header length %llu past the end of the file (%zu bytes; truncated?)", fname, (unsigned long long)hl, size);
    json_error_t je;
    json_t *root = json_loadb((const char *)data + 8, (size_t)hl, JSON_REJECT_DUPLICATES, &je);
    if (!root) return vlm_error_set(err, VLM_E_FORMAT, "%s: header is not valid JSON (%s at byte %d)", fname, je.text, je.position);
    int rc = VLM_OK;
    struct st_range *ranges = NULL;
    if (!json_is_object(root)) {
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: header is not a JSON object", fname);
        goto done;
    }
    const uint8_t *area = data + 8 + hl;
    size_t area_size = size - 8 - (size_t)hl, n = 0;
    ranges = vlm_calloc(json_object_size(root) + 1, sizeof *ranges);
    if (!ranges) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto done; }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (!strcmp(key, "__metadata__")) {
            if (!json_is_object(val)) { rc = vlm_error_set(err, VLM_E_FORMAT, "%s: __metadata__ is not an object", fname); goto done; }
            continue;
        }
        const struct st_dtype *d = NULL;
        struct vlm_tensor t;
        if ((rc = parse_entry(fname, key, val, area_size, &d, &t, &ranges[n], err)) != VLM_OK) goto done;
        n++;
        if (!d || d->type < 0) continue;   /* integer/fp8 tensors: checked, not loaded */
        t.data = area + ranges[n - 1].begin;
        if ((rc = vlm_weights_add(w, key, strlen(key), &t, file, err)) != VLM_OK) goto done;
    }
    qsort(ranges, n, sizeof *ranges, cmp_range);
    for (size_t i = 1; i < n; i++)
        if (ranges[i].begin < ranges[i - 1].end) {
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: tensors '%s' and '%s' overlap", fname, ranges[i - 1].name, ranges[i].name);
            goto done;
        }
done:
    vlm_free(ranges);
    json_decref(root);
    return rc;
}

int vlm_safetensors_load_file(const char *path, struct vlm_weights *w, struct vlm_error *err) {
    struct vlm_mmap m;
    int rc = vlm_mmap_file(path, &m, err);
    if (rc != VLM_OK) return rc;
    int file = vlm_weights_add_file(w, path, &m, err);
    if (file < 0) {
        vlm_munmap(&m);
        return file;
    }
    return vlm_safetensors_parse(w->maps[file].data, w->maps[file].size, path, w, file, err);
}

/* A shard name from the index must be a plain file name in the model folder. */
static int shard_name_ok(const char *s) {
    return *s && !strchr(s, '/') && !strchr(s, '\\') && strcmp(s, ".") && strcmp(s, "..");
}

static int load_sharded(const char *dir, const char *index_path, struct vlm_weights *w, struct vlm_error *err) {
    char *text = NULL;
    size_t len;
    int rc = vlm_read_file(index_path, 64u << 20, &text, &len, err);
    if (rc != VLM_OK) return rc;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    vlm_free(text);
    if (!root) return vlm_error_set(err, VLM_E_FORMAT, "%s: not valid JSON (%s, line %d)", index_path, je.text, je.line);
    json_t *map = json_object_get(root, "weight_map");
    const char *key;
    json_t *val;
    if (!json_is_object(map)) { rc = vlm_error_set(err, VLM_E_FORMAT, "%s: no \"weight_map\" object", index_path); goto done; }
    json_object_foreach(map, key, val) {
        const char *f = json_string_value(val);
        if (!f || !shard_name_ok(f)) { rc = vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s' names a bad shard file", index_path, key); goto done; }
        int seen = 0;
        for (int i = 0; i < w->n_files && !seen; i++) {
            const char *base = strrchr(w->files[i], '/');
            seen = !strcmp(base ? base + 1 : w->files[i], f);
        }
        if (seen) continue;
        char *path = vlm_path_join(dir, f);
        if (!path) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto done; }
        rc = vlm_safetensors_load_file(path, w, err);
        vlm_free(path);
        if (rc != VLM_OK) goto done;
    }
    json_object_foreach(map, key, val) {
        const char *got = vlm_weights_file_of(w, key), *base = strrchr(got, '/');
        if (!*got) { rc = vlm_error_set(err, VLM_E_NOT_FOUND, "%s: tensor '%s' is not in %s", index_path, key, json_string_value(val)); goto done; }
        if (strcmp(base ? base + 1 : got, json_string_value(val))) {
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s' found in %s, index says %s", index_path, key, got, json_string_value(val));
            goto done;
        }
    }
done:
    json_decref(root);
    return rc;
}

int vlm_safetensors_load_dir(const char *dir, struct vlm_weights *w, struct vlm_error *err) {
    char *index = vlm_path_join(dir, "model.safetensors.index.json");
    char *single = vlm_path_join(dir, "model.safetensors");
    int rc;
    if (!index || !single) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    else if (vlm_file_exists(index)) rc = load_sharded(dir, index, w, err);
    else if (vlm_file_exists(single)) rc = vlm_safetensors_load_file(single, w, err);
    else rc = vlm_error_set(err, VLM_E_NOT_FOUND, "%s: no model.safetensors or model.safetensors.index.json", dir);
    vlm_free(index);
    vlm_free(single);
    return rc;
}
