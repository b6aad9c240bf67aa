/* gemma3_processor.c — Gemma3ImageProcessor as transformers' Pillow backend runs it: the image
 * (and, with pan-and-scan, its crops of the 8-bit original) each resized to size.height x
 * size.width (bilinear), rescaled, normalized; Gemma3Processor's prompt: "\n\n<start_of_image>"
 * + image_seq_length x "<image_soft_token>" + "<end_of_image>\n\n", with the "Here is the
 * original image ... crops" sentence when pan-and-scan made crops. */
#include "image/image.h"
#include "models/processor.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <string.h>

#define MAX_CROPS 64

struct gemma3 {
    struct proc_common c;
    int size_h, size_w;
    int seq_len;
    int pas, pas_min_crop, pas_max_crops;   /* pan-and-scan (Gemma3Processor's defaults when null) */
    double pas_min_ratio;
};

static int matches(const char *type, const char *cls) {
    return !strcmp(type, "Gemma3ImageProcessor") || (!*type && !strcmp(cls, "Gemma3Processor"));
}

static int load(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err) {
    (void)dir;
    struct gemma3 *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->c = (struct proc_common){1, 1, 1, 1, 0, 1.0 / 255.0, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f},
                                VLM_RESAMPLE_BILINEAR};
    s->size_h = s->size_w = 224;
    s->seq_len = 256;
    s->pas_min_crop = 256;
    s->pas_max_crops = 4;
    s->pas_min_ratio = 1.2;
    int rc = proc_common_parse(pre, &s->c, err);
    json_t *sz = json_object_get(pre, "size");
    if (rc == VLM_OK && json_is_object(sz)) {
        s->size_h = proc_json_int(sz, "height", 0);
        s->size_w = proc_json_int(sz, "width", 0);
    }
    if (rc == VLM_OK) {
        s->pas = proc_json_bool(pre, "do_pan_and_scan", 0);
        s->pas_min_crop = proc_json_int(pre, "pan_and_scan_min_crop_size", s->pas_min_crop);
        s->pas_max_crops = proc_json_int(pre, "pan_and_scan_max_num_crops", s->pas_max_crops);
        json_t *r = json_object_get(pre, "pan_and_scan_min_ratio_to_activate");
        if (json_is_number(r)) s->pas_min_ratio = json_number_value(r);
        int n = proc ? proc_json_int(proc, "image_seq_length", 0) : 0;
        if (n <= 0) n = proc_json_int(pre, "image_seq_length", 256);
        s->seq_len = n;
        if (s->size_h < 1 || s->size_w < 1 || s->size_h > 65536 || s->size_w > 65536 || s->pas < 0 ||
            s->pas_min_crop < 1 || s->pas_max_crops < 2 || s->pas_max_crops > MAX_CROPS ||
            s->seq_len < 1 || s->seq_len > 100000)
            rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: bad Gemma 3 settings");
    }
    if (rc) { vlm_free(s); return rc; }
    *state = s;
    return VLM_OK;
}

static void unload(void *state) { vlm_free(state); }

/* pan_and_scan: the crop grid (nw x nh of cw x ch), or 0 crops when it does not apply. */
static int pan_and_scan(const struct gemma3 *s, int h, int w, int *nw, int *nh, int *cw, int *ch) {
    int a, b;
    if (w >= h) {
        if ((double)w / h < s->pas_min_ratio) return 0;
        a = (int)floor((double)w / h + 0.5);
        b = (int)floor((double)w / s->pas_min_crop);
        a = a < b ? a : b;
        a = a < 2 ? 2 : a;
        *nw = a < s->pas_max_crops ? a : s->pas_max_crops;
        *nh = 1;
    } else {
        if ((double)h / w < s->pas_min_ratio) return 0;
        a = (int)floor((double)h / w + 0.5);
        b = (int)floor((double)h / s->pas_min_crop);
        a = a < b ? a : b;
        a = a < 2 ? 2 : a;
        *nh = a < s->pas_max_crops ? a : s->pas_max_crops;
        *nw = 1;
    }
    *cw = (int)ceil((double)w / *nw);
    *ch = (int)ceil((double)h / *nh);
    if ((*cw < *ch ? *cw : *ch) < s->pas_min_crop) return 0;
    return *nw * *nh;
}

