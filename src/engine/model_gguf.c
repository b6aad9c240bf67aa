/* model_gguf.c — a model from llama.cpp's GGUF files: the text file and the vision mmproj are
 * parsed, mapped by the family's GGUF table (models/gguf_family.h) into the weight map and a
 * config, then loaded by the family exactly as from safetensors; the tokenizer, chat template
 * and image processor come from metadata. */
#include "engine/model_gguf.h"

#include "engine/prompt.h"
#include "vlm.h"

#include <dirent.h>
#include <string.h>

#include "formats/gguf.h"
#include "models/gguf_family.h"
#include "models/model.h"
#include "models/processor.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

int vlm_model_is_gguf(const char *path) {
    if (vlm_file_exists(path)) return ends_with(path, ".gguf");
    if (!vlm_dir_exists(path)) return 0;
    char *cfg = vlm_path_join(path, "config.json");
    int has_cfg = cfg && vlm_file_exists(cfg), found = 0;
    vlm_free(cfg);
    if (has_cfg) return 0;
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) && !found) found = ends_with(e->d_name, ".gguf");
    if (d) closedir(d);
    return found;
}

/* Maps and parses path into a new file of w; g's views point into that mapping. */
static int open_gguf(struct vlm_weights *w, const char *path, struct vlm_gguf *g, int *file, struct vlm_error *err) {
    struct vlm_mmap mm;
    int rc = vlm_mmap_file(path, &mm, err);
    if (rc != VLM_OK) return rc;
    int f = vlm_weights_add_file(w, path, &mm, err);
    if (f < 0) { vlm_munmap(&mm); return f; }
    *file = f;
    return vlm_gguf_parse(w->maps[f].data, w->maps[f].size, w->files[f], g, err);
}

/* A folder: its one text .gguf and at most one mmproj (general.architecture "clip"). */
static int find_in_dir(const char *dir, char **text, char **mmproj, struct vlm_error *err) {
    DIR *d = opendir(dir);
    if (!d) return vlm_error_set(err, VLM_E_IO, "%s: cannot open the folder", dir);
    struct dirent *e;
    int rc = VLM_OK;
    while (rc == VLM_OK && (e = readdir(d))) {
        if (!ends_with(e->d_name, ".gguf")) continue;
        char *p = vlm_path_join(dir, e->d_name);
        struct vlm_weights tmp;
        struct vlm_gguf g;
        int f;
        vlm_weights_init(&tmp);
        if (!p) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        else rc = open_gguf(&tmp, p, &g, &f, err);
        int parsed = rc == VLM_OK;
        char **slot = parsed && !strcmp(g.arch, "clip") ? mmproj : text;
        if (rc == VLM_OK && *slot)
            rc = vlm_error_set(err, VLM_E_INVALID, "%s: more than one %s file (%s, %s); name the files instead",
                               dir, slot == mmproj ? "mmproj" : "text model", *slot, p);
        if (rc == VLM_OK) { *slot = p; p = NULL; }
        if (parsed) vlm_gguf_free(&g);
        vlm_weights_free(&tmp);
        vlm_free(p);
    }
    closedir(d);
    if (rc == VLM_OK && !*text) rc = vlm_error_set(err, VLM_E_NOT_FOUND, "%s: no text-model .gguf file", dir);
    return rc;
}

static int special_tokens(const struct vlm_gguf *g, json_t **out, struct vlm_error *err) {
    static const char *const keys[][2] = {{"tokenizer.ggml.bos_token_id", "bos_token"}, {"tokenizer.ggml.eos_token_id", "eos_token"},
                                          {"tokenizer.ggml.unknown_token_id", "unk_token"}, {"tokenizer.ggml.padding_token_id", "pad_token"}};
    const struct vlm_gguf_kv *tk;
    int rc = vlm_gguf_get_arr(g, "tokenizer.ggml.tokens", VLM_GGUF_STRING, &tk, err);
    if (rc != VLM_OK) return rc;
    *out = json_object();
    if (!*out) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    for (size_t k = 0; tk && k < sizeof keys / sizeof keys[0]; k++) {
        long long id;
        if ((rc = vlm_gguf_get_int(g, keys[k][0], -1, -1, (long long)tk->n - 1, &id, err)) != VLM_OK) return rc;
        if (id < 0) continue;
        size_t pos = tk->offset, len = 0;
        const char *s = NULL;
        for (long long i = 0; i <= id; i++) vlm_gguf_arr_str(g, &pos, &s, &len);
        json_object_set_new(*out, keys[k][1], json_stringn(s, len));
    }
    return VLM_OK;
}

