/* clip_processor.c — CLIPImageProcessor (LLaVA 1.5 and other CLIP-tower models) as
 * transformers' Pillow backend runs it: shortest-edge resize (or a fixed height x width), center
 * crop of the 8-bit image (zero padding when it is smaller), rescale, normalize; one image of
 * (3, crop_h, crop_w). The prompt is LlavaProcessor's: image_token x ((H/p)*(W/p) +
 * num_additional_image_tokens - 1 when vision_feature_select_strategy is "default"). */
#include "image/image.h"
#include "models/processor.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <string.h>

struct clip {
    struct proc_common c;
    int shortest_edge;           /* size.shortest_edge; 0 when size gives height and width */
    int size_h, size_w;
    int do_center_crop, crop_h, crop_w;
    int patch, extra_tokens, drop_cls;
    char image_token[64];
};

static int matches(const char *type, const char *cls) {
    return !strcmp(type, "CLIPImageProcessor") || (!*type && !strcmp(cls, "LlavaProcessor"));
}

/* patch_size from processor_config.json, else config.json's vision_config (LLaVA). */
static int patch_from_config(const char *dir) {
    char *path = vlm_path_join(dir, "config.json"), *text = NULL;
    size_t len;
    int p = 0;
    struct vlm_error e = {0, ""};
    if (path && vlm_file_exists(path) && vlm_read_file(path, 1u << 22, &text, &len, &e) == VLM_OK) {
        json_t *j = json_loadb(text, len, 0, NULL);
        p = proc_json_int(json_object_get(j, "vision_config"), "patch_size", 0);
        json_decref(j);
    }
    vlm_free(text);
    vlm_free(path);
    return p > 0 ? p : 14;
}

static int load_sizes(json_t *pre, struct clip *s, struct vlm_error *err) {
    json_t *sz = json_object_get(pre, "size");
    if (json_is_object(sz)) {
        int se = proc_json_int(sz, "shortest_edge", 0), h = proc_json_int(sz, "height", 0),
            w = proc_json_int(sz, "width", 0);
        if (json_object_get(sz, "longest_edge"))
            return vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: size.longest_edge is not supported for CLIP");
        if (se > 0) s->shortest_edge = se;
        else if (h > 0 && w > 0) { s->shortest_edge = 0; s->size_h = h; s->size_w = w; }
        else return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: bad size");
    } else if (json_is_integer(sz) && json_integer_value(sz) > 0) {
        s->shortest_edge = (int)json_integer_value(sz);
    }
    json_t *cs = json_object_get(pre, "crop_size");
    if (json_is_object(cs)) {
        s->crop_h = proc_json_int(cs, "height", 0);
        s->crop_w = proc_json_int(cs, "width", 0);
    } else if (json_is_integer(cs) && json_integer_value(cs) > 0) {
        s->crop_h = s->crop_w = (int)json_integer_value(cs);
    }
    s->do_center_crop = proc_json_bool(pre, "do_center_crop", 1);
    if (s->crop_h < 1 || s->crop_w < 1 || s->do_center_crop < 0 || s->shortest_edge > 65536 ||
        s->size_h > 65536 || s->size_w > 65536 || s->crop_h > 65536 || s->crop_w > 65536)
        return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: bad crop_size");
    return VLM_OK;
}

static int load(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err) {
    struct clip *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->c = (struct proc_common){1, 1, 1, 1, 0, 1.0 / 255.0,
                                {0.48145466f, 0.4578275f, 0.40821073f},
                                {0.26862954f, 0.26130258f, 0.27577711f}, VLM_RESAMPLE_BICUBIC};
    s->shortest_edge = 224;
    s->crop_h = s->crop_w = 224;
    int rc = proc_common_parse(pre, &s->c, err);
    if (rc == VLM_OK) rc = load_sizes(pre, s, err);
    if (rc == VLM_OK) {
        json_t *tok = proc ? json_object_get(proc, "image_token") : NULL;
        json_t *st = proc ? json_object_get(proc, "vision_feature_select_strategy") : NULL;
        snprintf(s->image_token, sizeof s->image_token, "%s",
                 json_is_string(tok) && json_string_length(tok) < sizeof s->image_token ? json_string_value(tok) : "<image>");
        s->patch = proc ? proc_json_int(proc, "patch_size", 0) : 0;
        if (s->patch <= 0) s->patch = patch_from_config(dir);
        s->extra_tokens = proc ? proc_json_int(proc, "num_additional_image_tokens", 0) : 0;
        s->drop_cls = !json_is_string(st) || !strcmp(json_string_value(st), "default");
        if (s->extra_tokens < 0 || s->extra_tokens > 1024)
            rc = vlm_error_set(err, VLM_E_FORMAT, "processor_config.json: bad num_additional_image_tokens");
    }
    if (rc) { vlm_free(s); return rc; }
    *state = s;
    return VLM_OK;
}

static void unload(void *state) { vlm_free(state); }

/* transformers' center_crop on (C, H, W) uint8: the middle crop_h x crop_w, zero-padded
 * (before rescale, so padding normalizes to -mean/std) when the image is smaller. */
