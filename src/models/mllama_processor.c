/* mllama_processor.c — Llama 3.2 Vision's processor: the cross-attention spans of the
 * <|image|> tokens (transformers' get_cross_attention_token_mask and its dense form), and
 * MllamaImageProcessor as transformers' Pillow backend runs it: the tile canvas, an
 * aspect-kept resize, zero padding to the canvas, rescale/normalize, 560 x 560 tiles. */
#include "models/mllama_processor.h"
#include "image/image.h"
#include "models/processor.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

int vlm_mllama_cross_attention_spans(const int32_t *ids, int n, int32_t image_token_id,
                                     struct vlm_mllama_span *spans, int max_spans) {
    int count = 0;
    if (!ids || n <= 0) return 0;
    for (int i = 0; i < n;) {
        if (ids[i] != image_token_id) { i++; continue; }
        /* a group of consecutive image tokens [i, g) all attend from their own token up to
         * the next image token after the group, or to the prompt's end */
        int g = i;
        while (g < n && ids[g] == image_token_id) g++;
        int end = g;
        while (end < n && ids[end] != image_token_id) end++;
        for (int k = i; k < g; k++, count++)
            if (spans && count < max_spans) spans[count] = (struct vlm_mllama_span){k, end};
        i = g;
    }
    return count;
}

/* ---- MllamaImageProcessor (transformers' Pillow backend) -------------------------------- */

#define MLLAMA_MAX_TILES 64                  /* max_image_tiles ceiling (Llama 3.2 Vision: 4) */
#define MLLAMA_MAX_TILE_SIZE 4096
#define MLLAMA_MAX_CANVAS_PIXELS (1L << 25)  /* max_image_tiles x tile area: 384 MiB of f32 */

struct mllama {
    struct proc_common c;
    int tile;            /* size.height == size.width */
    int max_tiles;
};

static int matches(const char *type, const char *cls) {
    return !strcmp(type, "MllamaImageProcessor") || (!*type && !strcmp(cls, "MllamaProcessor"));
}

static int load(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err) {
    (void)dir;
    (void)proc;
    struct mllama *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    /* MllamaImageProcessorPil's class defaults (IMAGENET_STANDARD mean/std, 224 x 224); the
     * published Llama 3.2 Vision config sets 560 x 560 and CLIP's mean/std */
    s->c = (struct proc_common){1, 1, 1, 1, 1, 1.0 / 255.0, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f},
                                VLM_RESAMPLE_BILINEAR};
    s->tile = 224;
    s->max_tiles = 4;
    int rc = proc_common_parse(pre, &s->c, err);
    json_t *sz = json_object_get(pre, "size");
    if (rc == VLM_OK && sz && !json_is_null(sz)) {
        int h = json_is_object(sz) ? proc_json_int(sz, "height", 0) : 0;
        int w = json_is_object(sz) ? proc_json_int(sz, "width", 0) : 0;
        if (h < 1 || w < 1)
            rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: Mllama size must be "
                               "{\"height\": N, \"width\": N} with N >= 1");
        else if (h != w)
            rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: Mllama size must be square "
                               "(height %d, width %d)", h, w);
        else if (h > MLLAMA_MAX_TILE_SIZE)
            rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: Mllama tile size %d "
                               "exceeds %d", h, MLLAMA_MAX_TILE_SIZE);
        else s->tile = h;
    }
    if (rc == VLM_OK) {
        json_t *mt = json_object_get(pre, "max_image_tiles");
        s->max_tiles = proc_json_int(pre, "max_image_tiles", 4);
        if (s->max_tiles < 1)
            rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: max_image_tiles must be a "
                               "positive integer%s", json_is_integer(mt) && json_integer_value(mt) == 0 ? " (got 0)" : "");
        else if (s->max_tiles > MLLAMA_MAX_TILES)
            rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: max_image_tiles %d "
                               "exceeds %d", s->max_tiles, MLLAMA_MAX_TILES);
        else if ((long)s->max_tiles * s->tile * s->tile > MLLAMA_MAX_CANVAS_PIXELS)
            rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: max_image_tiles %d x "
                               "%d x %d pixels is too large", s->max_tiles, s->tile, s->tile);
    }
    if (rc == VLM_OK && (!s->c.do_pad || !s->c.do_resize))   /* transformers refuses these too */
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "preprocessor_config.json: MllamaImageProcessor "
                           "needs do_resize and do_pad");
    if (rc == VLM_OK && !(isfinite(s->c.rescale_factor) && isfinite(s->c.mean[0]) && isfinite(s->c.mean[1]) &&
                          isfinite(s->c.mean[2]) && isfinite(s->c.std[0]) && isfinite(s->c.std[1]) &&
                          isfinite(s->c.std[2])))
        rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: rescale_factor, image_mean "
                           "and image_std must be finite");
    if (rc) { vlm_free(s); return rc; }
    *state = s;
    return VLM_OK;
}

static void unload(void *state) { vlm_free(state); }

