/* gguf_export_family.h — one row per family that `vlm quantize` can write as llama.cpp's GGUF
 * pair: its config reader, the metadata of the text and mmproj files, and the vision tensors the
 * converter keeps in f32. Tensor names come from the family's gguf_family.h tables. */
#ifndef VLM_MODELS_GGUF_EXPORT_FAMILY_H
#define VLM_MODELS_GGUF_EXPORT_FAMILY_H

#include "models/gguf_export.h"

struct vlm_gguf_export_family {
    const char *hf_arch;               /* config.json architectures[0] */
    const char *text_arch, *projector; /* its gguf_family.h row (name tables) */
    int (*info)(const struct vlm_config *cfg, struct vlm_gguf_export_info *info, struct vlm_error *err);
    /* general.* + <arch>.* + tokenizer keys of the text file (pre: --tokenizer-pre or NULL). */
    int (*text_meta)(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, const char *pre,
                     struct vlm_error *err);
    /* general.* + clip.* keys of the mmproj file. */
    int (*vision_meta)(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, struct vlm_error *err);
    /* Whether the converter forces this checkpoint tensor to f32 in the mmproj (NULL: none). */
    int (*force_f32)(const char *hf_name);
};

extern const struct vlm_gguf_export_family vlm_gguf_export_idefics3;

/* gguf_export_llama.c: general.* and llama.* keys of a Llama decoder (tcfg: its config object),
 * as the converter's LlamaModel writes them, then the tokenizer. */
int vlm_gguf_export_llama_meta(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, json_t *tcfg,
                               const char *pre, struct vlm_error *err);

#endif
