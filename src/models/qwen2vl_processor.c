/* qwen2vl_processor.c — Qwen2VLImageProcessor (Qwen2-VL, Qwen2.5-VL) as transformers' Pillow
 * backend runs it: smart_resize to multiples of patch_size * merge_size within
 * [min_pixels, max_pixels], bicubic resize of the 8-bit image, rescale + normalize, then
 * patches flattened in merge-window order with the frame repeated temporal_patch_size times.
 * Output: n_tiles = grid_h * grid_w patches of (3 * T, P, P), grid_thw = (1, grid_h, grid_w),
 * and "<|image_pad|>" x (patches / merge_size^2) for the prompt. */
#include "image/image.h"
#include "models/processor.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

struct qwen2vl {
    struct proc_common c;
    long min_pixels, max_pixels;
    int patch, temporal, merge;
};

static int matches(const char *type, const char *cls) {
    return !strcmp(type, "Qwen2VLImageProcessor") ||
           (!*type && (!strcmp(cls, "Qwen2VLProcessor") || !strcmp(cls, "Qwen2_5_VLProcessor")));
}

static long json_long(json_t *o, const char *k, long dflt) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return dflt;
    return json_is_integer(v) && json_integer_value(v) > 0 ? (long)json_integer_value(v) : -1;
}

static int load(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err) {
    (void)dir; (void)proc;
    struct qwen2vl *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    /* Class defaults: OPENAI_CLIP mean/std, bicubic, 56*56 .. 28*28*1280 pixels. */
    s->c = (struct proc_common){1, 1, 1, 1, 0, 1.0 / 255.0,
                                {0.48145466f, 0.4578275f, 0.40821073f},
                                {0.26862954f, 0.26130258f, 0.27577711f}, VLM_RESAMPLE_BICUBIC};
    s->min_pixels = 56 * 56;
    s->max_pixels = 28 * 28 * 1280;
    s->patch = 14;
    s->temporal = 2;
    s->merge = 2;
    int rc = proc_common_parse(pre, &s->c, err);
    json_t *size = json_object_get(pre, "size");
    if (rc == VLM_OK && json_is_object(size)) {   /* size = {shortest_edge: min, longest_edge: max} */
        s->min_pixels = json_long(size, "shortest_edge", s->min_pixels);
        s->max_pixels = json_long(size, "longest_edge", s->max_pixels);
    }
    if (rc == VLM_OK) {   /* min_pixels / max_pixels take precedence, as in __init__ */
        s->min_pixels = json_long(pre, "min_pixels", s->min_pixels);
        s->max_pixels = json_long(pre, "max_pixels", s->max_pixels);
        s->patch = (int)json_long(pre, "patch_size", s->patch);
        s->temporal = (int)json_long(pre, "temporal_patch_size", s->temporal);
        s->merge = (int)json_long(pre, "merge_size", s->merge);
        if (s->min_pixels < 1 || s->max_pixels < s->min_pixels || s->max_pixels > (1L << 28) ||
            s->patch < 1 || s->patch > 1024 || s->temporal < 1 || s->temporal > 16 || s->merge < 1 ||
            s->merge > 64)
            rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: bad Qwen2-VL sizes");
    }
    if (rc) { vlm_free(s); return rc; }
    *state = s;
    return VLM_OK;
}

static void unload(void *state) { vlm_free(state); }

/* smart_resize of transformers (Python round() is round-half-even, as nearbyint). */
static int smart_resize(int height, int width, int factor, long min_pixels, long max_pixels,
                        int *oh, int *ow, struct vlm_error *err) {
    int mx = height > width ? height : width, mn = height < width ? height : width;
    if ((double)mx / mn > 200)
        return vlm_error_set(err, VLM_E_INVALID, "image: aspect ratio over 200 is not supported by this model");
    double h_bar = nearbyint((double)height / factor) * factor;
    double w_bar = nearbyint((double)width / factor) * factor;
    if (h_bar * w_bar > (double)max_pixels) {
        double beta = sqrt((double)height * width / (double)max_pixels);
        h_bar = fmax(factor, floor(height / beta / factor) * factor);
        w_bar = fmax(factor, floor(width / beta / factor) * factor);
    } else if (h_bar * w_bar < (double)min_pixels) {
        double beta = sqrt((double)min_pixels / ((double)height * width));
        h_bar = ceil(height * beta / factor) * factor;
        w_bar = ceil(width * beta / factor) * factor;
    }
    if (h_bar < factor || w_bar < factor || h_bar > 65536 || w_bar > 65536)
        return vlm_error_set(err, VLM_E_INVALID, "image: size out of range for this model");
    *oh = (int)h_bar;
    *ow = (int)w_bar;
    return VLM_OK;
}

