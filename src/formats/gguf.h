/* gguf.h — the GGUF (v2/v3) reader: metadata key/values and tensor infos of one mmap'd file,
 * every count, length, type tag, dimension, offset and size checked against the file's bytes
 * (RELIABILITY item 13); typed metadata getters whose errors name the file and key. */
#ifndef VLM_FORMATS_GGUF_H
#define VLM_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_weights;

/* Caps on what a file may declare (far above any real model, far below what would exhaust
 * memory before the bytes are checked). */
#define VLM_GGUF_MAX_KV        65536u
#define VLM_GGUF_MAX_TENSORS   (1u << 20)
#define VLM_GGUF_MAX_KEY       65535u          /* the spec's limit on key length */
#define VLM_GGUF_MAX_STRING    (64u << 20)     /* one string value (chat templates are KBs) */
#define VLM_GGUF_MAX_ARRAY     (1u << 24)      /* elements of one array (vocabularies: ~262k) */
#define VLM_GGUF_MAX_ALIGNMENT (1u << 16)

/* Metadata value types as the file tags them. */
enum vlm_gguf_type {
    VLM_GGUF_U8 = 0, VLM_GGUF_I8, VLM_GGUF_U16, VLM_GGUF_I16, VLM_GGUF_U32, VLM_GGUF_I32,
    VLM_GGUF_F32, VLM_GGUF_BOOL, VLM_GGUF_STRING, VLM_GGUF_ARRAY, VLM_GGUF_U64, VLM_GGUF_I64,
    VLM_GGUF_F64, VLM_GGUF_TYPE_COUNT
};

/* One metadata entry. Scalars are decoded into u/i/f; strings point into the file (not
 * NUL-terminated: use len); arrays give the element type, count and the file offset of the
 * first element (elements of string arrays are walked with vlm_gguf_arr_str). */
struct vlm_gguf_kv {
    char    *key;            /* owned, NUL-terminated */
    uint32_t type;           /* enum vlm_gguf_type */
    uint32_t arr_type;       /* element type of an array */
    uint64_t n;              /* array: element count; string: byte length */
    size_t   offset;         /* file offset of the value (array: of its first element) */
    union { uint64_t u; int64_t i; double f; } v;   /* scalar (bool in u) */
    const char *str;         /* string value bytes (n of them) */
    const uint8_t *arr;      /* array: its first element in the file */
};

/* One tensor info. ne is in ggml order (ne[0] innermost); type is the ggml type id. */
struct vlm_gguf_tensor {
    char    *name;           /* owned */
    uint32_t n_dims;
    int64_t  ne[4];
    uint32_t ggml_type;
    enum vlm_dtype dtype;    /* VLM_DT_COUNT when the type is known to ggml but not loaded here */
    uint64_t offset;         /* relative to the data section */
    size_t   nbytes;
    const uint8_t *data;     /* into the file's bytes */
    size_t   info_offset;    /* file offset of the tensor info, for messages */
};

struct vlm_gguf {
    const char *fname;       /* borrowed, for messages */
    const uint8_t *base;
    size_t   size;
    uint32_t version;
    struct vlm_gguf_kv *kv;  size_t n_kv;
    struct vlm_gguf_tensor *t; size_t n_tensors;
    uint32_t alignment;
    size_t   data_offset;
    const char *arch;        /* general.architecture (NUL-terminated copy) or "" */
    char    *arch_owned;
};

/* Parses data[0..size) (a whole file, which must outlive g). Checks: magic, version 2 or 3 (a
 * byte-swapped version names big-endian files), counts under the caps and consistent with the
 * bytes left, every string length inside the file, known type tags, no nested arrays, no
 * duplicate keys or tensor names, general.alignment a power of two, 1-4 dimensions each
 * non-negative with a product that fits, row length a multiple of the type's block, offsets
 * aligned, every tensor's bytes inside the data section and no two overlapping. Errors name
 * fname and the byte offset. */
int  vlm_gguf_parse(const uint8_t *data, size_t size, const char *fname, struct vlm_gguf *g,
                    struct vlm_error *err);
