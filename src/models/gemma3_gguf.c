/* gemma3_gguf.c — Gemma 3 from llama.cpp's GGUF files as convert_hf_to_gguf.py writes them
 * (Gemma3Model: the text file, general.architecture "gemma3"; Gemma3VisionModel: the mmproj,
 * projector "gemma3") and llama.cpp reads them: tensor names mapped to Gemma3ForCausalLM's (a
 * text file alone) or Gemma3ForConditionalGeneration's (with the mmproj), and config.json /
 * preprocessor_config.json built from the metadata with llama.cpp's defaults and rules where
 * they differ from transformers' (see vlm_gguf_gemma3_text_config). */
#include "models/gemma3_gguf.h"

#include <math.h>
#include <string.h>

#include "models/idefics3_gguf.h"
#include "util/alloc.h"
#include "util/error.h"

/* The decoder's rules with M the prefix of the model's tensors and L that of its layers. No Q/K
 * permutation: llama.cpp runs Gemma 3 with NeoX RoPE, the Hugging Face row order. */
#define GEMMA3_TEXT_NAMES(M, L) \
    {"token_embd.weight", M "embed_tokens.weight", 0}, \
    {"output_norm.weight", M "norm.weight", 0}, \
    {"output.weight", "lm_head.weight", 0}, \
    {"blk.%d.attn_norm.weight", L "input_layernorm.weight", 0}, \
    {"blk.%d.post_attention_norm.weight", L "post_attention_layernorm.weight", 0}, \
    {"blk.%d.ffn_norm.weight", L "pre_feedforward_layernorm.weight", 0}, \
    {"blk.%d.post_ffw_norm.weight", L "post_feedforward_layernorm.weight", 0}, \
    {"blk.%d.attn_q_norm.weight", L "self_attn.q_norm.weight", 0}, \
    {"blk.%d.attn_k_norm.weight", L "self_attn.k_norm.weight", 0}, \
    {"blk.%d.attn_q.weight", L "self_attn.q_proj.weight", 0}, \
    {"blk.%d.attn_k.weight", L "self_attn.k_proj.weight", 0}, \
    {"blk.%d.attn_v.weight", L "self_attn.v_proj.weight", 0}, \
    {"blk.%d.attn_output.weight", L "self_attn.o_proj.weight", 0}, \
    {"blk.%d.ffn_gate.weight", L "mlp.gate_proj.weight", 0}, \
    {"blk.%d.ffn_up.weight", L "mlp.up_proj.weight", 0}, \
    {"blk.%d.ffn_down.weight", L "mlp.down_proj.weight", 0}

/* Gemma3ForCausalLM's names (a text file alone). */
static const struct vlm_gguf_name text_names[] = {
    GEMMA3_TEXT_NAMES("model.", "model.layers.%d."),
    {NULL, NULL, 0},
};

/* Gemma3ForConditionalGeneration's (transformers 5's spelling). */
static const struct vlm_gguf_name vlm_text_names[] = {
    GEMMA3_TEXT_NAMES("model.language_model.", "model.language_model.layers.%d."),
    {NULL, NULL, 0},
};

/* The mmproj: SigLIP under gemma3.c's first vision spelling, and the projector (its
 * input_projection kept (d_vision, d_text) as the checkpoint has it; F16, as the converter
 * forces it). */
#define V "vision_tower.vision_model."
#define E "vision_tower.vision_model.encoder.layers.%d."
static const struct vlm_gguf_name vision_names[] = {
    VLM_GGUF_SIGLIP_NAMES(V, E),
    {"mm.input_projection.weight", "multi_modal_projector.mm_input_projection_weight", 0},
    {"mm.soft_emb_norm.weight", "multi_modal_projector.mm_soft_emb_norm.weight", 0},
    {NULL, NULL, 0},
};

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

static int set(json_t *o, const char *k, json_t *v, struct vlm_error *err) {
    return json_object_set_new(o, k, v) ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
}

/* layer_types as llama.cpp decides them: no sliding_window (or 0) -> every layer global;
 * else gemma3.attention.sliding_window_pattern, either one bool/int per layer (true = local)
 * or a period n (default 6): layer il is local unless il % n == n - 1 (n == 0: all local). */
