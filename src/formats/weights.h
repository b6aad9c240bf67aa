/* weights.h — the weight map: tensor name -> struct vlm_tensor view over mmap'd file bytes.
 * Every file format (safetensors now, GGUF next) fills one, so model code never knows which
 * format its weights came from. A weight map is immutable once loaded and shareable. */
#ifndef VLM_FORMATS_WEIGHTS_H
#define VLM_FORMATS_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"
#include "util/file.h"

struct vlm_error;

#define VLM_WEIGHTS_MAX_FILES   1024
#define VLM_WEIGHTS_MAX_TENSORS (1 << 20)

struct vlm_weight {
    char             *name;    /* owned */
    struct vlm_tensor t;       /* data points into a mapping or into `owned` */
    int               file;    /* index into vlm_weights.files */
    void             *owned;   /* an aligned copy when the file's bytes were misaligned, else NULL */
    char             *src_name;/* the name in the file when a reader renamed it (GGUF), else NULL */
};

struct vlm_weights {
    struct vlm_weight *w;      /* (n) in insertion order */
    size_t             n, cap;
    uint32_t          *slots;  /* open-addressing hash: index+1 into w, 0 = empty; (n_slots) */
    size_t             n_slots;
    char             **files;  /* (n_files) paths, for error messages */
    struct vlm_mmap   *maps;   /* (n_files) */
    int                n_files;
    size_t             total_bytes;  /* sum of tensor byte sizes */
};

void vlm_weights_init(struct vlm_weights *w);
void vlm_weights_free(struct vlm_weights *w);

/* Registers a file (takes ownership of the mapping m); returns its index or a VLM_E_* code. */
int vlm_weights_add_file(struct vlm_weights *w, const char *path, struct vlm_mmap *m, struct vlm_error *err);

/* Adds a tensor view; refuses a duplicate name (VLM_E_FORMAT naming file and tensor).
 * Copies data into an aligned buffer when the view is misaligned for its element type. */
int vlm_weights_add(struct vlm_weights *w, const char *name, size_t name_len,
                    const struct vlm_tensor *t, int file, struct vlm_error *err);

/* Same as vlm_weights_add for a tensor whose bytes live in `owned` (vlm_malloc'd; t->data
 * points into it): the map takes ownership of owned, also on failure. For tensors a reader
 * rearranges (GGUF's permuted Q/K rows). */
int vlm_weights_add_owned(struct vlm_weights *w, const char *name, size_t name_len,
                          const struct vlm_tensor *t, int file, void *owned, struct vlm_error *err);

/* Records the tensor's name in its file (owned copy) for messages, when a reader renamed the
 * most recently added tensor; VLM_E_NOMEM on failure. */
int vlm_weights_set_src_name(struct vlm_weights *w, const char *src_name, struct vlm_error *err);

/* NULL when absent. */
const struct vlm_tensor *vlm_weights_get(const struct vlm_weights *w, const char *name);
/* File path of a tensor (for messages); "" when unknown. */
const char *vlm_weights_file_of(const struct vlm_weights *w, const char *name);

/* Looks up name and checks its shape: n_dims dims equal to ne[0..n_dims). A missing tensor
 * gives VLM_E_NOT_FOUND, a wrong shape VLM_E_FORMAT, both naming the tensor and file(s). */
int vlm_weights_require(const struct vlm_weights *w, const char *name, int n_dims,
                        const int64_t *ne, const struct vlm_tensor **out, struct vlm_error *err);

/* vlm_weights_require for a 2-D tensor of shape (a, b). */
int vlm_weights_mat(const struct vlm_weights *w, const char *name, int64_t a, int64_t b,
                    const struct vlm_tensor **out, struct vlm_error *err);
/* A 1-D tensor of n elements (any dtype) copied to f32 at *cur: *out points at the copy and *cur
 * advances by n. The norms and biases a model keeps in one owned f32 block. */
int vlm_weights_vec_f32(const struct vlm_weights *w, const char *name, int64_t n, float **cur,
                        const float **out, struct vlm_error *err);

#endif
