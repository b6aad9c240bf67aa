/* safetensors.h — the safetensors reader: mmap'd files, zero-copy tensor views, every header
 * check of RELIABILITY item 14; single files and shards (model.safetensors.index.json). */
#ifndef VLM_FORMATS_SAFETENSORS_H
#define VLM_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;
struct vlm_weights;

#define VLM_ST_MAX_HEADER (100u << 20)   /* header JSON bytes (HF's own limit is 100 MB) */

/* Parses the safetensors bytes data[0..size) (a whole file; fname only names it in errors)
 * and adds a view per floating-point tensor to w with file index `file`; the views point into
 * data, which must outlive w. Checks: header length capped and inside the file, valid JSON
 * without duplicate keys, known dtype, at most VLM_MAX_DIMS (5) dims, shape x dtype size == byte range,
 * ranges inside the data area and non-overlapping, no duplicate names in w. */
int vlm_safetensors_parse(const uint8_t *data, size_t size, const char *fname,
                          struct vlm_weights *w, int file, struct vlm_error *err);

/* Maps and parses one file into w. */
int vlm_safetensors_load_file(const char *path, struct vlm_weights *w, struct vlm_error *err);

/* Loads a model folder: model.safetensors.index.json (every shard it names, each tensor in
 * the file the index says) if present, else model.safetensors. */
int vlm_safetensors_load_dir(const char *dir, struct vlm_weights *w, struct vlm_error *err);

#endif