static int append_sequence(const struct gemma3 *s, struct vlm_buf *b) {
    int rc = vlm_buf_append(b, "\n\n<start_of_image>", 18);
    for (int i = 0; i < s->seq_len && !rc; i++) rc = vlm_buf_append(b, "<image_soft_token>", 18);
    if (!rc) rc = vlm_buf_append(b, "<end_of_image>\n\n", 16);
    return rc;
}

static int run(const void *state, const struct vlm_image *in,
               const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
               struct vlm_error *err) {
    const struct gemma3 *s = state;
    (void)ov;
    int nw = 1, nh = 1, cw = in->width, ch = in->height, n_crops = 0;
    if (s->pas) n_crops = pan_and_scan(s, in->height, in->width, &nw, &nh, &cw, &ch);
    int n = 1 + n_crops, H = s->c.do_resize ? s->size_h : in->height, W = s->c.do_resize ? s->size_w : in->width;
    size_t plane = (size_t)H * W;
    out->pixels = vlm_malloc(sizeof(float) * 3 * plane * (size_t)n);
    if (!out->pixels) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int rc = VLM_OK;
    for (int i = 0; i < n && rc == VLM_OK; i++) {
        struct vlm_image crop = {0, 0, NULL}, rs = {0, 0, NULL};
        const struct vlm_image *src = in;
        if (i > 0) {   /* crops in row-major order, clipped at the image edge as numpy slicing */
            int r = (i - 1) / nw, c = (i - 1) % nw, x = c * cw, y = r * ch;
            int w = in->width - x < cw ? in->width - x : cw, h = in->height - y < ch ? in->height - y : ch;
            rc = vlm_image_crop(in, x, y, w, h, &crop, err);
            src = &crop;
        }
        if (rc == VLM_OK && s->c.do_resize && (src->width != W || src->height != H)) {
            rc = vlm_image_resize(src, W, H, s->c.resample, &rs, err);
            src = &rs;
        }
        if (rc == VLM_OK && (src->width != W || src->height != H))
            rc = vlm_error_set(err, VLM_E_INVALID, "processor: crops differ in size without resizing");
        if (rc == VLM_OK)
            vlm_image_to_chw(src, s->c.do_rescale ? s->c.rescale_factor : 1.0,
                             s->c.do_normalize ? s->c.mean : NULL, s->c.do_normalize ? s->c.std : NULL,
                             out->pixels + (size_t)i * 3 * plane, H, W);
        vlm_image_free(&crop);
        vlm_image_free(&rs);
    }
    struct vlm_buf b = {0};
    if (rc == VLM_OK) {
        int e = 0;
        if (n_crops == 0) {
            e = append_sequence(s, &b);
        } else {
            e = vlm_buf_append(&b, "Here is the original image ", 27);
            if (!e) e = append_sequence(s, &b);
            if (!e) e = vlm_buf_append(&b, " and here are some crops to help you see better ", 48);
            for (int i = 0; i < n_crops && !e; i++) {
                if (i) e = vlm_buf_putc(&b, ' ');
                if (!e) e = append_sequence(s, &b);
            }
        }
        if (e) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        else out->prompt = vlm_buf_take(&b);
    }
    vlm_buf_free(&b);
    if (rc) { vlm_image_input_free(out); return rc; }
    out->n_tiles = n;
    out->channels = 3;
    out->height = H;
    out->width = W;
    out->n_rows = n_crops ? nh : 0;
    out->n_cols = n_crops ? nw : 0;
    out->n_image_tokens = s->seq_len * n;
    return VLM_OK;
}

const struct vlm_processor_ops vlm_gemma3_processor_ops = {
    "Gemma3ImageProcessor", matches, load, run, unload, "<start_of_image>",
};