static int layer_types(const struct vlm_gguf *g, long long n_layer, long long window, json_t *tc,
                       struct vlm_error *err) {
    char k[128];
    const char *key = vlm_gguf_arch_key(g, "attention.sliding_window_pattern", k, sizeof k);
    const struct vlm_gguf_kv *kv = vlm_gguf_find(g, key), *arr = NULL;
    long long period = 6;
    int rc;
    if (kv && kv->type == VLM_GGUF_ARRAY) {
        if (kv->arr_type == VLM_GGUF_BOOL) arr = kv;
        else CHK(vlm_gguf_get_arr(g, key, VLM_GGUF_I64, &arr, err));
        if (arr->n != (uint64_t)n_layer)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: %s holds %llu entries for %lld layers", g->fname, key,
                                 (unsigned long long)arr->n, n_layer);
    } else {
        CHK(vlm_gguf_get_int(g, key, 6, 0, 1 << 20, &period, err));
    }
    json_t *lt = json_array();
    if (!lt || set(tc, "layer_types", lt, err)) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    for (long long il = 0; il < n_layer; il++) {
        int local;
        if (window <= 0) local = 0;
        else if (arr && arr->arr_type == VLM_GGUF_BOOL) local = arr->arr[il] != 0;
        else if (arr) local = vlm_gguf_arr_int(arr, (uint64_t)il) != 0;
        else local = period == 0 || il % period < period - 1;
        if (json_array_append_new(lt, json_string(local ? "sliding_attention" : "full_attention")))
            return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    return set(tc, "sliding_window", window > 0 ? json_integer(window) : json_null(), err);
}

/* rope_parameters per layer type: global theta gemma3.rope.freq_base (llama.cpp's default
 * 10000 when absent) with linear scaling when rope.scaling.type says so; local theta
 * rope.freq_base_swa (default 10000), never scaled. */
static int ropes(const struct vlm_gguf *g, json_t *tc, struct vlm_error *err) {
    char k[128];
    double base, base_swa, factor = 0;
    char *ty = NULL;
    int rc;
    CHK(vlm_gguf_get_num(g, vlm_gguf_arch_key(g, "rope.freq_base", k, sizeof k), 10000.0, 1e-3, 1e12, &base, err));
    CHK(vlm_gguf_get_num(g, vlm_gguf_arch_key(g, "rope.freq_base_swa", k, sizeof k), 10000.0, 1e-3, 1e12, &base_swa, err));
    CHK(vlm_gguf_get_str(g, vlm_gguf_arch_key(g, "rope.scaling.type", k, sizeof k), &ty, err));
    rc = vlm_gguf_get_num(g, vlm_gguf_arch_key(g, "rope.scaling.factor", k, sizeof k), 0.0, 0.0, 1e6, &factor, err);
    if (rc == VLM_OK && ty && strcmp(ty, "none") && strcmp(ty, "linear"))
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: %s.rope.scaling.type \"%.32s\" is not supported for Gemma 3 (none, linear)",
                           g->fname, g->arch, ty);
    int linear = rc == VLM_OK && (!ty || !strcmp(ty, "linear")) && factor != 0.0 && factor != 1.0;
    vlm_free(ty);
    if (rc != VLM_OK) return rc;
    json_t *full = linear ? json_pack("{s:s, s:f, s:f}", "rope_type", "linear", "factor", factor, "rope_theta", base)
                          : json_pack("{s:s, s:f}", "rope_type", "default", "rope_theta", base);
    json_t *slide = json_pack("{s:s, s:f}", "rope_type", "default", "rope_theta", base_swa);
    json_t *rp = full && slide ? json_pack("{s:o, s:o}", "full_attention", full, "sliding_attention", slide) : NULL;
    if (!rp) {
        json_decref(full);
        json_decref(slide);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    return set(tc, "rope_parameters", rp, err);
}

/* gemma3.* -> a Gemma 3 text config (the root of a Gemma3ForCausalLM config). Where llama.cpp
 * and transformers differ, this follows llama.cpp, which the file was made for: the attention
 * scale is 1/sqrt(head_dim) (1/sqrt(d_model / n_head) for the 62-layer 27B), whatever
 * query_pre_attn_scalar was; RMSNorm weights already hold 1 + w and the embedding scale is
 * sqrt(d) in f32 ("vlm_gguf", read by gemma3_text.c). */
