/* idefics3_gguf.c — Idefics3/SmolVLM from llama.cpp's GGUF pair: the text file (arch "llama")
 * and the mmproj (arch "clip", projector "idefics3"); names as convert_hf_to_gguf.py and
 * clip.cpp spell them, mapped to the names idefics3.c, llama.c and siglip.c bind. */
#include "models/idefics3_gguf.h"

#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

#define T "model.text_model."
#define V "model.vision_model."
#define L "model.text_model.layers.%d."
#define E "model.vision_model.encoder.layers.%d."

static const struct vlm_gguf_name text_names[] = {
    {"token_embd.weight", T "embed_tokens.weight", 0},
    {"output_norm.weight", T "norm.weight", 0},
    {"output.weight", "lm_head.weight", 0},
    {"blk.%d.attn_norm.weight", L "input_layernorm.weight", 0},
    {"blk.%d.ffn_norm.weight", L "post_attention_layernorm.weight", 0},
    {"blk.%d.attn_q.weight", L "self_attn.q_proj.weight", VLM_GGUF_ROWS_ROPE_Q},
    {"blk.%d.attn_k.weight", L "self_attn.k_proj.weight", VLM_GGUF_ROWS_ROPE_K},
    {"blk.%d.attn_v.weight", L "self_attn.v_proj.weight", 0},
    {"blk.%d.attn_output.weight", L "self_attn.o_proj.weight", 0},
    {"blk.%d.attn_q.bias", L "self_attn.q_proj.bias", VLM_GGUF_ROWS_ROPE_Q},
    {"blk.%d.attn_k.bias", L "self_attn.k_proj.bias", VLM_GGUF_ROWS_ROPE_K},
    {"blk.%d.attn_v.bias", L "self_attn.v_proj.bias", 0},
    {"blk.%d.attn_output.bias", L "self_attn.o_proj.bias", 0},
    {"blk.%d.ffn_gate.weight", L "mlp.gate_proj.weight", 0},
    {"blk.%d.ffn_up.weight", L "mlp.up_proj.weight", 0},
    {"blk.%d.ffn_down.weight", L "mlp.down_proj.weight", 0},
    {NULL, NULL, 0},
};

static const struct vlm_gguf_name vision_names[] = {
    VLM_GGUF_SIGLIP_NAMES(V, E),
    {"mm.model.fc.weight", "model.connector.modality_projection.proj.weight", 0},
    {NULL, NULL, 0},
};

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

static int set(json_t *o, const char *k, json_t *v, struct vlm_error *err) {
    return json_object_set_new(o, k, v) ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
}