/* Spellings llama.cpp ends generation on wherever the vocabulary has them (llama-vocab.cpp's
 * end-of-generation list), besides eos_token_id / eot_token_id / eom_token_id. */
static const char *const eog_spellings[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
    "<|eom_id|>", "<EOT>", "<end_of_utterance>", "<eos>",
};

static void add_eos(struct vlm_model *m, long long id) {
    if (id < 0 || id >= m->info.n_vocab || m->info.n_eos >= VLM_MAX_EOS) return;
    for (int i = 0; i < m->info.n_eos; i++)
        if (m->info.eos_ids[i] == id) return;
    m->info.eos_ids[m->info.n_eos++] = (int32_t)id;
}

/* BOS, and the ids llama.cpp stops on: eos/eot/eom ids, then the end-of-generation spellings. */
static int read_ids(struct vlm_model *m, const struct vlm_gguf *g, struct vlm_error *err) {
    static const char *const keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"};
    long long bos, id, hi = m->info.n_vocab - 1;
    int rc = vlm_gguf_get_int(g, "tokenizer.ggml.bos_token_id", -1, -1, hi, &bos, err);
    for (size_t k = 0; rc == VLM_OK && k < sizeof keys / sizeof keys[0]; k++)
        if ((rc = vlm_gguf_get_int(g, keys[k], -1, -1, hi, &id, err)) == VLM_OK) add_eos(m, id);
    if (rc != VLM_OK) return rc;
    for (size_t k = 0; k < sizeof eog_spellings / sizeof eog_spellings[0]; k++)
        add_eos(m, vlm_gguf_token_id(g, eog_spellings[k]));
    m->info.bos_id = (int32_t)bos;
    m->info.gen_temperature = 1.0f;
    m->info.gen_top_p = 1.0f;
    m->info.gen_repetition_penalty = 1.0f;
    return VLM_OK;
}

static int load_text_parts(struct vlm_model *m, const struct vlm_gguf *text, const struct vlm_gguf *mm,
                           const struct vlm_gguf_family *fam, struct vlm_error *err) {
    int rc = vlm_tokenizer_from_gguf(text, &m->tok, err);
    char *src = NULL;
    if (rc == VLM_OK) rc = vlm_gguf_get_str(text, "tokenizer.chat_template", &src, err);
    if (rc == VLM_OK && src) {
        rc = vlm_template_parse(src, strlen(src), &m->tmpl, err);
        if (rc != VLM_OK) vlm_error_prefix(err, "%s: tokenizer.chat_template", text->fname);
        m->template_wants_parts = vlm_template_wants_parts(src);
        if (rc == VLM_OK) rc = special_tokens(text, &m->special_tokens, err);
    }
    vlm_free(src);
    if (rc == VLM_OK && mm && fam->processor) {
        json_t *pre = json_object(), *proc = json_object();
        rc = pre && proc ? fam->processor(mm, pre, proc, err) : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        if (rc == VLM_OK) rc = vlm_processor_load_json("", pre, proc, &m->proc, err);
        if (rc != VLM_OK) vlm_error_prefix(err, "%s", mm->fname);
        json_decref(pre);
        json_decref(proc);
    }
    return rc;
}

