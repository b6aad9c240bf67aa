/* gguf_export_idefics3.c — Idefics3/SmolVLM as llama.cpp's GGUF pair: a Llama text file and a
 * "clip" mmproj with projector type idefics3 (keys as the converter's SmolVLMModel writes them). */
#include <string.h>

#include "formats/config.h"
#include "models/gguf_export_family.h"
#include "models/llama.h"
#include "models/siglip.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

static int info(const struct vlm_config *c, struct vlm_gguf_export_info *in, struct vlm_error *err) {
    json_t *tc, *vc;
    struct vlm_llama_hparams th;
    struct vlm_siglip_hparams vh;
    int rc;
    CHK(vlm_config_sub(c, "text_config", &tc, err));
    CHK(vlm_config_sub(c, "vision_config", &vc, err));
    CHK(vlm_llama_hparams_read(c, tc, 1e-5f, &th, err));
    CHK(vlm_siglip_hparams_read(c, vc, &vh, err));
    in->n_layer = th.n_layer;
    in->n_head = th.n_head;
    in->n_head_kv = th.n_head_kv;
    in->n_vocab = th.n_vocab;
    in->tied = th.tied;
    in->n_layer_vision = vh.n_layer;
    return VLM_OK;
}

static int text_meta(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, const char *pre,
                     struct vlm_error *err) {
    json_t *tc;
    int rc;
    CHK(vlm_config_sub(c->cfg, "text_config", &tc, err));
    return vlm_gguf_export_llama_meta(w, c, tc, pre, err);
}

/* image_mean / image_std (3 numbers each) and size.longest_edge of preprocessor_config.json. */
static int preproc(const char *dir, float mean[3], float std[3], long long *longest, struct vlm_error *err) {
    char *p = vlm_path_join(dir, "preprocessor_config.json"), *text = NULL;
    size_t len;
    int rc = p ? vlm_read_file(p, 1u << 20, &text, &len, err) : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    json_t *j = rc == VLM_OK ? json_loadb(text, len, 0, NULL) : NULL;
    if (rc == VLM_OK) {
        json_t *m = json_object_get(j, "image_mean"), *s = json_object_get(j, "image_std");
        json_t *le = json_object_get(json_object_get(j, "size"), "longest_edge");
        if (json_array_size(m) != 3 || json_array_size(s) != 3)
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: image_mean and image_std must hold 3 numbers", p);
        for (size_t i = 0; rc == VLM_OK && i < 3; i++) {
            mean[i] = (float)json_number_value(json_array_get(m, i));
            std[i] = (float)json_number_value(json_array_get(s, i));
        }
        if (json_is_integer(le)) *longest = json_integer_value(le);
    }
    json_decref(j);
    vlm_free(text);
    vlm_free(p);
    return rc;
}

static int vision_meta(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, struct vlm_error *err) {
    json_t *tc, *vc;
    struct vlm_llama_hparams th;
    struct vlm_siglip_hparams vh;
    long long sf, longest;
    float mean[3], std[3];
    int rc;
    CHK(vlm_config_sub(c->cfg, "text_config", &tc, err));
    CHK(vlm_config_sub(c->cfg, "vision_config", &vc, err));
    CHK(vlm_llama_hparams_read(c->cfg, tc, 1e-5f, &th, err));
    CHK(vlm_siglip_hparams_read(c->cfg, vc, &vh, err));
    CHK(vlm_config_int(c->cfg, c->cfg->root, "scale_factor", 2, 1, 16, &sf, err));
    if (!vh.gelu_tanh)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: llama.cpp's idefics3 projector runs tanh-GELU (gelu_pytorch_tanh)", c->cfg->path);
    longest = vh.image_size;
    CHK(preproc(c->dir, mean, std, &longest, err));
    CHK(vlm_gguf_write_cstr(w, "general.architecture", "clip", err));
    CHK(vlm_gguf_write_cstr(w, "general.type", "mmproj", err));
    CHK(vlm_gguf_export_name(w, c, err));
    CHK(vlm_gguf_write_u32(w, "general.file_type", (uint32_t)c->ftype, err));
    CHK(vlm_gguf_write_bool(w, "clip.has_vision_encoder", 1, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.projection_dim", (uint32_t)th.d_model, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.image_size", (uint32_t)vh.image_size, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.patch_size", (uint32_t)vh.patch_size, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.embedding_length", (uint32_t)vh.d_model, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.feed_forward_length", (uint32_t)vh.d_ff, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.block_count", (uint32_t)vh.n_layer, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.attention.head_count", (uint32_t)vh.n_head, err));
    CHK(vlm_gguf_write_arr(w, "clip.vision.image_mean", VLM_GGUF_F32, mean, 3, err));
    CHK(vlm_gguf_write_arr(w, "clip.vision.image_std", VLM_GGUF_F32, std, 3, err));
    CHK(vlm_gguf_write_cstr(w, "clip.projector_type", "idefics3", err));
    CHK(vlm_gguf_write_f32(w, "clip.vision.attention.layer_norm_epsilon", vh.ln_eps, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.projector.scale_factor", (uint32_t)sf, err));
    CHK(vlm_gguf_write_bool(w, "clip.use_gelu", 1, err));
    CHK(vlm_gguf_write_u32(w, "clip.vision.preproc_image_size", (uint32_t)longest, err));
    return vlm_gguf_write_u32(w, "general.quantization_version", 2, err);
}

/* SmolVLMModel.tensor_force_quant: the embeddings (patch conv, positions) stay f32. */
static int force_f32(const char *name) { return strstr(name, ".embeddings.") != NULL; }

const struct vlm_gguf_export_family vlm_gguf_export_idefics3 = {
    "Idefics3ForConditionalGeneration", "llama", "idefics3", info, text_meta, vision_meta, force_f32,
};
