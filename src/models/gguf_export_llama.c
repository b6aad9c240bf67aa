/* gguf_export_llama.c — the text file's general.* and llama.* keys of a Llama decoder as
 * convert_hf_to_gguf.py's LlamaModel writes them, then its tokenizer (gguf_export_tok.c). */
#include <string.h>

#include "formats/config.h"
#include "models/gguf_export_family.h"
#include "models/llama.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

int vlm_gguf_export_llama_meta(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, json_t *tc,
                               const char *pre, struct vlm_error *err) {
    struct vlm_llama_hparams hp;
    int rc;
    CHK(vlm_llama_hparams_read(c->cfg, tc, 1e-5f, &hp, err));
    if (hp.rope.type != VLM_ROPE_DEFAULT && hp.rope.type != VLM_ROPE_LINEAR)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: RoPE scaling other than linear is not exported yet (llama.cpp stores llama3 scaling as rope_freqs.weight)", c->cfg->path);
    if (hp.rope.rot_dim != hp.d_head)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: partial rotary embeddings are not a llama.cpp \"llama\" model", c->cfg->path);
    CHK(vlm_gguf_write_cstr(w, "general.architecture", "llama", err));
    CHK(vlm_gguf_write_cstr(w, "general.type", "model", err));
    CHK(vlm_gguf_export_name(w, c, err));
    CHK(vlm_gguf_write_u32(w, "llama.block_count", (uint32_t)hp.n_layer, err));
    CHK(vlm_gguf_write_u32(w, "llama.context_length", (uint32_t)hp.max_pos, err));
    CHK(vlm_gguf_write_u32(w, "llama.embedding_length", (uint32_t)hp.d_model, err));
    CHK(vlm_gguf_write_u32(w, "llama.feed_forward_length", (uint32_t)hp.d_ff, err));
    CHK(vlm_gguf_write_u32(w, "llama.attention.head_count", (uint32_t)hp.n_head, err));
    CHK(vlm_gguf_write_u32(w, "llama.attention.head_count_kv", (uint32_t)hp.n_head_kv, err));
    if (hp.rope.type == VLM_ROPE_LINEAR) {
        CHK(vlm_gguf_write_cstr(w, "llama.rope.scaling.type", "linear", err));
        CHK(vlm_gguf_write_f32(w, "llama.rope.scaling.factor", hp.rope.factor, err));
    }
    CHK(vlm_gguf_write_f32(w, "llama.rope.freq_base", hp.rope.theta, err));
    CHK(vlm_gguf_write_f32(w, "llama.attention.layer_norm_rms_epsilon", hp.rms_eps, err));
    if (json_object_get(tc, "head_dim")) {
        CHK(vlm_gguf_write_u32(w, "llama.attention.key_length", (uint32_t)hp.d_head, err));
        CHK(vlm_gguf_write_u32(w, "llama.attention.value_length", (uint32_t)hp.d_head, err));
    }
    CHK(vlm_gguf_write_u32(w, "general.file_type", (uint32_t)c->ftype, err));
    CHK(vlm_gguf_write_u32(w, "llama.vocab_size", (uint32_t)hp.n_vocab, err));
    CHK(vlm_gguf_write_u32(w, "llama.rope.dimension_count", (uint32_t)hp.d_head, err));
    CHK(vlm_gguf_write_u32(w, "general.quantization_version", 2, err));
    return vlm_gguf_export_tokenizer(w, c->cfg, c->dir, hp.n_vocab, pre, err);
}