int vlm_mllama_tile_canvas(int image_h, int image_w, int max_tiles, int tile, int *rows, int *cols) {
    if (image_h < 1 || image_w < 1 || max_tiles < 1 || max_tiles > MLLAMA_MAX_TILES || tile < 1) return 0;
    double up = 0, down = 0;
    int have_up = 0, have_down = 0;
    for (int a = 1; a <= max_tiles; a++)   /* the selected scale */
        for (int b = 1; a * b <= max_tiles; b++) {
            double sh = (double)a * tile / image_h, sw = (double)b * tile / image_w;
            double sc = sw > sh ? sh : sw;
            if (sc >= 1) { if (!have_up || sc < up) up = sc; have_up = 1; }
            else { if (!have_down || sc > down) down = sc; have_down = 1; }
        }
    double best = have_up ? up : down;
    int id = 0, n = 0, area = 0;
    for (int a = 1; a <= max_tiles; a++)   /* the first of the smallest area at that scale */
        for (int b = 1; b <= max_tiles; b++) {
            if (a * b > max_tiles) continue;
            n++;
            double sh = (double)a * tile / image_h, sw = (double)b * tile / image_w;
            double sc = sw > sh ? sh : sw;
            if (sc == best && (id == 0 || a * b < area)) {
                id = n;
                area = a * b;
                *rows = a;
                *cols = b;
            }
        }
    return id;
}

void vlm_mllama_fit_to_canvas(int ih, int iw, int ch, int cw, int tile, int *nh, int *nw) {
    int tw = iw < tile ? tile : iw > cw ? cw : iw;   /* np.clip(size, tile, canvas) */
    int th = ih < tile ? tile : ih > ch ? ch : ih;
    double sh = (double)th / ih, sw = (double)tw / iw;
    if (sw < sh) {
        long h = (long)floor(ih * sw);
        if (h < 1) h = 1;
        *nw = tw;
        *nh = (int)(h < th ? h : th);
    } else {
        long w = (long)floor(iw * sh);
        if (w < 1) w = 1;
        *nh = th;
        *nw = (int)(w < tw ? w : tw);
    }
}

static int run(const void *state, const struct vlm_image *in,
               const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
               struct vlm_error *err) {
    const struct mllama *s = state;
    (void)ov;
    int T = s->tile, rows = 0, cols = 0;
    int id = vlm_mllama_tile_canvas(in->height, in->width, s->max_tiles, T, &rows, &cols);
    if (id < 1) return vlm_error_set(err, VLM_E_INVALID, "processor: no tile canvas for a %d x %d image",
                                     in->width, in->height);
    int nh, nw;
    vlm_mllama_fit_to_canvas(in->height, in->width, rows * T, cols * T, T, &nh, &nw);
    struct vlm_image rs = {0, 0, NULL};
    const struct vlm_image *src = in;
    int rc = VLM_OK;
    if (nh != in->height || nw != in->width) {
        rc = vlm_image_resize(in, nw, nh, s->c.resample, &rs, err);
        src = &rs;
    }
    int n = rows * cols;
    size_t plane = (size_t)T * T;
    if (rc == VLM_OK) {
        out->pixels = vlm_malloc(sizeof(float) * 3 * plane * (size_t)n);
        if (!out->pixels) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (rc == VLM_OK) {
        double rescale = s->c.do_rescale ? s->c.rescale_factor : 1.0;
        const float *mean = s->c.do_normalize ? s->c.mean : NULL, *std = s->c.do_normalize ? s->c.std : NULL;
        float pad[3];   /* a padded (zero) pixel after rescale and normalize, as the lut does */
        for (int ch = 0; ch < 3; ch++) {
            float f = (float)(0.0 * rescale);
            pad[ch] = mean ? (f - mean[ch]) / std[ch] : f;
        }
        for (int t = 0; t < n; t++) {   /* tiles in row-major order over the padded canvas */
            float *dst = out->pixels + (size_t)t * 3 * plane;
            int x0 = (t % cols) * T, y0 = (t / cols) * T;
            int w = src->width - x0, h = src->height - y0;
            w = w < 0 ? 0 : w > T ? T : w;
            h = h < 0 ? 0 : h > T ? T : h;
            if (w < T || h < T)
                for (int ch = 0; ch < 3; ch++)
                    for (size_t i = 0; i < plane; i++) dst[(size_t)ch * plane + i] = pad[ch];
            if (w > 0 && h > 0) vlm_image_rect_to_chw(src, x0, y0, w, h, rescale, mean, std, dst, T, T);
        }
        out->prompt = vlm_strdup("<|image|>");
        if (!out->prompt) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    vlm_image_free(&rs);
    if (rc) { vlm_image_input_free(out); return rc; }
    out->n_tiles = n;
    out->channels = 3;
    out->height = T;
    out->width = T;
    out->n_rows = rows;
    out->n_cols = cols;
    out->aspect_ratio_id = id;
    out->n_image_tokens = 1;
    return VLM_OK;
}

const struct vlm_processor_ops vlm_mllama_processor_ops = {
    "MllamaImageProcessor", matches, load, run, unload, "<|image|>",
};