static int build_config(struct vlm_model *m, const struct vlm_gguf_family *fam, const struct vlm_gguf *text,
                        const struct vlm_gguf *mm, struct vlm_error *err) {
    m->cfg.root = json_object();
    m->cfg.path = vlm_strdup(text->fname);
    if (!m->cfg.root || !m->cfg.path) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int rc = fam->config(text, mm, m->cfg.root, err);
    if (rc != VLM_OK) return rc;
    json_t *a = json_array_get(json_object_get(m->cfg.root, "architectures"), 0);
    json_t *mt = json_object_get(m->cfg.root, "model_type");
    m->cfg.arch = json_is_string(a) ? json_string_value(a) : "";
    m->cfg.model_type = json_is_string(mt) ? json_string_value(mt) : "";
    return VLM_OK;
}

static int load_pair(struct vlm_model *m, const char *text_path, const char *mm_path, const struct vlm_model_params *p,
                     struct vlm_gguf *text, struct vlm_gguf *mm, struct vlm_error *err) {
    int ft = 0, fm = 0, rc = open_gguf(&m->weights, text_path, text, &ft, err);
    if (rc == VLM_OK && mm_path) rc = open_gguf(&m->weights, mm_path, mm, &fm, err);
    if (rc != VLM_OK) return rc;
    char *proj = NULL;
    if (mm_path && (rc = vlm_gguf_get_str(mm, "clip.projector_type", &proj, err)) != VLM_OK) return rc;
    if (mm_path && !proj) return vlm_error_set(err, VLM_E_FORMAT, "%s: no clip.projector_type (not an mmproj file?)", mm_path);
    const struct vlm_gguf_family *fam = vlm_gguf_family_find(text->arch, proj);
    if (!fam) {
        char names[256];
        vlm_gguf_family_names(names, sizeof names);
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: GGUF architecture \"%.64s\"%s%.64s is not supported%s (supported: %s)",
                           text_path, text->arch, proj ? " with mmproj projector " : "", proj ? proj : "",
                           proj ? "" : " without an mmproj file (give one with --mmproj)", names);
        vlm_free(proj);
        return rc;
    }
    vlm_free(proj);
    int nh, nkv;
    if ((rc = fam->heads(text, &nh, &nkv, err)) != VLM_OK) return rc;
    if ((rc = vlm_gguf_add_tensors(&m->weights, text, ft, fam->text_names, nh, nkv, NULL, err)) != VLM_OK) return rc;
    if (mm_path && (rc = vlm_gguf_add_tensors(&m->weights, mm, fm, fam->vision_names, 0, 0, NULL, err)) != VLM_OK) return rc;
    if ((rc = vlm_model_prepare_weights(m, p, err)) != VLM_OK) return rc;
    if ((rc = build_config(m, fam, text, mm_path ? mm : NULL, err)) != VLM_OK) return rc;
    m->family = vlm_family_find(m->cfg.arch);
    if (!m->family) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: no family for \"%s\"", text_path, m->cfg.arch);
    if ((rc = m->family->load(m, err)) != VLM_OK) return rc;
    m->info.arch = m->cfg.arch;
    m->info.dir = m->dir;
    m->info.weight_bytes = m->weights.total_bytes;
    if ((rc = read_ids(m, text, err)) != VLM_OK) return rc;
    return p->load_tokenizer ? load_text_parts(m, text, mm_path ? mm : NULL, fam, err) : VLM_OK;
}

int vlm_model_load_gguf(struct vlm_model *m, const char *path, const struct vlm_model_params *p,
                        struct vlm_error *err) {
    const char *mmproj = p->mmproj;
    char *text_path = NULL, *mm_path = NULL;
    int rc = VLM_OK;
    if (vlm_dir_exists(path)) rc = find_in_dir(path, &text_path, &mm_path, err);
    else if (!(text_path = vlm_strdup(path))) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (rc == VLM_OK && mmproj) {
        vlm_free(mm_path);
        if (!(mm_path = vlm_strdup(mmproj))) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    struct vlm_gguf text, mm;
    memset(&text, 0, sizeof text);
    memset(&mm, 0, sizeof mm);
    if (rc == VLM_OK) rc = load_pair(m, text_path, mm_path, p, &text, &mm, err);
    vlm_gguf_free(&text);
    vlm_gguf_free(&mm);
    vlm_free(text_path);
    vlm_free(mm_path);
    return rc;
}