/* The patchify() layout: patch (bh, bw, r, c) in merge-window order, each (C, T, P, P) with the
 * single frame repeated T times. src is the normalized image, channels first (3, H, W). */
static void patchify(const struct qwen2vl *s, const float *src, int H, int W, float *dst) {
    int P = s->patch, M = s->merge, T = s->temporal, gh = H / P, gw = W / P;
    size_t plane = (size_t)H * W, psz = (size_t)P * P;
    for (int bh = 0; bh < gh / M; bh++)
        for (int bw = 0; bw < gw / M; bw++)
            for (int r = 0; r < M; r++)
                for (int c = 0; c < M; c++) {
                    int py = (bh * M + r) * P, px = (bw * M + c) * P;
                    for (int ch = 0; ch < 3; ch++)
                        for (int t = 0; t < T; t++, dst += psz)
                            for (int y = 0; y < P; y++)
                                memcpy(dst + (size_t)y * P, src + ch * plane + (size_t)(py + y) * W + px,
                                       sizeof(float) * (size_t)P);
                }
}

static int run(const void *state, const struct vlm_image *in,
               const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
               struct vlm_error *err) {
    const struct qwen2vl *s = state;
    long min_px = s->min_pixels, max_px = s->max_pixels;
    if (ov && (ov->min_pixels > 0 || ov->max_pixels > 0)) {   /* the server clamps these first */
        if (ov->min_pixels > 0) min_px = ov->min_pixels;
        if (ov->max_pixels > 0) max_px = ov->max_pixels;
        if (min_px > max_px || max_px > (1L << 28))
            return vlm_error_set(err, VLM_E_INVALID, "processor: min_pixels/max_pixels out of range");
    }
    int factor = s->patch * s->merge, h = in->height, w = in->width, rc = VLM_OK;
    struct vlm_image rs = {0, 0, NULL};
    const struct vlm_image *img = in;
    if (s->c.do_resize) {
        rc = smart_resize(in->height, in->width, factor, min_px, max_px, &h, &w, err);
        if (rc == VLM_OK && (h != in->height || w != in->width)) {
            rc = vlm_image_resize(in, w, h, s->c.resample, &rs, err);
            img = &rs;
        }
    }
    if (rc == VLM_OK && (h % factor || w % factor))
        rc = vlm_error_set(err, VLM_E_INVALID, "image: size not a multiple of %d", factor);
    float *chw = NULL;
    size_t n_patch = 0, total = 0;
    if (rc == VLM_OK) {
        n_patch = (size_t)(h / s->patch) * (size_t)(w / s->patch);
        if (!vlm_mul3_ok(n_patch, (size_t)3 * s->temporal, (size_t)s->patch * s->patch, &total))
            rc = vlm_error_set(err, VLM_E_TOO_LARGE, "image: too large");
    }
    if (rc == VLM_OK) {
        chw = vlm_malloc(sizeof(float) * 3 * (size_t)h * w);
        out->pixels = vlm_malloc(sizeof(float) * total);
        if (!chw || !out->pixels) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (rc == VLM_OK) {
        vlm_image_to_chw(img, s->c.do_rescale ? s->c.rescale_factor : 1.0,
                         s->c.do_normalize ? s->c.mean : NULL, s->c.do_normalize ? s->c.std : NULL,
                         chw, h, w);
        patchify(s, chw, h, w, out->pixels);
        out->n_tiles = (int)n_patch;
        out->channels = 3 * s->temporal;
        out->height = out->width = s->patch;
        out->grid_thw[0] = 1;
        out->grid_thw[1] = h / s->patch;
        out->grid_thw[2] = w / s->patch;
        out->n_image_tokens = (int)(n_patch / ((size_t)s->merge * s->merge));
        struct vlm_buf b = {0};
        for (int i = 0; i < out->n_image_tokens && rc == VLM_OK; i++)
            if (vlm_buf_append(&b, "<|image_pad|>", 13)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        if (rc == VLM_OK) out->prompt = vlm_buf_take(&b);
        else vlm_buf_free(&b);
    }
    vlm_free(chw);
    vlm_image_free(&rs);
    if (rc) vlm_image_input_free(out);
    return rc;
}

const struct vlm_processor_ops vlm_qwen2vl_processor_ops = {
    "Qwen2VLImageProcessor", matches, load, run, unload, "<|image_pad|>",
};
