/* image_cache.h — decoded images and their vision-encoder embeddings, shared by requests and
 * keyed by SHA-256 of the image bytes (plus the processor settings): an image in flight or
 * seen recently is decoded and encoded once; a second request for it waits for the first.
 * Entries are reference-counted; unreferenced ones are evicted oldest-first past a byte cap. */
#ifndef VLM_SERVER_IMAGE_CACHE_H
#define VLM_SERVER_IMAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "image/image.h"

struct vlm_error;
struct vlm_image_cache;
struct vlm_cache_entry;

struct vlm_image_cache *vlm_image_cache_new(size_t max_bytes);
void vlm_image_cache_free(struct vlm_image_cache *c);

/* Returns a referenced entry for (bytes, variant): variant names the processor settings the
 * embeddings depend on. Never NULL unless out of memory. *hit says whether the entry existed. */
struct vlm_cache_entry *vlm_image_cache_acquire(struct vlm_image_cache *c, const uint8_t *bytes,
                                                size_t len, const char *variant, int *hit);
void vlm_image_cache_release(struct vlm_image_cache *c, struct vlm_cache_entry *e);

/* The decoded image, decoding bytes with lim on first use (others wait meanwhile).
 * The image is owned by the entry; valid while the caller holds its reference. */
int vlm_image_cache_image(struct vlm_image_cache *c, struct vlm_cache_entry *e, const uint8_t *bytes,
                          size_t len, const struct vlm_image_limits *lim, const struct vlm_image **img,
                          struct vlm_error *err);

/* Embeddings of n_rows x width floats: computed once by encode(user, out) (others wait);
 * *embd is owned by the entry. *computed is 1 when this call ran encode. */
int vlm_image_cache_embd(struct vlm_image_cache *c, struct vlm_cache_entry *e, size_t n_rows,
                         size_t width, int (*encode)(void *user, float *out, struct vlm_error *err),
                         void *user, const float **embd, int *computed, struct vlm_error *err);

/* Entries and bytes held (for tests and metrics). */
void vlm_image_cache_stats(struct vlm_image_cache *c, size_t *entries, size_t *bytes);

#endif
