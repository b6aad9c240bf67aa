/* llava_next_processor.c — LlavaNextImageProcessor (LLaVA-NeXT "anyres") as transformers' Pillow
 * backend runs it: the image resized (aspect kept) into the best of image_grid_pinpoints,
 * centred on a zero canvas of that size and cut into crop-size tiles, after one tile of the
 * whole image squashed to size x size; the prompt is LlavaNextProcessor's image-token count
 * (base tile + the unpadded tile grid + one newline per row). Tiles equal the crop size here
 * (all published configs), so the per-tile resize and centre crop are the identity. */
#include "image/image.h"
#include "models/anyres.h"
#include "models/processor.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

struct llava_next {
    struct proc_common c;
    int size;                    /* size.shortest_edge == crop_size (checked) */
    int pins[VLM_ANYRES_MAX_PINPOINTS][2];
    int n_pins;
    int patch, extra_tokens, drop_cls;
    char image_token[64];
};

static int matches(const char *type, const char *cls) {
    return !strcmp(type, "LlavaNextImageProcessor") || (!*type && !strcmp(cls, "LlavaNextProcessor"));
}

static int load_pins(json_t *pre, struct llava_next *s, struct vlm_error *err) {
    json_t *g = json_object_get(pre, "image_grid_pinpoints"), *e;
    size_t i;
    if (!json_is_array(g) || json_array_size(g) == 0 || json_array_size(g) > VLM_ANYRES_MAX_PINPOINTS)
        return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: image_grid_pinpoints must list 1 to %d [height, width] pairs",
                             VLM_ANYRES_MAX_PINPOINTS);
    json_array_foreach(g, i, e) {
        json_t *h = json_array_get(e, 0), *w = json_array_get(e, 1);
        if (json_array_size(e) != 2 || !json_is_integer(h) || !json_is_integer(w) || json_integer_value(h) < s->size ||
            json_integer_value(w) < s->size || json_integer_value(h) > 8192 || json_integer_value(w) > 8192 ||
            json_integer_value(h) % s->size || json_integer_value(w) % s->size ||
            (json_integer_value(h) / s->size) * (json_integer_value(w) / s->size) > VLM_ANYRES_MAX_TILES)
            return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: image_grid_pinpoints[%zu] is not a multiple of the %d-pixel tile",
                                 i, s->size);
        s->pins[i][0] = (int)json_integer_value(h);
        s->pins[i][1] = (int)json_integer_value(w);
    }
    s->n_pins = (int)json_array_size(g);
    return VLM_OK;
}

/* size.shortest_edge (or height == width) and crop_size must be one square tile side. */
static int load_size(json_t *pre, struct llava_next *s, struct vlm_error *err) {
    json_t *sz = json_object_get(pre, "size"), *cs = json_object_get(pre, "crop_size");
    int se = proc_json_int(sz, "shortest_edge", 0), h = proc_json_int(sz, "height", 0), w = proc_json_int(sz, "width", 0);
    int ch = proc_json_int(cs, "height", 0), cw = proc_json_int(cs, "width", 0);
    int side = se > 0 ? se : h == w ? h : 0;
    if (side <= 0 || side > 4096 || ch != side || cw != side || proc_json_bool(pre, "do_center_crop", 1) < 0)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: LLaVA-NeXT needs size and crop_size of one square tile");
    s->size = side;
    return VLM_OK;
}

static int load(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err) {
    (void)dir;
    struct llava_next *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->c = (struct proc_common){1, 1, 1, 1, 1, 1.0 / 255.0,
                                {0.48145466f, 0.4578275f, 0.40821073f},
                                {0.26862954f, 0.26130258f, 0.27577711f}, VLM_RESAMPLE_BICUBIC};
    int rc = proc_common_parse(pre, &s->c, err);
    if (rc == VLM_OK) rc = load_size(pre, s, err);
    if (rc == VLM_OK) rc = load_pins(pre, s, err);
    if (rc == VLM_OK) {
        json_t *tok = proc ? json_object_get(proc, "image_token") : NULL;
        json_t *st = proc ? json_object_get(proc, "vision_feature_select_strategy") : NULL;
        snprintf(s->image_token, sizeof s->image_token, "%s",
                 json_is_string(tok) && json_string_length(tok) < sizeof s->image_token ? json_string_value(tok) : "<image>");
        s->patch = proc ? proc_json_int(proc, "patch_size", 0) : 0;
        s->extra_tokens = proc ? proc_json_int(proc, "num_additional_image_tokens", 0) : 0;
        s->drop_cls = !json_is_string(st) || !strcmp(json_string_value(st), "default");
        if (s->patch <= 0 || s->size % s->patch || s->extra_tokens < 0 || s->extra_tokens > 1024)
            rc = vlm_error_set(err, VLM_E_FORMAT, "processor_config.json: patch_size must divide the %d-pixel tile (and num_additional_image_tokens be sane)",
                               s->size);
    }
    if (rc) { vlm_free(s); return rc; }
    *state = s;
    return VLM_OK;
}

