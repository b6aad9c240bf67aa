/* gguf_export.c — `vlm quantize`'s engine: plans each file's tensors (llama.cpp names, ggml
 * shapes, the type convert_hf_to_gguf.py / llama-quantize give each one), writes the family's
 * metadata, then streams every tensor through f32 rows (Q/K rows permuted for llama.cpp's RoPE)
 * into its type, a chunk of rows at a time. */
#include "models/gguf_export.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/config.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "models/gguf_export_family.h"
#include "models/gguf_family.h"
#include "tensor/quant.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto out; } while (0)

static const struct vlm_gguf_export_family *const families[] = {
    &vlm_gguf_export_idefics3,
};

static const struct { const char *name; int ftype; } ftypes[] = {
    {"f32", VLM_FTYPE_F32}, {"f16", VLM_FTYPE_F16}, {"bf16", VLM_FTYPE_BF16}, {"q8_0", VLM_FTYPE_Q8_0},
    {"q4_0", VLM_FTYPE_Q4_0}, {"q4_k_m", VLM_FTYPE_Q4_K_M}, {"q5_k_m", VLM_FTYPE_Q5_K_M},
};

int vlm_gguf_ftype_parse(const char *s) {
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++) {
        size_t k = 0;
        while (s[k] && ftypes[i].name[k] && tolower((unsigned char)s[k]) == ftypes[i].name[k]) k++;
        if (!s[k] && !ftypes[i].name[k]) return ftypes[i].ftype;
    }
    return -1;
}

const char *vlm_gguf_ftype_name(int ftype) {
    for (size_t i = 0; i < sizeof ftypes / sizeof ftypes[0]; i++)
        if (ftypes[i].ftype == ftype) return ftypes[i].name;
    return "?";
}

/* ---- the plan: one entry per tensor of a file ---- */

struct plan {
    char name[96];                  /* llama.cpp's name */
    const char *src_name;           /* ours (the checkpoint's) */
    const struct vlm_tensor *src;
    int rope_heads;                 /* >0: permute rows as the converter does for RoPE (this many heads) */
    int n_dims;
    int64_t ne[4];                  /* ggml order: ne[0] innermost */
    int layer;                      /* "blk.N." number, -1 otherwise (llama-quantize's sort key) */
    enum vlm_dtype type;
};

struct plan_list { struct plan *p; size_t n, cap; };

static int plan_add(struct plan_list *l, const char *gguf, const char *src_name, const struct vlm_tensor *t,
                    int rope_heads, struct vlm_error *err) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        struct plan *np = vlm_realloc(l->p, cap * sizeof *np);
        if (!np) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        l->p = np;
        l->cap = cap;
    }
    struct plan *p = &l->p[l->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", gguf);
    p->src_name = src_name;
    p->src = t;
    p->rope_heads = rope_heads;
    p->n_dims = t->n_dims;
    for (int d = 0; d < 4; d++) p->ne[d] = d < t->n_dims ? t->ne[t->n_dims - 1 - d] : 1;
    p->layer = -1;
    if (sscanf(gguf, "blk.%d.", &p->layer) != 1) p->layer = -1;
    if (t->type != VLM_DT_F32 && t->type != VLM_DT_F16 && t->type != VLM_DT_BF16)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "tensor %s: %s source weights (f32, f16, bf16 only)", src_name, vlm_dtype_name(t->type));
    return VLM_OK;
}