int vlm_gguf_gemma3_text_config(const struct vlm_gguf *g, json_t *tc, struct vlm_error *err) {
    char k[128];
    long long d, nh, nkv, hd, hv, nl, window;
    int rc;
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "embedding_length", k, sizeof k), 0, 1, 1 << 16, &d, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.head_count", k, sizeof k), 0, 1, 1024, &nh, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "block_count", k, sizeof k), 0, 1, 1024, &nl, err));
    if (!d || !nh || !nl)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: needs %s.embedding_length, %s.attention.head_count and %s.block_count",
                             g->fname, g->arch, g->arch, g->arch);
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.head_count_kv", k, sizeof k), nh, 1, nh, &nkv, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.key_length", k, sizeof k), d / nh, 2, 512, &hd, err));
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.value_length", k, sizeof k), hd, 2, 512, &hv, err));
    if (hv != hd) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: %s.attention.value_length %lld differs from key_length %lld",
                                       g->fname, g->arch, hv, hd);
    CHK(vlm_gguf_get_int(g, vlm_gguf_arch_key(g, "attention.sliding_window", k, sizeof k), 0, 0, 1 << 30, &window, err));
    CHK(set(tc, "architectures", json_pack("[s]", "Gemma3ForCausalLM"), err));
    CHK(set(tc, "model_type", json_string("gemma3_text"), err));
    CHK(set(tc, "hidden_size", json_integer(d), err));
    CHK(set(tc, "num_hidden_layers", json_integer(nl), err));
    CHK(set(tc, "num_attention_heads", json_integer(nh), err));
    CHK(set(tc, "num_key_value_heads", json_integer(nkv), err));
    CHK(set(tc, "head_dim", json_integer(hd), err));
    CHK(set(tc, "query_pre_attn_scalar", json_integer(nl == 62 ? d / nh : hd), err));
    CHK(vlm_gguf_cfg_int(g, vlm_gguf_arch_key(g, "feed_forward_length", k, sizeof k), 1, 1 << 18, tc, "intermediate_size", err));
    CHK(vlm_gguf_cfg_int(g, vlm_gguf_arch_key(g, "context_length", k, sizeof k), 1, 1 << 24, tc, "max_position_embeddings", err));
    CHK(vlm_gguf_cfg_num(g, vlm_gguf_arch_key(g, "attention.layer_norm_rms_epsilon", k, sizeof k), 0, 1, tc, "rms_norm_eps", err));
    CHK(vlm_gguf_cfg_num(g, vlm_gguf_arch_key(g, "final_logit_softcapping", k, sizeof k), 0, 1e9, tc, "final_logit_softcapping", err));
    CHK(layer_types(g, nl, window, tc, err));
    CHK(ropes(g, tc, err));
    /* The vocabulary is the embedding's rows (the converter drops rows past the tokenizer's). */
    const struct vlm_gguf_tensor *emb = vlm_gguf_tensor(g, "token_embd.weight");
    if (!emb || emb->n_dims != 2 || emb->ne[0] != d)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: token_embd.weight is missing or not (%lld, n_vocab)", g->fname, d);
    CHK(set(tc, "vocab_size", json_integer(emb->ne[1]), err));
    CHK(set(tc, "tie_word_embeddings", json_boolean(!vlm_gguf_tensor(g, "output.weight")), err));
    return set(tc, "vlm_gguf", json_true(), err);
}

static int gemma3_config(const struct vlm_gguf *text, const struct vlm_gguf *mm, json_t *root, struct vlm_error *err) {
    (void)mm;
    return vlm_gguf_gemma3_text_config(text, root, err);
}

/* Image tokens per image as clip.cpp makes them: (image_size / patch_size / n_merge)^2, n_merge
 * clip.vision.projector.scale_factor (default 4, every published size). */
static int mm_tokens(const struct vlm_gguf *mm, long long *is, long long *n, struct vlm_error *err) {
    long long ps, merge;
    int rc;
    CHK(vlm_gguf_get_int(mm, "clip.vision.image_size", 896, 1, 8192, is, err));
    CHK(vlm_gguf_get_int(mm, "clip.vision.patch_size", 14, 1, 1024, &ps, err));
    CHK(vlm_gguf_get_int(mm, "clip.vision.projector.scale_factor", 4, 1, 64, &merge, err));
    if (*is % ps || (*is / ps) % merge)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: clip.vision.image_size %lld is not a multiple of patch_size %lld x scale_factor %lld",
                             mm->fname, *is, ps, merge);
    *n = (*is / ps / merge) * (*is / ps / merge);
    return VLM_OK;
}

