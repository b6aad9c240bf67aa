/* gguf_export.h — a model folder (config.json + safetensors + tokenizer files) written as the
 * GGUF pair llama.cpp's convert_hf_to_gguf.py (+ llama-quantize) would make: the text file with
 * its tokenizer and chat template, and the vision "mmproj" file. Tensor names come from the
 * family's GGUF name table (gguf_family.h, read backwards); a family adds a row to the export
 * table in gguf_export.c with its metadata writers. */
#ifndef VLM_MODELS_GGUF_EXPORT_H
#define VLM_MODELS_GGUF_EXPORT_H

#include <jansson.h>

#include "formats/gguf_write.h"

struct vlm_config;
struct vlm_error;
struct vlm_weights;

/* llama.cpp's file types (general.file_type), the --type choices. */
enum vlm_gguf_ftype {
    VLM_FTYPE_F32 = 0, VLM_FTYPE_F16 = 1, VLM_FTYPE_Q4_0 = 2, VLM_FTYPE_Q8_0 = 7,
    VLM_FTYPE_Q4_K_M = 15, VLM_FTYPE_Q5_K_M = 17, VLM_FTYPE_BF16 = 32,
};

/* "q4_k_m" (any case) -> ftype; -1 when unknown. */
int vlm_gguf_ftype_parse(const char *s);
const char *vlm_gguf_ftype_name(int ftype);

struct vlm_gguf_export_params {
    const char *src_dir;       /* model folder */
    const char *out;           /* text GGUF path */
    const char *mmproj_out;    /* vision GGUF path; NULL: none */
    int ftype;                 /* enum vlm_gguf_ftype for the text file */
    int mmproj_ftype;          /* F32, F16, BF16 or Q8_0 (as the converter can write); -1: F16 for
                                * quantized text types, else the text type */
    int n_threads;             /* quantization threads (0: 1) */
    const char *tokenizer_pre; /* tokenizer.ggml.pre; NULL: recognised from tokenizer.json */
    int verbose;               /* one line per tensor on stderr */
};

/* Writes the files. Each is written whole or not at all (temp + rename). Errors name the file,
 * tensor or key. Memory: one chunk of rows at a time, never a whole tensor twice. */
int vlm_gguf_export(const struct vlm_gguf_export_params *p, struct vlm_error *err);

/* ---- for family rows (gguf_export_*.c) ---- */

/* The sizes the planner needs, read by the family from config.json. */
struct vlm_gguf_export_info {
    int n_layer, n_head, n_head_kv;   /* text decoder (heads for the RoPE row permutation) */
    int n_vocab, tied;                /* tied: no output.weight (lm_head is the embedding) */
    int n_layer_vision;
};

/* What a family's metadata writers see. */
struct vlm_gguf_export_ctx {
    const struct vlm_config *cfg;
    const char *dir, *name;         /* model folder and general.name */
    int ftype;                      /* of the file being written */
    const struct vlm_weights *w;
    const struct vlm_gguf_export_info *info;
    uint64_t n_params;              /* elements of the file's tensors (general.size_label) */
};

/* Writes general.name and general.size_label ("26K", "256M": the converter's rounding). */
int vlm_gguf_export_name(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, struct vlm_error *err);

/* Writes the tokenizer.ggml.* keys and tokenizer.chat_template of dir's tokenizer.json,
 * tokenizer_config.json and chat template files as the converter's GPT-2-style vocabulary does:
 * n_vocab tokens ("[PADi]" where tokenizer.json has none), types, merges, special ids.
 * pre: tokenizer.ggml.pre, NULL to recognise it. */
int vlm_gguf_export_tokenizer(struct vlm_gguf_writer *w, const struct vlm_config *cfg, const char *dir,
                              int n_vocab, const char *pre, struct vlm_error *err);

#endif