/* Every checkpoint tensor a rule of names matches (%d over 0..n_layer-1). */
static int plan_names(struct plan_list *l, const struct vlm_weights *w, const struct vlm_gguf_name *names,
                      int n_layer, int n_head, int n_head_kv, const char *skip, struct vlm_error *err) {
    int rc = VLM_OK;
    for (const struct vlm_gguf_name *r = names; r->gguf && rc == VLM_OK; r++) {
        int layered = strstr(r->name, "%d") != NULL;
        for (int i = 0; i < (layered ? n_layer : 1) && rc == VLM_OK; i++) {
            char ours[160], gguf[96];
            snprintf(ours, sizeof ours, r->name, i);
            snprintf(gguf, sizeof gguf, r->gguf, i);
            if (skip && !strcmp(ours, skip)) continue;
            const struct vlm_tensor *t = vlm_weights_get(w, ours);
            if (!t) continue;
            size_t k;
            for (k = 0; k < w->n && strcmp(w->w[k].name, ours); k++) {}
            int heads = r->rows == VLM_GGUF_ROWS_ROPE_Q ? n_head : r->rows == VLM_GGUF_ROWS_ROPE_K ? n_head_kv : 0;
            if (heads && (t->ne[0] % (2 * heads)))
                return vlm_error_set(err, VLM_E_FORMAT, "tensor %s: %lld rows do not split into %d heads of even size", ours, (long long)t->ne[0], heads);
            rc = plan_add(l, gguf, w->w[k].name, t, heads, err);
        }
    }
    return rc;
}