/* Text file + mmproj -> Gemma3ForConditionalGeneration's config. */
static int gemma3_vlm_config(const struct vlm_gguf *text, const struct vlm_gguf *mm, json_t *root, struct vlm_error *err) {
    int rc;
    long long is, n;
    json_t *tc = json_object(), *vc = json_object();
    if (set(root, "text_config", tc, err) || set(root, "vision_config", vc, err))
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    CHK(vlm_gguf_gemma3_text_config(text, tc, err));
    CHK(vlm_gguf_siglip_vision_config(mm, vc, err));
    CHK(mm_tokens(mm, &is, &n, err));
    CHK(set(root, "architectures", json_pack("[s]", "Gemma3ForConditionalGeneration"), err));
    CHK(set(root, "model_type", json_string("gemma3"), err));
    CHK(set(root, "mm_tokens_per_image", json_integer(n), err));
    long long img = vlm_gguf_token_id(text, "<image_soft_token>");
    if (img < 0) return vlm_error_set(err, VLM_E_FORMAT, "%s: the vocabulary has no \"<image_soft_token>\" token", text->fname);
    CHK(set(root, "image_token_id", json_integer(img), err));
    CHK(set(root, "tie_word_embeddings", json_boolean(!vlm_gguf_tensor(text, "output.weight")), err));
    return set(root, "vlm_gguf", json_true(), err);   /* mm_soft_emb_norm holds 1 + w too */
}

static int num3(const struct vlm_gguf *g, const char *key, json_t *obj, const char *name, struct vlm_error *err) {
    const struct vlm_gguf_kv *kv;
    int rc;
    CHK(vlm_gguf_get_arr(g, key, VLM_GGUF_F64, &kv, err));
    if (!kv) return VLM_OK;
    if (kv->n != 3) return vlm_error_set(err, VLM_E_FORMAT, "%s: %s must hold 3 numbers", g->fname, key);
    return set(obj, name, json_pack("[f, f, f]", vlm_gguf_arr_num(kv, 0), vlm_gguf_arr_num(kv, 1), vlm_gguf_arr_num(kv, 2)), err);
}

/* As Gemma 3's preprocessor_config.json: a bilinear resize to image_size squared, the mmproj's
 * mean and std; no pan-and-scan (llama.cpp's mtmd does none). */
static int gemma3_processor(const struct vlm_gguf *mm, json_t *pre, json_t *proc, struct vlm_error *err) {
    int rc;
    long long is, n;
    CHK(mm_tokens(mm, &is, &n, err));
    CHK(set(pre, "image_processor_type", json_string("Gemma3ImageProcessor"), err));
    CHK(set(pre, "size", json_pack("{sI, sI}", "height", (json_int_t)is, "width", (json_int_t)is), err));
    CHK(set(pre, "do_pan_and_scan", json_false(), err));
    CHK(num3(mm, "clip.vision.image_mean", pre, "image_mean", err));
    CHK(num3(mm, "clip.vision.image_std", pre, "image_std", err));
    CHK(set(proc, "processor_class", json_string("Gemma3Processor"), err));
    return set(proc, "image_seq_length", json_integer(n), err);
}

static int gemma3_heads(const struct vlm_gguf *g, int *n_head, int *n_head_kv, struct vlm_error *err) {
    (void)g; (void)err;
    *n_head = *n_head_kv = 0;   /* no rule un-permutes rows */
    return VLM_OK;
}

const struct vlm_gguf_family vlm_gguf_gemma3 = {
    .text_arch = "gemma3",
    .projector = "gemma3",
    .hf_arch = "Gemma3ForConditionalGeneration",
    .text_names = vlm_text_names,
    .vision_names = vision_names,
    .config = gemma3_vlm_config,
    .processor = gemma3_processor,
    .heads = gemma3_heads,
};

const struct vlm_gguf_family vlm_gguf_gemma3_text = {
    .text_arch = "gemma3",
    .projector = NULL,
    .hf_arch = "Gemma3ForCausalLM",
    .text_names = text_names,
    .vision_names = NULL,
    .config = gemma3_config,
    .processor = NULL,
    .heads = gemma3_heads,
};
