/* image.h — decoded images (8-bit RGB, row-major, top-left first) and the decoders, with the
 * same pixels as PIL's Image.open(...) + ImageOps.exif_transpose + convert to RGB, plus the
 * pixel operations image processors are built from (PIL-exact resize, crop, normalize). */
#ifndef VLM_IMAGE_IMAGE_H
#define VLM_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

struct vlm_image {
    int      width, height;
    uint8_t *rgb;           /* (height, width, 3), vlm_malloc'd */
};

/* What happens to an alpha channel (RGBA, LA, palette or colour-key transparency). */
enum vlm_alpha_mode {
    /* Blend onto `background` with PIL's exact integer rounding: what transformers'
     * convert_to_rgb does to a PIL image with alpha (Idefics3/SmolVLM processors) and what
     * vLLM does (white). The default. */
    VLM_ALPHA_COMPOSITE = 0,
    /* Drop alpha: PIL's plain image.convert("RGB"), as transformers' load_image(path) does. */
    VLM_ALPHA_DROP = 1,
};

struct vlm_image_limits {
    uint64_t max_pixels;     /* width*height cap checked from the header before allocating */
    int      max_frames;     /* animated WebP: files declaring more frames are refused */
    uint8_t  background[3];  /* colour alpha is composited onto (white, as transformers) */
    int      alpha_mode;     /* enum vlm_alpha_mode */
    int      max_jpeg_scans; /* progressive JPEG scans read at most (libjpeg-turbo's advice: 100s) */
    int      apply_exif;     /* 1: apply the EXIF Orientation tag (ImageOps.exif_transpose) */
};
/* Defaults: max_pixels 89478485 (PIL's MAX_IMAGE_PIXELS), max_frames 1000, white, composite,
 * 1000 scans, EXIF applied. */
struct vlm_image_limits vlm_image_default_limits(void);

enum vlm_image_format {
    VLM_IMAGE_UNKNOWN = 0,
    VLM_IMAGE_JPEG,
    VLM_IMAGE_PNG,
    VLM_IMAGE_WEBP,
    VLM_IMAGE_GIF,
    VLM_IMAGE_BMP,
};
/* The format the first bytes announce (magic numbers, never the file name). */
enum vlm_image_format vlm_image_sniff(const uint8_t *bytes, size_t len);
const char *vlm_image_format_name(enum vlm_image_format f);   /* "jpeg", ...; static */

/* Decodes JPEG, PNG, WebP, GIF or BMP from memory (format sniffed from the bytes).
 * Errors are generic (no library strings) and leave *out empty: VLM_E_FORMAT for bytes that
 * are not a supported image or are corrupt/truncated, VLM_E_TOO_LARGE past a limit,
 * VLM_E_NOMEM. lim may be NULL (defaults). Thread-safe (no shared state). */
int  vlm_image_decode(const uint8_t *bytes, size_t len, const struct vlm_image_limits *lim,
                      struct vlm_image *out, struct vlm_error *err);
/* The same with the format chosen by the caller (fuzz targets, tests). */
int  vlm_image_decode_as(enum vlm_image_format fmt, const uint8_t *bytes, size_t len,
                         const struct vlm_image_limits *lim, struct vlm_image *out,
                         struct vlm_error *err);
void vlm_image_free(struct vlm_image *img);

/* Hints the kernel to use huge pages for a large buffer not yet touched (pixel tensors of
 * tens of MB: fewer page faults); does nothing for small ones or where unsupported. */
void vlm_image_advise_large(void *p, size_t n);

/* Allocates an uninitialised width x height image (both >= 1). */
int  vlm_image_alloc(struct vlm_image *img, int width, int height, struct vlm_error *err);

/* Resampling filters, numbered as PIL's Image.Resampling (and HF's "resample" values). */
enum vlm_resample {
    VLM_RESAMPLE_NEAREST  = 0,
    VLM_RESAMPLE_LANCZOS  = 1,
    VLM_RESAMPLE_BILINEAR = 2,
    VLM_RESAMPLE_BICUBIC  = 3,
    VLM_RESAMPLE_BOX      = 4,
    VLM_RESAMPLE_HAMMING  = 5,
};
/* out = PIL's img.resize((width, height), resample) on an 8-bit RGB image: the same
 * coefficients, antialiasing support scaling, fixed-point rounding and two passes, so the
 * bytes are identical. out is allocated here. */
int  vlm_image_resize(const struct vlm_image *in, int width, int height, int resample,
                      struct vlm_image *out, struct vlm_error *err);

/* out = the window (x0, y0, w, h) of vlm_image_resize(in, W, H, resample) without computing
 * the rest: the same bytes, for resize-then-crop pipelines whose full resize would be huge. */
int  vlm_image_resize_window(const struct vlm_image *in, int W, int H, int resample, int x0,
                             int y0, int w, int h, struct vlm_image *out, struct vlm_error *err);

/* out = the rectangle (x, y, w, h) of in, which must lie inside in. */
int  vlm_image_crop(const struct vlm_image *in, int x, int y, int w, int h,
                    struct vlm_image *out, struct vlm_error *err);

/* Writes img channels-first into dst (3, dst_h, dst_w) at the top-left, as HF does:
 * v = (float)((double)u8 * rescale), then (v - mean[c]) / std[c] in float (skipped when
 * mean/std are NULL). Pixels of dst outside the image are left untouched. */
void vlm_image_to_chw(const struct vlm_image *img, double rescale, const float *mean,
                      const float *std, float *dst, int dst_h, int dst_w);
/* The same for the rectangle (x, y, w, h) of img, which must lie inside it (tiles of a
 * larger image without copying them out first). */
void vlm_image_rect_to_chw(const struct vlm_image *img, int x, int y, int w, int h,
                           double rescale, const float *mean, const float *std, float *dst,
                           int dst_h, int dst_w);

#endif