/* llama-quantize's tensor order: tensors outside blocks first, then block by block; by name within. */
static int plan_cmp(const void *a, const void *b) {
    const struct plan *x = a, *y = b;
    if (x->layer != y->layer) return x->layer < y->layer ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* ---- tensor types ---- */

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int row_fits(enum vlm_dtype t, int64_t ne0) { return ne0 % vlm_dtype_block_elems(t) == 0; }

/* convert_hf_to_gguf.py's choice for --outtype f32/f16/bf16/q8_0. */
static enum vlm_dtype converter_type(const struct plan *p, int ftype, int force_f32) {
    if (p->n_dims <= 1 || ends_with(p->name, "_norm.weight") || force_f32 || !ends_with(p->name, ".weight") ||
        !strcmp(p->name, "position_embd.weight") || !strcmp(p->name, "v.position_embd.weight"))
        return VLM_DT_F32;
    enum vlm_dtype t = ftype == VLM_FTYPE_F32 ? VLM_DT_F32 : ftype == VLM_FTYPE_BF16 ? VLM_DT_BF16
                     : ftype == VLM_FTYPE_Q8_0 ? VLM_DT_Q8_0 : VLM_DT_F16;
    return row_fits(t, p->ne[0]) ? t : VLM_DT_F16;   /* gguf-py's QuantError -> F16 */
}

/* llama-quantize's fallback when a row is not a whole number of blocks. */
static enum vlm_dtype fallback(enum vlm_dtype t, int64_t ne0) {
    if (row_fits(t, ne0)) return t;
    t = t == VLM_DT_Q4_K ? VLM_DT_Q5_0 : t == VLM_DT_Q5_K ? VLM_DT_Q5_1 : t == VLM_DT_Q6_K ? VLM_DT_Q8_0 : t;
    return row_fits(t, ne0) ? t : VLM_DT_F16;
}

static int more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct mix { int n_attn_v, i_attn_v, i_ffn_down, n_layer, tied; };

/* llama-quantize's llama_tensor_get_type for the ftypes offered here (no imatrix, not pure). */
static enum vlm_dtype quantize_type(const struct plan *p, int ftype, enum vlm_dtype base, struct mix *m) {
    const char *n = p->name;
    if (p->n_dims < 2 || !ends_with(n, "weight") || strstr(n, "_norm.weight") || !strcmp(n, "position_embd.weight") ||
        !strcmp(n, "token_types.weight"))
        return base;
    enum vlm_dtype t = ftype == VLM_FTYPE_Q4_0 ? VLM_DT_Q4_0 : ftype == VLM_FTYPE_Q8_0 ? VLM_DT_Q8_0
                     : ftype == VLM_FTYPE_Q4_K_M ? VLM_DT_Q4_K : VLM_DT_Q5_K;
    int km = ftype == VLM_FTYPE_Q4_K_M || ftype == VLM_FTYPE_Q5_K_M;
    if (!strcmp(n, "output.weight") || (m->tied && !strcmp(n, "token_embd.weight"))) {
        if (!row_fits(t, p->ne[0])) t = VLM_DT_Q8_0;
        else if (t != VLM_DT_Q8_0) t = VLM_DT_Q6_K;
    } else if (!strcmp(n, "token_embd.weight")) {
        /* keeps the default type */
    } else if (strstr(n, "attn_v.weight") || strstr(n, "attn_qkv.weight") || strstr(n, "attn_kv_b.weight")) {
        if (km && more_bits(m->i_attn_v, m->n_attn_v)) t = VLM_DT_Q6_K;
        m->i_attn_v++;
    } else if (strstr(n, "ffn_down")) {
        if (km && more_bits(m->i_ffn_down, m->n_layer)) t = VLM_DT_Q6_K;
        m->i_ffn_down++;
    }
    return fallback(t, p->ne[0]);
}

/* ---- writing ---- */

/* Source row feeding output row r of a tensor whose rows the converter permuted for RoPE:
 * reshape(heads, 2, hd/2, ...).swapaxes(1, 2). */
static int64_t rope_src_row(int64_t r, int64_t rows, int heads) {
    int64_t hd = rows / heads, h = r / hd, rem = r % hd;
    return h * hd + (rem % 2) * (hd / 2) + rem / 2;
}

static int write_tensor(struct vlm_gguf_writer *w, const struct plan *p, struct vlm_pool *pool, struct vlm_error *err) {
    const struct vlm_tensor *t = p->src;
    int64_t n = p->ne[0], rows = 1;
    for (int d = 1; d < 4; d++) rows *= p->ne[d];
    if (p->rope_heads && p->n_dims == 1) { rows = n; n = 1; }   /* a bias: each element is a row */
    int64_t chunk = (int64_t)((8u << 20) / (size_t)(n * 4));
    if (chunk < 1) chunk = 1;
    if (chunk > rows) chunk = rows;
    size_t src_row = vlm_dtype_row_bytes(t->type, n), dst_row = vlm_dtype_row_bytes(p->type, n);
    float *f = vlm_malloc((size_t)(chunk * n) * sizeof *f);
    uint8_t *q = vlm_malloc((size_t)chunk * dst_row);
    int rc = f && q ? VLM_OK : vlm_error_set(err, VLM_E_NOMEM, "out of memory (tensor %s)", p->name);
    for (int64_t r0 = 0; r0 < rows && rc == VLM_OK; r0 += chunk) {
        int64_t m = rows - r0 < chunk ? rows - r0 : chunk;
        for (int64_t i = 0; i < m; i++) {
            int64_t r = p->rope_heads ? rope_src_row(r0 + i, rows, p->rope_heads) : r0 + i;
            vlm_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * src_row, f + i * n, n);
        }
        rc = vlm_quantize_rows(pool, p->type, q, VLM_DT_F32, f, m, n);
        if (rc != VLM_OK) rc = vlm_error_set(err, rc, "tensor %s: cannot convert to %s", p->name, vlm_dtype_name(p->type));
        else rc = vlm_gguf_writer_data(w, q, (size_t)m * dst_row, err);
    }
    vlm_free(f);
    vlm_free(q);
    return rc;
}