/* llama.* keys -> a Llama text_config (llama.c reads it with transformers' defaults). */
int vlm_gguf_llama_text_config(const struct vlm_gguf *g, json_t *tc, struct vlm_error *err) {
    char k[128];
    int rc;
    long long nh = 0, d = 0, rot = 0, hd = 0;
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "embedding_length", k, sizeof k), 0, 1, 1 << 16, &d, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.head_count", k, sizeof k), 0, 1, 1024, &nh, err));
    if (!d || !nh) return vlm_error_set(err, VLM_E_FORMAT, "%s: needs %s.embedding_length and %s.attention.head_count", g->fname, g->arch, g->arch);
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.key_length", k, sizeof k), d / nh, 2, 512, &hd, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "rope.dimension_count", k, sizeof k), hd, 2, hd, &rot, err));
    CHK(set(tc, "hidden_size", json_integer(d), err));
    CHK(set(tc, "num_attention_heads", json_integer(nh), err));
    CHK(set(tc, "head_dim", json_integer(hd), err));
    if (rot != hd) CHK(set(tc, "partial_rotary_factor", json_real((double)rot / (double)hd), err));
    CHK(vlm_gguf_cfg_int(g, vlm_gguf_arch_key(g, "feed_forward_length", k, sizeof k), 1, 1 << 18, tc, "intermediate_size", err));
    CHK(vlm_gguf_cfg_int(g, vlm_gguf_arch_key(g, "block_count", k, sizeof k), 1, 1024, tc, "num_hidden_layers", err));
    CHK(vlm_gguf_cfg_int(g, vlm_gguf_arch_key(g, "attention.head_count_kv", k, sizeof k), 1, nh, tc, "num_key_value_heads", err));
    CHK(vlm_gguf_cfg_int(g, vlm_gguf_arch_key(g, "context_length", k, sizeof k), 1, 1 << 24, tc, "max_position_embeddings", err));
    CHK(vlm_gguf_cfg_num(g, vlm_gguf_arch_key(g, "attention.layer_norm_rms_epsilon", k, sizeof k), 0, 1, tc, "rms_norm_eps", err));
    CHK(vlm_gguf_cfg_num(g, vlm_gguf_arch_key(g, "rope.freq_base", k, sizeof k), 1e-3, 1e12, tc, "rope_theta", err));
    /* The vocabulary: llama.vocab_size, else the embedding's rows. */
    const struct vlm_gguf_tensor *emb = vlm_gguf_tensor(g, "token_embd.weight");
    long long nv = emb && emb->n_dims == 2 ? emb->ne[1] : 0;
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "vocab_size", k, sizeof k), nv, 1, 1 << 22, &nv, err));
    CHK(set(tc, "vocab_size", json_integer(nv), err));
    CHK(set(tc, "tie_word_embeddings", json_boolean(!vlm_gguf_tensor(g, "output.weight")), err));
    if (vlm_gguf_tensor(g, "rope_freqs.weight"))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: rope_freqs.weight (Llama 3 RoPE scaling stored as factors) is not supported yet", g->fname);
    char *ty = NULL;
    CHK(vlm_gguf_get_str(g, vlm_gguf_arch_key(g, "rope.scaling.type", k, sizeof k), &ty, err));
    if (ty && strcmp(ty, "none")) {
        if (strcmp(ty, "linear")) {
            rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: %s.rope.scaling.type \"%.32s\" is not supported (none, linear)", g->fname, g->arch, ty);
            vlm_free(ty);
            return rc;
        }
        json_t *rs = json_object();
        double f;
        rc = rs ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        if (rc == VLM_OK) rc = vlm_gguf_get_num(g, vlm_gguf_arch_key(g, "rope.scaling.factor", k, sizeof k), 1.0, 1e-6, 1e6, &f, err);
        if (rc == VLM_OK) rc = set(rs, "rope_type", json_string("linear"), err);
        if (rc == VLM_OK) rc = set(rs, "factor", json_real(f), err);
        if (rc == VLM_OK) rc = set(tc, "rope_scaling", rs, err);
        else json_decref(rs);
    }
    vlm_free(ty);
    return rc;
}

/* clip.vision.* keys -> a SigLIP vision_config. */
int vlm_gguf_siglip_vision_config(const struct vlm_gguf *g, json_t *vc, struct vlm_error *err) {
    int rc, gelu = 0, silu = 0;
    CHK(vlm_gguf_cfg_int(g, "clip.vision.embedding_length", 1, 1 << 15, vc, "hidden_size", err));
    CHK(vlm_gguf_cfg_int(g, "clip.vision.feed_forward_length", 1, 1 << 17, vc, "intermediate_size", err));
    CHK(vlm_gguf_cfg_int(g, "clip.vision.block_count", 1, 256, vc, "num_hidden_layers", err));
    CHK(vlm_gguf_cfg_int(g, "clip.vision.attention.head_count", 1, 256, vc, "num_attention_heads", err));
    CHK(vlm_gguf_cfg_int(g, "clip.vision.image_size", 1, 8192, vc, "image_size", err));
    CHK(vlm_gguf_cfg_int(g, "clip.vision.patch_size", 1, 1024, vc, "patch_size", err));
    CHK(vlm_gguf_cfg_num(g, "clip.vision.attention.layer_norm_epsilon", 0, 1, vc, "layer_norm_eps", err));
    CHK(vlm_gguf_get_bool(g, "clip.use_gelu", 0, &gelu, err));
    CHK(vlm_gguf_get_bool(g, "clip.use_silu", 0, &silu, err));
    if (silu || !gelu)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: the vision tower's activation must be GELU (clip.use_gelu)", g->fname);
    /* ggml's GELU is the tanh approximation, SigLIP's gelu_pytorch_tanh. */
    return set(vc, "hidden_act", json_string("gelu_pytorch_tanh"), err);
}

