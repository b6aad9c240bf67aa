/* image.h — decoded images (8-bit RGB, row-major, top-left first) and the decoders, with the
 * same pixels as PIL's Image.open(...).convert("RGB") after transformers' load_image. */
#ifndef VLM_IMAGE_IMAGE_H
#define VLM_IMAGE_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

struct vlm_image {
    int      width, height;
    uint8_t *rgb;           /* (height, width, 3), vlm_malloc'd */
};

struct vlm_image_limits {
    uint64_t max_pixels;     /* width*height cap checked from the header before allocating */
    int      max_frames;     /* GIF/WebP animation frames read at most (first frame is used) */
    uint8_t  background[3];  /* colour alpha is composited onto (transformers: white? see .c) */
};
struct vlm_image_limits vlm_image_default_limits(void);

/* Decodes JPEG, PNG, WebP, GIF or BMP from memory (format sniffed from the bytes).
 * Errors are generic (no library strings) and leave *out empty. */
int  vlm_image_decode(const uint8_t *bytes, size_t len, const struct vlm_image_limits *lim,
                      struct vlm_image *out, struct vlm_error *err);
void vlm_image_free(struct vlm_image *img);

#endif