void vlm_gguf_free(struct vlm_gguf *g);

/* The entry for key, NULL when absent. */
const struct vlm_gguf_kv *vlm_gguf_find(const struct vlm_gguf *g, const char *key);
/* The tensor named name, NULL when absent. */
const struct vlm_gguf_tensor *vlm_gguf_tensor(const struct vlm_gguf *g, const char *name);

/* Typed getters: absent -> def (rc VLM_OK); present with a type that does not convert, or a
 * value outside [lo, hi] -> VLM_E_FORMAT naming file and key. Integers accept any integer
 * type; numbers accept integers and floats. */
int vlm_gguf_get_int(const struct vlm_gguf *g, const char *key, long long def, long long lo,
                     long long hi, long long *out, struct vlm_error *err);
int vlm_gguf_get_num(const struct vlm_gguf *g, const char *key, double def, double lo, double hi,
                     double *out, struct vlm_error *err);
int vlm_gguf_get_bool(const struct vlm_gguf *g, const char *key, int def, int *out,
                      struct vlm_error *err);
/* A string value in a vlm_malloc'd NUL-terminated copy (*out NULL when absent); strings
 * holding a NUL byte are refused. */
int vlm_gguf_get_str(const struct vlm_gguf *g, const char *key, char **out, struct vlm_error *err);
/* An array entry of element type want (any integer type when want is VLM_GGUF_I64, any
 * number when VLM_GGUF_F64); *out NULL when absent. */
int vlm_gguf_get_arr(const struct vlm_gguf *g, const char *key, uint32_t want,
                     const struct vlm_gguf_kv **out, struct vlm_error *err);
/* Element i of a numeric array (already checked by parse), converted. */
int64_t vlm_gguf_arr_int(const struct vlm_gguf_kv *kv, uint64_t i);
double  vlm_gguf_arr_num(const struct vlm_gguf_kv *kv, uint64_t i);
/* Walks a string array: *pos starts at kv->offset; each call yields the next element and
 * advances *pos (the lengths were checked by parse). */
void vlm_gguf_arr_str(const struct vlm_gguf *g, size_t *pos, const char **s, size_t *len);

/* ---- tensor names: llama.cpp's -> a family's (gguf_weights.c) ---- */

/* How a tensor's rows are rearranged on load. */
enum vlm_gguf_rows {
    VLM_GGUF_ROWS_AS_IS = 0,
    VLM_GGUF_ROWS_ROPE_Q,   /* undo the converter's Q permutation (n_head heads) */
    VLM_GGUF_ROWS_ROPE_K,   /* undo the converter's K permutation (n_head_kv heads) */
};

/* One rename rule. gguf and name are patterns where "%d" (at most once) stands for a block
 * number: "blk.%d.attn_q.weight" -> "model.text_model.layers.%d.self_attn.q_proj.weight".
 * A family lists its rules in a NULL-terminated table (see src/models/gguf_family.h). */
struct vlm_gguf_name {
    const char *gguf, *name;
    enum vlm_gguf_rows rows;
};

/* Adds every tensor of g that a rule in names (NULL-terminated) matches to w under the rule's
 * name, with file index `file`: shape reversed to ours (outermost first), rows un-permuted as
 * the rule says (n_head / n_head_kv heads; the tensor's outer dimension must split into them),
 * types ggml stores byte for byte as a vlm_dtype. A matched tensor of a type not loaded here
 * is VLM_E_UNSUPPORTED naming file, tensor and type. Tensors no rule matches are skipped and
 * counted in *n_skipped (may be NULL). */
int vlm_gguf_add_tensors(struct vlm_weights *w, const struct vlm_gguf *g, int file,
                         const struct vlm_gguf_name *names, int n_head, int n_head_kv,
                         size_t *n_skipped, struct vlm_error *err);

/* The ggml type name ("Q4_K") of a ggml type id, or NULL when unknown. */
const char *vlm_gguf_type_name(uint32_t ggml_type);
/* Byte size of one element of a metadata value type (0 for string/array/unknown). */
size_t vlm_gguf_value_size(uint32_t type);

#endif