/* Writes one file: metadata by meta(), then the planned tensors. */
static int write_file(const char *path, const struct vlm_gguf_export_family *fam, int vision,
                      const struct vlm_gguf_export_ctx *ctx, struct plan_list *l, struct vlm_pool *pool,
                      const struct vlm_gguf_export_params *prm, struct vlm_error *err) {
    struct vlm_gguf_writer *w = NULL;
    int rc;
    CHK(vlm_gguf_writer_open(path, &w, err));
    struct vlm_gguf_export_ctx c = *ctx;
    c.n_params = 0;
    for (size_t i = 0; i < l->n; i++) c.n_params += (uint64_t)(l->p[i].ne[0] * l->p[i].ne[1] * l->p[i].ne[2] * l->p[i].ne[3]);
    ctx = &c;
    CHK(vision ? fam->vision_meta(w, ctx, err) : fam->text_meta(w, ctx, prm->tokenizer_pre, err));
    for (size_t i = 0; i < l->n; i++) {
        rc = vlm_gguf_write_tensor_info(w, l->p[i].name, l->p[i].type, l->p[i].n_dims, l->p[i].ne, err);
        if (rc != VLM_OK) goto out;
    }
    CHK(vlm_gguf_writer_begin_data(w, err));
    for (size_t i = 0; i < l->n; i++) {
        if (prm->verbose)
            fprintf(stderr, "%-40s %-5s -> %-5s [%lld, %lld, %lld, %lld]\n", l->p[i].name, vlm_dtype_name(l->p[i].src->type),
                    vlm_dtype_name(l->p[i].type), (long long)l->p[i].ne[0], (long long)l->p[i].ne[1],
                    (long long)l->p[i].ne[2], (long long)l->p[i].ne[3]);
        CHK(write_tensor(w, &l->p[i], pool, err));
    }
    CHK(vlm_gguf_writer_finish(w, err));
out:
    if (rc != VLM_OK && !strstr(err->msg, path)) vlm_error_prefix(err, "%s", path);
    vlm_gguf_writer_free(w);
    return rc;
}

int vlm_gguf_export_name(struct vlm_gguf_writer *w, const struct vlm_gguf_export_ctx *c, struct vlm_error *err) {
    double n = (double)c->n_params, scaled;
    const char *suffix;
    if (n > 1e12) { scaled = n * 1e-12; suffix = "T"; }
    else if (n > 1e9) { scaled = n * 1e-9; suffix = "B"; }
    else if (n > 1e6) { scaled = n * 1e-6; suffix = "M"; }
    else { scaled = n * 1e-3; suffix = "K"; }
    /* as many decimals as make two significant digits: 1.2K, 26K, 135M */
    char whole[32], label[48];
    snprintf(whole, sizeof whole, "%.0f", scaled);
    const char *digits = whole;
    while (*digits == '0') digits++;
    int fix = 2 - (int)strlen(digits);
    snprintf(label, sizeof label, "%.*f%s", fix > 0 ? fix : 0, scaled, suffix);
    int rc = vlm_gguf_write_cstr(w, "general.name", c->name, err);
    return rc == VLM_OK ? vlm_gguf_write_cstr(w, "general.size_label", label, err) : rc;
}

/* general.name as the converter derives it from a folder name: words title-cased. */
static void folder_name(const char *dir, char *out, size_t size) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t s = n;
    while (s > 0 && dir[s - 1] != '/') s--;
    size_t k = 0;
    int start = 1;
    for (size_t i = s; i < n && k + 1 < size; i++) {
        char c = dir[i] == '-' || dir[i] == '_' ? ' ' : dir[i];
        out[k++] = start && c != ' ' ? (char)toupper((unsigned char)c) : c;
        start = c == ' ';
    }
    out[k] = 0;
}