static int center_crop(const struct vlm_image *in, int ch, int cw, struct vlm_image *out,
                       struct vlm_error *err) {
    int H = in->height, W = in->width;
    int top = (H - ch) >= 0 ? (H - ch) / 2 : -((ch - H + 1) / 2);   /* Python floor division */
    int left = (W - cw) >= 0 ? (W - cw) / 2 : -((cw - W + 1) / 2);
    int rc = vlm_image_alloc(out, cw, ch, err);
    if (rc) return rc;
    memset(out->rgb, 0, (size_t)cw * ch * 3);
    if (top < 0 || left < 0) {
        /* Padded case: the image is centred on a zero canvas of max sizes first. */
        int nh = ch > H ? ch : H, nw = cw > W ? cw : W;
        int tp = (nh - H + 1) / 2, lp = (nw - W + 1) / 2;   /* ceil((new - orig) / 2) */
        top += tp;
        left += lp;
        for (int y = 0; y < ch; y++) {
            int cy = top + y - tp;   /* row of the original image, or outside */
            if (cy < 0 || cy >= H) continue;
            for (int x = 0; x < cw; x++) {
                int cx = left + x - lp;
                if (cx < 0 || cx >= W) continue;
                memcpy(out->rgb + ((size_t)y * cw + x) * 3, in->rgb + ((size_t)cy * W + cx) * 3, 3);
            }
        }
        return VLM_OK;
    }
    for (int y = 0; y < ch; y++)
        memcpy(out->rgb + (size_t)y * cw * 3, in->rgb + ((size_t)(top + y) * W + left) * 3, (size_t)cw * 3);
    return VLM_OK;
}

static int run(const void *state, const struct vlm_image *in,
               const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
               struct vlm_error *err) {
    const struct clip *s = state;
    (void)ov;
    struct vlm_image rs = {0, 0, NULL}, cr = {0, 0, NULL};
    const struct vlm_image *img = in;
    int rc = VLM_OK;
    int h = in->height, w = in->width;
    if (s->c.do_resize) {
        h = s->size_h;
        w = s->size_w;
        if (s->shortest_edge > 0) {   /* get_resize_output_image_size(default_to_square=False) */
            int shrt = in->width <= in->height ? in->width : in->height;
            int lng = in->width <= in->height ? in->height : in->width;
            double nl = (double)s->shortest_edge * lng / shrt;
            if (nl > (1 << 24)) return vlm_error_set(err, VLM_E_INVALID, "image: bad aspect ratio for this model");
            if (in->width <= in->height) { w = s->shortest_edge; h = (int)nl; }
            else { h = s->shortest_edge; w = (int)nl; }
        }
    }
    if (h < 1 || w < 1) return vlm_error_set(err, VLM_E_INVALID, "image: bad aspect ratio for this model");
    if (s->do_center_crop && h >= s->crop_h && w >= s->crop_w) {
        /* Resize then crop without materializing the whole resized image (a 1 x 4000 image
         * becomes 336 x 1344000 before the crop): only the window is computed. */
        rc = vlm_image_resize_window(in, w, h, s->c.resample, (w - s->crop_w) / 2, (h - s->crop_h) / 2,
                                     s->crop_w, s->crop_h, &cr, err);
        img = &cr;
    } else {
        if ((long)h * w > (1L << 26)) return vlm_error_set(err, VLM_E_INVALID, "image: bad aspect ratio for this model");
        if (h != in->height || w != in->width) {
            rc = vlm_image_resize(in, w, h, s->c.resample, &rs, err);
            img = &rs;
        }
        if (rc == VLM_OK && s->do_center_crop) {
            rc = center_crop(img, s->crop_h, s->crop_w, &cr, err);
            img = &cr;
        }
    }
    if (rc == VLM_OK) {
        size_t plane = (size_t)img->height * img->width;
        out->pixels = vlm_malloc(sizeof(float) * 3 * plane);
        if (!out->pixels) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (rc == VLM_OK) {
        vlm_image_to_chw(img, s->c.do_rescale ? s->c.rescale_factor : 1.0,
                         s->c.do_normalize ? s->c.mean : NULL, s->c.do_normalize ? s->c.std : NULL,
                         out->pixels, img->height, img->width);
        out->n_tiles = 1;
        out->channels = 3;
        out->height = img->height;
        out->width = img->width;
        out->orig_height = in->height;
        out->orig_width = in->width;
        int n = (img->height / s->patch) * (img->width / s->patch) + s->extra_tokens - (s->drop_cls ? 1 : 0);
        out->n_image_tokens = n > 0 ? n : 0;
        struct vlm_buf b = {0};
        size_t tl = strlen(s->image_token);
        for (int i = 0; i < out->n_image_tokens && rc == VLM_OK; i++)
            if (vlm_buf_append(&b, s->image_token, tl)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        if (rc == VLM_OK && !(out->prompt = vlm_buf_take(&b))) out->prompt = vlm_strdup("");
        if (rc) vlm_buf_free(&b);
        if (rc == VLM_OK && !out->prompt) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    vlm_image_free(&rs);
    vlm_image_free(&cr);
    if (rc) vlm_image_input_free(out);
    return rc;
}

const struct vlm_processor_ops vlm_clip_processor_ops = {
    "CLIPImageProcessor", matches, load, run, unload, "<image>",
};
