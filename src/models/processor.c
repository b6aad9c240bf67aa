/* processor.c — loads a model folder's preprocessor_config.json (+ processor_config.json),
 * picks the family's image processor by "image_processor_type" / "processor_class", and
 * forwards runs to it. Adding a family = one ops table in its own file + one row below. */
#include "models/processor.h"
#include "image/image.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <stdio.h>
#include <string.h>

static const struct vlm_processor_ops *const families[] = {
    &vlm_idefics3_processor_ops,
    &vlm_qwen2vl_processor_ops,
    &vlm_clip_processor_ops,
    &vlm_gemma3_processor_ops,
    &vlm_mllama_processor_ops,
    /* LLaVA-NeXT: add its ops table here */
};

struct vlm_processor {
    const struct vlm_processor_ops *ops;
    void *state;
};

#define PROC_CONFIG_MAX (1u << 20)

int proc_json_bool(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return dflt;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

int proc_json_int(json_t *o, const char *key, int dflt) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return dflt;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1000000000)
        return -1;
    return (int)json_integer_value(v);
}

static int floats3(json_t *o, const char *key, float out[3], struct vlm_error *err) {
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return VLM_OK;
    if (json_is_number(v)) {   /* a scalar applies to every channel, as HF does */
        out[0] = out[1] = out[2] = (float)json_number_value(v);
        return VLM_OK;
    }
    if (!json_is_array(v) || json_array_size(v) != 3)
        return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: %s must be 3 numbers", key);
    for (size_t i = 0; i < 3; i++) {
        json_t *e = json_array_get(v, i);
        if (!json_is_number(e))
            return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: %s must be numbers", key);
        out[i] = (float)json_number_value(e);   /* np.array(mean, dtype=float32) */
    }
    return VLM_OK;
}

int proc_common_parse(json_t *pre, struct proc_common *c, struct vlm_error *err) {
    struct { const char *k; int *dst; } bools[] = {
        {"do_resize", &c->do_resize}, {"do_rescale", &c->do_rescale},
        {"do_normalize", &c->do_normalize}, {"do_convert_rgb", &c->do_convert_rgb},
        {"do_pad", &c->do_pad}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        int v = proc_json_bool(pre, bools[i].k, *bools[i].dst);
        if (v < 0) return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: %s must be a boolean", bools[i].k);
        *bools[i].dst = v;
    }
    json_t *rf = json_object_get(pre, "rescale_factor");
    if (rf && !json_is_null(rf)) {
        if (!json_is_number(rf)) return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: rescale_factor must be a number");
        c->rescale_factor = json_number_value(rf);
    }
    int rs = proc_json_int(pre, "resample", c->resample);
    if (rs < 0 || rs > VLM_RESAMPLE_HAMMING)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: unsupported resample value");
    c->resample = rs;
    int rc = floats3(pre, "image_mean", c->mean, err);
    if (rc == VLM_OK) rc = floats3(pre, "image_std", c->std, err);
    if (rc == VLM_OK && (c->std[0] == 0 || c->std[1] == 0 || c->std[2] == 0))
        rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: image_std has a zero");
    return rc;
}

/* *out = the parsed object of dir/name; a missing optional file gives VLM_OK and NULL. */
static int load_json(const char *dir, const char *name, int required, json_t **out,
                     struct vlm_error *err) {
    char *path = vlm_path_join(dir, name), *text = NULL;
    size_t len = 0;
    int rc;
    *out = NULL;
    if (!path) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (!required && !vlm_file_exists(path)) { vlm_free(path); return VLM_OK; }
    rc = vlm_read_file(path, PROC_CONFIG_MAX, &text, &len, err);
    if (rc == VLM_OK) {
        json_error_t je;
        json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!j || !json_is_object(j)) {
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: invalid JSON (line %d)", name, je.line);
            json_decref(j);
        } else {
            *out = j;
        }
    }
    vlm_free(text);
    vlm_free(path);
    return rc;
}

/* "Idefics3ImageProcessorFast" / "...Pil" -> "Idefics3ImageProcessor" in buf. */
static const char *strip_suffix(const char *s, char *buf, size_t n) {
    if (!s) return "";
    snprintf(buf, n, "%s", s);
    size_t l = strlen(buf);
    if (l > 4 && !strcmp(buf + l - 4, "Fast")) buf[l - 4] = 0;
    else if (l > 3 && !strcmp(buf + l - 3, "Pil")) buf[l - 3] = 0;
    return buf;
}

int vlm_processor_load(const char *dir, struct vlm_processor **out, struct vlm_error *err) {
    *out = NULL;
    json_t *pre = NULL, *proc = NULL;
    int rc = load_json(dir, "preprocessor_config.json", 1, &pre, err);
    if (rc) return rc;
    rc = load_json(dir, "processor_config.json", 0, &proc, err);
    if (rc) { json_decref(pre); return rc; }

    char tb[128], cb[128];
    json_t *t = json_object_get(pre, "image_processor_type");
    json_t *c = json_object_get(pre, "processor_class");
    if ((!c || !json_is_string(c)) && proc) c = json_object_get(proc, "processor_class");
    const char *type = strip_suffix(json_is_string(t) ? json_string_value(t) : NULL, tb, sizeof tb);
    const char *cls = strip_suffix(json_is_string(c) ? json_string_value(c) : NULL, cb, sizeof cb);

    const struct vlm_processor_ops *ops = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0] && !ops; i++)
        if (families[i]->matches(type, cls)) ops = families[i];
    if (!ops) {
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "image processor '%s' (%s) is not supported",
                           *type ? type : "?", *cls ? cls : "?");
    } else {
        struct vlm_processor *p = vlm_calloc(1, sizeof *p);
        if (!p) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        else if ((rc = ops->load(dir, pre, proc, &p->state, err)) != VLM_OK) vlm_free(p);
        else { p->ops = ops; *out = p; }
    }
    json_decref(pre);
    json_decref(proc);
    return rc;
}

void vlm_processor_free(struct vlm_processor *p) {
    if (!p) return;
    p->ops->free(p->state);
    vlm_free(p);
}

int vlm_processor_run(const struct vlm_processor *p, const struct vlm_image *img,
                      const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
                      struct vlm_error *err) {
    if (out) memset(out, 0, sizeof *out);
    if (!p || !img || !img->rgb || img->width < 1 || img->height < 1 || !out)
        return vlm_error_set(err, VLM_E_INVALID, "processor: no image");
    return p->ops->run(p->state, img, ov, out, err);
}

const char *vlm_processor_image_placeholder(const struct vlm_processor *p) {
    return p && p->ops->placeholder ? p->ops->placeholder : "<image>";
}

void vlm_image_input_free(struct vlm_image_input *in) {
    if (!in) return;
    vlm_free(in->pixels);
    vlm_free(in->pixel_mask);
    vlm_free(in->prompt);
    memset(in, 0, sizeof *in);
}