static void unload(void *state) { vlm_free(state); }

/* LlavaNextProcessor._get_number_of_features (minus the class token for "default"). */
static int count_tokens(const struct llava_next *s, int H, int W) {
    int bh, bw, y0, h, x0, w, side = s->size / s->patch;
    vlm_anyres_best(H, W, s->pins, s->n_pins, &bh, &bw);
    vlm_anyres_unpad(H, W, side * (bh / s->size), side * (bw / s->size), &y0, &h, &x0, &w);
    int n = h * w + h + side * side + s->extra_tokens - (s->drop_cls ? 1 : 0);
    return n > 0 ? n : 0;
}

static int make_prompt(const struct llava_next *s, struct vlm_image_input *out, struct vlm_error *err) {
    struct vlm_buf b = {0};
    size_t tl = strlen(s->image_token);
    for (int i = 0; i < out->n_image_tokens; i++)
        if (vlm_buf_append(&b, s->image_token, tl)) { vlm_buf_free(&b); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
    out->prompt = vlm_buf_take(&b);
    if (!out->prompt) out->prompt = vlm_strdup("");
    return out->prompt ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
}

static int run(const void *state, const struct vlm_image *in, const struct vlm_processor_overrides *ov,
               struct vlm_image_input *out, struct vlm_error *err) {
    const struct llava_next *s = state;
    (void)ov;
    int H = in->height, W = in->width, S = s->size, bh, bw, nh, nw;
    vlm_anyres_best(H, W, s->pins, s->n_pins, &bh, &bw);
    vlm_anyres_fit(H, W, bh, bw, &nh, &nw);
    int rows = bh / S, cols = bw / S, n_tiles = 1 + rows * cols;
    struct vlm_image base = {0, 0, NULL}, fit = {0, 0, NULL};
    int rc = vlm_image_resize(in, S, S, s->c.resample, &base, err);
    if (rc == VLM_OK) rc = vlm_image_resize(in, nw, nh, s->c.resample, &fit, err);
    size_t plane = (size_t)S * S;
    if (rc == VLM_OK && !(out->pixels = vlm_malloc(sizeof(float) * 3 * plane * (size_t)n_tiles)))
        rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (rc == VLM_OK) {
        const float *mean = s->c.do_normalize ? s->c.mean : NULL, *std = s->c.do_normalize ? s->c.std : NULL;
        double resc = s->c.do_rescale ? s->c.rescale_factor : 1.0;
        vlm_image_to_chw(&base, resc, mean, std, out->pixels, S, S);
        /* the zero canvas: padding normalizes like a black pixel */
        float pad[3];
        for (int c = 0; c < 3; c++) pad[c] = mean ? (0.0f - mean[c]) / std[c] : 0.0f;
        int top = (bh - nh) / 2, left = (bw - nw) / 2;
        for (int t = 0; t < rows * cols; t++) {
            float *dst = out->pixels + (size_t)(t + 1) * 3 * plane;
            int ty = (t / cols) * S, tx = (t % cols) * S;
            for (int c = 0; c < 3; c++)
                for (size_t i = 0; i < plane; i++) dst[c * plane + i] = pad[c];
            /* the part of the fitted image inside this tile */
            int y0 = ty > top ? ty : top, y1 = ty + S < top + nh ? ty + S : top + nh;
            int x0 = tx > left ? tx : left, x1 = tx + S < left + nw ? tx + S : left + nw;
            if (y0 >= y1 || x0 >= x1) continue;
            float *tmp = vlm_malloc(sizeof(float) * 3 * (size_t)(y1 - y0) * (x1 - x0));
            if (!tmp) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); break; }
            int rh = y1 - y0, rw = x1 - x0;
            vlm_image_rect_to_chw(&fit, x0 - left, y0 - top, rw, rh, resc, mean, std, tmp, rh, rw);
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < rh; y++)
                    memcpy(dst + c * plane + (size_t)(y0 - ty + y) * S + (x0 - tx), tmp + ((size_t)c * rh + y) * rw,
                           sizeof(float) * (size_t)rw);
            vlm_free(tmp);
        }
    }
    vlm_image_free(&base);
    vlm_image_free(&fit);
    if (rc == VLM_OK) {
        out->n_tiles = n_tiles;
        out->channels = 3;
        out->height = out->width = S;
        out->n_rows = rows;
        out->n_cols = cols;
        out->orig_height = H;
        out->orig_width = W;
        out->n_image_tokens = count_tokens(s, H, W);
        rc = make_prompt(s, out, err);
    }
    if (rc) vlm_image_input_free(out);
    return rc;
}

const struct vlm_processor_ops vlm_llava_next_processor_ops = {
    "LlavaNextImageProcessor", matches, load, run, unload, "<image>",
};
