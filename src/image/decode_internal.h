/* decode_internal.h — what the per-format decoders (decode_*.c) hand to decode.c: 8-bit
 * pixels with or without alpha and the EXIF orientation, before conversion to RGB. */
#ifndef VLM_IMAGE_DECODE_INTERNAL_H
#define VLM_IMAGE_DECODE_INTERNAL_H

#include "image/image.h"

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

struct img_raw {
    int      w, h;
    int      has_alpha;    /* px is RGBA (4 bytes per pixel) when set, RGB (3) otherwise */
    uint8_t *px;           /* (h, w, 3 or 4), vlm_malloc'd */
    int      orientation;  /* EXIF Orientation 1..8; 0 when absent */
};

/* VLM_E_FORMAT for a zero side, VLM_E_TOO_LARGE past lim->max_pixels or INT limits. */
int  img_check_size(uint64_t w, uint64_t h, const struct vlm_image_limits *lim,
                    struct vlm_error *err);
/* Checks the size, then allocates r->px for w x h with 3 or 4 channels. */
int  img_raw_alloc(struct img_raw *r, int w, int h, int has_alpha,
                   const struct vlm_image_limits *lim, struct vlm_error *err);
void img_raw_free(struct img_raw *r);

/* The generic error each decoder reports for bad bytes (no library text reaches users). */
int  img_corrupt(struct vlm_error *err, const char *format);

/* EXIF Orientation (tag 0x0112 of IFD0) from a TIFF-structured EXIF block, with or without
 * the "Exif\0\0" prefix; 0 when absent or malformed. Never reads outside [p, p+n). */
int  img_exif_orientation(const uint8_t *p, size_t n);

int img_decode_jpeg(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                    struct img_raw *out, struct vlm_error *err);
int img_decode_png(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                   struct img_raw *out, struct vlm_error *err);
int img_decode_webp(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                    struct img_raw *out, struct vlm_error *err);
int img_decode_gif(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                   struct img_raw *out, struct vlm_error *err);
int img_decode_bmp(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                   struct img_raw *out, struct vlm_error *err);

#endif
