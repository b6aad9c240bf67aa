/* gguf_family.h — how a family loads from GGUF files as llama.cpp's converter writes them: its
 * tensor-name tables (llama.cpp name -> the name the family's load binds) and builders of the
 * config.json / preprocessor_config.json its load and processor read, from GGUF metadata.
 * A family adds one struct vlm_gguf_family (in a file of its own, e.g. idefics3_gguf.c) and a
 * row in registry.c's gguf table; the loader (engine/model_gguf.c) does the rest. */
#ifndef VLM_MODELS_GGUF_FAMILY_H
#define VLM_MODELS_GGUF_FAMILY_H

#include <jansson.h>

#include "formats/gguf.h"

struct vlm_error;

struct vlm_gguf_family {
    const char *text_arch;   /* general.architecture of the text file, e.g. "llama" */
    const char *projector;   /* clip.projector_type of the mmproj file, e.g. "idefics3"; NULL: text only */
    const char *hf_arch;     /* the architectures[0] the model then loads as (a registry.c row) */
    const struct vlm_gguf_name *text_names;    /* NULL-terminated rename rules for the text file */
    const struct vlm_gguf_name *vision_names;  /* ... and for the mmproj file (NULL if none) */
    /* Fills root (an empty object) with the config.json keys the family's load reads, from the
     * text file's metadata and tensors (and mmproj's; NULL for text-only). Errors name the
     * file and key. */
    int (*config)(const struct vlm_gguf *text, const struct vlm_gguf *mmproj, json_t *root,
                  struct vlm_error *err);
    /* Fills pre / proc (empty objects) as preprocessor_config.json / processor_config.json
     * from the mmproj's metadata; NULL when the family has no image processor. */
    int (*processor)(const struct vlm_gguf *mmproj, json_t *pre, json_t *proc, struct vlm_error *err);
    /* Heads for undoing the Q/K permutation: the text file's head counts. */
    int (*heads)(const struct vlm_gguf *text, int *n_head, int *n_head_kv, struct vlm_error *err);
};

/* The rename rules of a SigLIP tower in a clip mmproj (clip.cpp's v.* names), for a family's
 * vision table: V is the family's prefix of the tower ("model.vision_model."), E that of its
 * layers with one %d ("model.vision_model.encoder.layers.%d."). */
#define VLM_GGUF_SIGLIP_NAMES(V, E) \
    {"v.patch_embd.weight", V "embeddings.patch_embedding.weight", 0}, \
    {"v.patch_embd.bias", V "embeddings.patch_embedding.bias", 0}, \
    {"v.position_embd.weight", V "embeddings.position_embedding.weight", 0}, \
    {"v.post_ln.weight", V "post_layernorm.weight", 0}, \
    {"v.post_ln.bias", V "post_layernorm.bias", 0}, \
    {"v.blk.%d.ln1.weight", E "layer_norm1.weight", 0}, \
    {"v.blk.%d.ln1.bias", E "layer_norm1.bias", 0}, \
    {"v.blk.%d.ln2.weight", E "layer_norm2.weight", 0}, \
    {"v.blk.%d.ln2.bias", E "layer_norm2.bias", 0}, \
    {"v.blk.%d.attn_q.weight", E "self_attn.q_proj.weight", 0}, \
    {"v.blk.%d.attn_q.bias", E "self_attn.q_proj.bias", 0}, \
    {"v.blk.%d.attn_k.weight", E "self_attn.k_proj.weight", 0}, \
    {"v.blk.%d.attn_k.bias", E "self_attn.k_proj.bias", 0}, \
    {"v.blk.%d.attn_v.weight", E "self_attn.v_proj.weight", 0}, \
    {"v.blk.%d.attn_v.bias", E "self_attn.v_proj.bias", 0}, \
    {"v.blk.%d.attn_out.weight", E "self_attn.out_proj.weight", 0}, \
    {"v.blk.%d.attn_out.bias", E "self_attn.out_proj.bias", 0}, \
    {"v.blk.%d.ffn_up.weight", E "mlp.fc1.weight", 0}, \
    {"v.blk.%d.ffn_up.bias", E "mlp.fc1.bias", 0}, \
    {"v.blk.%d.ffn_down.weight", E "mlp.fc2.weight", 0}, \
    {"v.blk.%d.ffn_down.bias", E "mlp.fc2.bias", 0}

/* registry.c: the family for a text file's architecture and an mmproj's projector type
 * (projector NULL: no mmproj given); NULL when none. */
const struct vlm_gguf_family *vlm_gguf_family_find(const char *text_arch, const char *projector);
/* registry.c: "llama + idefics3, ..." for messages. */
void vlm_gguf_family_names(char *buf, size_t size);

/* Helpers for config builders (gguf_family.c): copy metadata key `key` (the integer, number,
 * bool or string it holds, checked against [lo, hi] for numbers) into obj[name]; absent keys
 * are left out (the family's load then uses its default). */
int vlm_gguf_cfg_int(const struct vlm_gguf *g, const char *key, long long lo, long long hi, json_t *obj,
                     const char *name, struct vlm_error *err);
int vlm_gguf_cfg_num(const struct vlm_gguf *g, const char *key, double lo, double hi, json_t *obj,
                     const char *name, struct vlm_error *err);
/* The id of the token spelled s in tokenizer.ggml.tokens, -1 if none. */
long long vlm_gguf_token_id(const struct vlm_gguf *g, const char *s);
/* "<arch>.<suffix>" into buf (the per-architecture keys such as llama.block_count). */
const char *vlm_gguf_arch_key(const struct vlm_gguf *g, const char *suffix, char *buf, size_t n);

#endif
