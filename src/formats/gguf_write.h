/* gguf_write.h — the GGUF v3 writer: metadata of every value type (arrays included), tensor
 * infos, then tensor data streamed in declaration order, each tensor at an offset aligned to
 * general.alignment (default 32) and zero-padded, so a multi-GB model is written piece by piece
 * and never held in memory. The file appears under its name only when complete (temp + rename). */
#ifndef VLM_FORMATS_GGUF_WRITE_H
#define VLM_FORMATS_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "formats/gguf.h"
#include "tensor/tensor.h"

struct vlm_error;
struct vlm_gguf_writer;

/* The ggml type id of a dtype (F32 0, F16 1, Q4_0 2, ..., BF16 30). */
uint32_t vlm_gguf_ggml_type(enum vlm_dtype t);

/* Starts a writer for path (written as path + ".tmp", renamed by vlm_gguf_writer_finish).
 * Errors: VLM_E_NOMEM, VLM_E_IO naming the file. */
int vlm_gguf_writer_open(const char *path, struct vlm_gguf_writer **out, struct vlm_error *err);
/* Closes and removes an unfinished temp file; frees w (NULL is fine). */
void vlm_gguf_writer_free(struct vlm_gguf_writer *w);

/* ---- metadata: kept in memory (KBs to a few MB) until the header is written. Keys must be
 * unique, non-empty and under 65536 bytes; a second value for a key is VLM_E_INVALID. Allowed
 * before vlm_gguf_writer_begin_data only. ---- */

/* A scalar of type ty (U8..I64, F32, F64, BOOL); val points at a value of that C type
 * (uint8_t for BOOL, nonzero written as 1). A u32 general.alignment sets the alignment (a power
 * of two, at least 1). */
int vlm_gguf_write_kv(struct vlm_gguf_writer *w, const char *key, enum vlm_gguf_type ty,
                      const void *val, struct vlm_error *err);
int vlm_gguf_write_u32(struct vlm_gguf_writer *w, const char *key, uint32_t v, struct vlm_error *err);
int vlm_gguf_write_i32(struct vlm_gguf_writer *w, const char *key, int32_t v, struct vlm_error *err);
int vlm_gguf_write_f32(struct vlm_gguf_writer *w, const char *key, float v, struct vlm_error *err);
int vlm_gguf_write_bool(struct vlm_gguf_writer *w, const char *key, int v, struct vlm_error *err);
/* A string of len bytes (need not be NUL-terminated); vlm_gguf_write_cstr for C strings. */
int vlm_gguf_write_str(struct vlm_gguf_writer *w, const char *key, const char *s, size_t len,
                       struct vlm_error *err);
int vlm_gguf_write_cstr(struct vlm_gguf_writer *w, const char *key, const char *s, struct vlm_error *err);
/* An array of n scalars of type ty, packed as in memory (n * vlm_gguf_value_size(ty) bytes). */
int vlm_gguf_write_arr(struct vlm_gguf_writer *w, const char *key, enum vlm_gguf_type ty,
                       const void *vals, uint64_t n, struct vlm_error *err);
/* An array of n strings; lens may be NULL for NUL-terminated strings. */
int vlm_gguf_write_arr_str(struct vlm_gguf_writer *w, const char *key, const char *const *s,
                           const size_t *lens, uint64_t n, struct vlm_error *err);

/* ---- tensors ---- */

/* Declares a tensor: ne in ggml order (ne[0] innermost, a multiple of t's block size), 1-4
 * dimensions. Its data goes at the next aligned offset. Names are unique and under 64 KB. */
int vlm_gguf_write_tensor_info(struct vlm_gguf_writer *w, const char *name, enum vlm_dtype t,
                               int n_dims, const int64_t *ne, struct vlm_error *err);
/* Writes the header, metadata and tensor infos; after this, only data calls. */
int vlm_gguf_writer_begin_data(struct vlm_gguf_writer *w, struct vlm_error *err);
/* Appends n bytes of tensor data: the declared tensors' bytes in declaration order, in as many
 * calls as the caller likes (padding between tensors is inserted here). More bytes than
 * declared is VLM_E_INVALID. */
int vlm_gguf_writer_data(struct vlm_gguf_writer *w, const void *p, size_t n, struct vlm_error *err);
/* Checks that every declared byte was written, flushes, closes, renames temp -> path.
 * The writer still needs vlm_gguf_writer_free. */
int vlm_gguf_writer_finish(struct vlm_gguf_writer *w, struct vlm_error *err);

#endif