static int idefics3_config(const struct vlm_gguf *text, const struct vlm_gguf *mm, json_t *root, struct vlm_error *err) {
    int rc;
    json_t *tc = json_object(), *vc = json_object();
    if (set(root, "text_config", tc, err) || set(root, "vision_config", vc, err))
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    CHK(set(root, "architectures", json_pack("[s]", "Idefics3ForConditionalGeneration"), err));
    CHK(set(root, "model_type", json_string("idefics3"), err));
    CHK(vlm_gguf_llama_text_config(text, tc, err));
    CHK(vlm_gguf_siglip_vision_config(mm, vc, err));
    CHK(vlm_gguf_cfg_int(mm, "clip.vision.projector.scale_factor", 1, 16, root, "scale_factor", err));
    long long img = vlm_gguf_token_id(text, "<image>");
    if (img < 0) return vlm_error_set(err, VLM_E_FORMAT, "%s: the vocabulary has no \"<image>\" token", text->fname);
    CHK(set(root, "image_token_id", json_integer(img), err));
    return set(root, "tie_word_embeddings", json_boolean(!vlm_gguf_tensor(text, "output.weight")), err);
}

static int num_array(const struct vlm_gguf *g, const char *key, json_t *obj, const char *name, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv;
    int rc;
    CHK(vlm_gguf_get_arr(g, key, VLM_GGUF_F64, &kv, err));
    if (!kv) return VLM_OK;
    if (kv->n != 3) return vlm_error_set(err, VLM_E_FORMAT, "%s: %s must hold 3 numbers", g->fname, key);
    json_t *a = json_array();
    for (uint64_t i = 0; a && i < kv->n; i++) json_array_append_new(a, json_real(vlm_gguf_arr_num(kv, i)));
    return set(obj, name, a, err);
}

/* As SmolVLM's preprocessor_config.json: longest edge from clip.vision.preproc_image_size,
 * tiles of the encoder's image_size, image splitting on (llama.cpp's mtmd always splits). */
static int idefics3_processor(const struct vlm_gguf *mm, json_t *pre, json_t *proc, struct vlm_error *err) {
    long long is, ps, le, sf;
    int rc;
    CHK(vlm_gguf_get_int(mm, "clip.vision.image_size", 512, 1, 8192, &is, err));
    CHK(vlm_gguf_get_int(mm, "clip.vision.patch_size", 16, 1, 1024, &ps, err));
    CHK(vlm_gguf_get_int(mm, "clip.vision.preproc_image_size", 4 * is, 1, 1 << 16, &le, err));
    CHK(vlm_gguf_get_int(mm, "clip.vision.projector.scale_factor", 2, 1, 16, &sf, err));
    CHK(set(pre, "image_processor_type", json_string("Idefics3ImageProcessor"), err));
    CHK(set(pre, "do_image_splitting", json_true(), err));
    CHK(set(pre, "size", json_pack("{sI}", "longest_edge", (json_int_t)le), err));
    CHK(set(pre, "max_image_size", json_pack("{sI}", "longest_edge", (json_int_t)is), err));
    CHK(num_array(mm, "clip.vision.image_mean", pre, "image_mean", err));
    CHK(num_array(mm, "clip.vision.image_std", pre, "image_std", err));
    long long side = is / ps / sf;
    CHK(set(proc, "processor_class", json_string("Idefics3Processor"), err));
    return set(proc, "image_seq_len", json_integer(side * side), err);
}

static int llama_heads(const struct vlm_gguf *g, int *n_head, int *n_head_kv, struct vlm_error *err) {
    char k[128];
    long long nh, nkv;
    int rc;
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.head_count", k, sizeof k), 1, 1, 1024, &nh, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.head_count_kv", k, sizeof k), nh, 1, nh, &nkv, err));
    *n_head = (int)nh;
    *n_head_kv = (int)nkv;
    return VLM_OK;
}

const struct vlm_gguf_family vlm_gguf_idefics3 = {
    .text_arch = "llama",
    .projector = "idefics3",
    .hf_arch = "Idefics3ForConditionalGeneration",
    .text_names = text_names,
    .vision_names = vision_names,
    .config = idefics3_config,
    .processor = idefics3_processor,
    .heads = llama_heads,
};
