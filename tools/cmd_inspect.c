/* cmd_inspect.c — `vlm inspect MODEL_DIR`: what a model folder holds, as vlm.c loads it:
 * architecture and family, vision and text sizes, tensor count and bytes per dtype, weight
 * files, EOS/BOS/image token ids, tokenizer, chat template and processor presence. */
#include "commands.h"
#include "models/idefics3.h"
#include "models/model.h"
#include "models/qwen25vl.h"
#include "text/tokenizer.h"
#include "vlm.h"

#include <stdio.h>
#include <string.h>

int cmd_inspect(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vlm inspect [MODEL_DIR]\n\nLoads MODEL_DIR (default: the demo model) and prints its architecture,\n"
                   "sizes, tensor count and dtypes, special token ids and which text/image parts it has.\n");
            return 0;
        }
        if (argv[i][0] == '-' || dir) { fprintf(stderr, "vlm inspect: unexpected argument '%s'\n", argv[i]); return 2; }
        dir = argv[i];
    }
    if (!dir) dir = vlm_tool_default_model();
    struct vlm_model_params mp = vlm_model_default_params();
    struct vlm_model *m;
    if (vlm_model_load(dir, &mp, &m) != VLM_OK) {
        fprintf(stderr, "vlm inspect: %s\n", vlm_last_error());
        return 1;
    }
    const struct vlm_model_info *mi = &m->info;
    printf("model          %s\narchitecture   %s (model_type %s)\n", dir, mi->arch, m->cfg.model_type);
    if (m->family == &vlm_family_idefics3) {
        const struct vlm_idefics3 *f = m->impl;
        const struct vlm_siglip_hparams *v = &f->vision.hp;
        const struct vlm_llama_hparams *t = &f->text.hp;
        printf("vision         SigLIP: %d layers, d_model %d, %d heads, ffn %d, %dx%d px tiles, patch %d, %s\n",
               v->n_layer, v->d_model, v->n_head, v->d_ff, v->image_size, v->image_size, v->patch_size,
               v->gelu_tanh ? "gelu_tanh" : "gelu");
        printf("connector      pixel shuffle x%d + linear -> %d image tokens per tile\n", f->scale_factor, f->tokens_per_tile);
        printf("text           Llama: %d layers, d_model %d, %d heads (%d kv, head_dim %d), ffn %d, vocab %d,\n"
               "               rope_theta %g, max positions %d, %s embeddings\n",
               t->n_layer, t->d_model, t->n_head, t->n_head_kv, t->d_head, t->d_ff, t->n_vocab, t->rope.theta,
               t->max_pos, f->text.lm_head == f->text.embed ? "tied" : "untied");
    }
    if (m->family == &vlm_family_qwen25vl || m->family == &vlm_family_qwen2vl) {
        const struct vlm_qwen25vl *f = m->impl;
        const struct vlm_qwen_vision_hparams *v = &f->vision.hp;
        const struct vlm_llama_hparams *t = &f->text.hp;
        int n_full = 0;
        for (int i = 0; i < v->n_layer; i++) n_full += v->full_attn[i];
        printf("vision         %s: %d layers, d_model %d, %d heads, ffn %d, patch %d x %d frames, %s",
               v->v2 ? "Qwen2-VL ViT (LayerNorm)" : "Qwen2.5-VL ViT (RMSNorm, SwiGLU)", v->n_layer, v->d_model,
               v->n_head, v->d_ff, v->patch_size, v->temporal,
               v->v2 ? "full attention\n" : "window attention\n");
        if (!v->v2)
            printf("               windows of %d px (%d merged patches a side), full attention in %d block(s)\n",
                   v->window_size, v->window_units, n_full);
        printf("connector      merger: %dx%d patches -> 1 token of %d (dynamic resolution)\n", v->merge, v->merge, v->d_out);
        printf("text           Qwen2: %d layers, d_model %d, %d heads (%d kv, head_dim %d), ffn %d, vocab %d,\n"
               "               M-RoPE sections %d/%d/%d, rope_theta %g, max positions %d, %s embeddings\n",
               t->n_layer, t->d_model, t->n_head, t->n_head_kv, t->d_head, t->d_ff, t->n_vocab, t->mrope_section[0],
               t->mrope_section[1], t->mrope_section[2], t->rope.theta, t->max_pos,
               f->text.lm_head == f->text.embed ? "tied" : "untied");
    }
    size_t bytes[VLM_DT_COUNT] = {0}, count[VLM_DT_COUNT] = {0};
    for (size_t i = 0; i < m->weights.n; i++) {
        int ty = m->weights.w[i].t.type;
        if (ty >= 0 && ty < VLM_DT_COUNT) { bytes[ty] += m->weights.w[i].t.nbytes; count[ty]++; }
    }
    printf("tensors        %zu in %d file(s), %.1f MiB\n", m->weights.n, m->weights.n_files, mi->weight_bytes / 1048576.0);
    for (int t = 0; t < VLM_DT_COUNT; t++)
        if (count[t]) printf("               %-5s %5zu tensors  %9.1f MiB\n", vlm_dtype_name((enum vlm_dtype)t), count[t], bytes[t] / 1048576.0);
    printf("tokens         bos %d, eos", mi->bos_id);
    for (int i = 0; i < mi->n_eos; i++) printf(" %d", mi->eos_ids[i]);
    printf(", image %d\n", mi->image_token_id);
    printf("tokenizer      %s", m->tok ? "tokenizer.json" : "none");
    if (m->tok) printf(" (%zu tokens)", vlm_tokenizer_vocab_size(m->tok));
    printf("\nchat template  %s\nprocessor      %s\n", m->tmpl ? "yes" : "none", m->proc ? "yes" : "none");
    vlm_model_free(m);
    return 0;
}