int vlm_gguf_export(const struct vlm_gguf_export_params *prm, struct vlm_error *err) {
    struct vlm_config cfg = {0};
    struct vlm_weights w;
    struct plan_list text = {0}, vis = {0};
    struct vlm_pool *pool = NULL;
    struct vlm_gguf_export_info info = {0};
    char name[128];
    int rc;
    vlm_weights_init(&w);
    int ft = prm->ftype;
    if (!strcmp(vlm_gguf_ftype_name(ft), "?")) { rc = vlm_error_set(err, VLM_E_INVALID, "unknown file type %d", ft); goto out; }
    int quant = ft == VLM_FTYPE_Q4_0 || ft == VLM_FTYPE_Q4_K_M || ft == VLM_FTYPE_Q5_K_M || ft == VLM_FTYPE_Q8_0;
    int mft = prm->mmproj_ftype >= 0 ? prm->mmproj_ftype : ft == VLM_FTYPE_Q8_0 || !quant ? ft : VLM_FTYPE_F16;
    if (prm->mmproj_out && mft != VLM_FTYPE_F32 && mft != VLM_FTYPE_F16 && mft != VLM_FTYPE_BF16 && mft != VLM_FTYPE_Q8_0) {
        rc = vlm_error_set(err, VLM_E_INVALID, "mmproj type %s: the converter writes f32, f16, bf16 or q8_0 vision files", vlm_gguf_ftype_name(mft));
        goto out;
    }
    if (prm->mmproj_out && !strcmp(prm->mmproj_out, prm->out)) {
        rc = vlm_error_set(err, VLM_E_INVALID, "%s: the text and mmproj files need different names", prm->out);
        goto out;
    }
    CHK(vlm_config_load(prm->src_dir, &cfg, err));
    const struct vlm_gguf_export_family *fam = NULL;
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (!strcmp(cfg.arch, families[i]->hf_arch)) fam = families[i];
    if (!fam) {
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: architecture \"%s\" has no GGUF export yet (Idefics3ForConditionalGeneration)", cfg.path, cfg.arch);
        goto out;
    }
    const struct vlm_gguf_family *names = vlm_gguf_family_find(fam->text_arch, fam->projector);
    if (!names) { rc = vlm_error_set(err, VLM_E_INTERNAL, "no GGUF name table for %s + %s", fam->text_arch, fam->projector); goto out; }
    CHK(fam->info(&cfg, &info, err));
    CHK(vlm_safetensors_load_dir(prm->src_dir, &w, err));
    folder_name(prm->src_dir, name, sizeof name);
    struct vlm_gguf_export_ctx ctx = {&cfg, prm->src_dir, name, ft, &w, &info, 0};

    CHK(plan_names(&text, &w, names->text_names, info.n_layer, info.n_head, info.n_head_kv,
                   info.tied ? "lm_head.weight" : NULL, err));
    struct mix mx = {0, 0, 0, info.n_layer, 1};
    qsort(text.p, text.n, sizeof *text.p, plan_cmp);
    for (size_t i = 0; i < text.n; i++) {
        if (strstr(text.p[i].name, "attn_v.weight") || strstr(text.p[i].name, "attn_qkv.weight")) mx.n_attn_v++;
        if (!strcmp(text.p[i].name, "output.weight")) mx.tied = 0;
    }
    for (size_t i = 0; i < text.n; i++) {
        /* the converter's file llama-quantize starts from: bf16 for a bf16 checkpoint, else f16 */
        enum vlm_dtype base = converter_type(&text.p[i], text.p[i].src->type == VLM_DT_BF16 ? VLM_FTYPE_BF16 : VLM_FTYPE_F16, 0);
        text.p[i].type = quant ? quantize_type(&text.p[i], ft, base, &mx) : converter_type(&text.p[i], ft, 0);
    }
    int nth = prm->n_threads > 0 ? prm->n_threads : 1;
    if (nth > 1 && !(pool = vlm_pool_new(nth))) { rc = vlm_error_set(err, VLM_E_NOMEM, "cannot start %d threads", nth); goto out; }
    CHK(write_file(prm->out, fam, 0, &ctx, &text, pool, prm, err));

    if (prm->mmproj_out) {
        ctx.ftype = mft;
        CHK(plan_names(&vis, &w, names->vision_names, info.n_layer_vision, 0, 0, NULL, err));
        qsort(vis.p, vis.n, sizeof *vis.p, plan_cmp);
        for (size_t i = 0; i < vis.n; i++)
            vis.p[i].type = converter_type(&vis.p[i], mft, fam->force_f32 && fam->force_f32(vis.p[i].src_name));
        CHK(write_file(prm->mmproj_out, fam, 1, &ctx, &vis, pool, prm, err));
    }
out:
    vlm_pool_free(pool);
    vlm_free(text.p);
    vlm_free(vis.p);
    vlm_weights_free(&w);
    vlm_config_free(&cfg);
    return rc;
}
