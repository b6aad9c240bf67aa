/* model.c — loading a model folder: config.json -> family (registry) -> safetensors weight map
 * -> the family's load (shape checks) -> generation_config.json's EOS ids and defaults ->
 * tokenizer, chat template and image processor. GGUF files go to model_gguf.c. */
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/model_gguf.h"
#include "formats/safetensors.h"
#include "formats/weights_prepare.h"
#include "models/model.h"
#include "models/processor.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/threadpool.h"

struct vlm_model_params vlm_model_default_params(void) {
    struct vlm_model_params p;
    memset(&p, 0, sizeof p);
    p.load_tokenizer = 1;
    return p;
}

const struct vlm_model_info *vlm_model_get_info(const struct vlm_model *m) { return &m->info; }
const struct vlm_tokenizer *vlm_model_tokenizer(const struct vlm_model *m) { return m->tok; }
const struct vlm_template *vlm_model_template(const struct vlm_model *m) { return m->tmpl; }
const struct vlm_processor *vlm_model_processor(const struct vlm_model *m) { return m->proc; }

void vlm_model_free(struct vlm_model *m) {
    if (!m) return;
    if (m->family && m->impl) m->family->free(m);
    vlm_weights_free(&m->weights);
    vlm_config_free(&m->cfg);
    vlm_tokenizer_free(m->tok);
    vlm_template_free(m->tmpl);
    vlm_processor_free(m->proc);
    json_decref(m->special_tokens);
    vlm_free(m->dir);
    vlm_free(m);
}

/* Adds the ids of v (an integer or a list of integers) to the EOS list. */
static void add_eos(struct vlm_model *m, json_t *v) {
    if (json_is_integer(v)) {
        json_int_t id = json_integer_value(v);
        if (id < 0 || id >= m->info.n_vocab || m->info.n_eos >= VLM_MAX_EOS) return;
        for (int i = 0; i < m->info.n_eos; i++) if (m->info.eos_ids[i] == id) return;
        m->info.eos_ids[m->info.n_eos++] = (int32_t)id;
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) add_eos(m, json_array_get(v, i));
    }
}

static int read_generation_config(struct vlm_model *m, struct vlm_error *err) {
    char *path = vlm_path_join(m->dir, "generation_config.json"), *text = NULL;
    if (!path) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    json_t *g = NULL, *tc = json_object_get(m->cfg.root, "text_config");
    size_t len;
    int rc = VLM_OK;
    m->info.gen_temperature = 1.0f;
    m->info.gen_top_p = 1.0f;
    m->info.gen_repetition_penalty = 1.0f;
    if (vlm_file_exists(path)) {
        rc = vlm_read_file(path, 1u << 20, &text, &len, err);
        if (rc == VLM_OK) {
            json_error_t je;
            g = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
            if (!json_is_object(g)) rc = vlm_error_set(err, VLM_E_FORMAT, "%s: not a valid JSON object (%s)", path, je.text);
        }
    }
    if (rc == VLM_OK && g) {
        add_eos(m, json_object_get(g, "eos_token_id"));
        json_t *v;
        if ((v = json_object_get(g, "do_sample")) && json_is_boolean(v)) m->info.gen_do_sample = json_is_true(v);
        if ((v = json_object_get(g, "temperature")) && json_is_number(v)) m->info.gen_temperature = (float)json_number_value(v);
        if ((v = json_object_get(g, "top_p")) && json_is_number(v)) m->info.gen_top_p = (float)json_number_value(v);
        if ((v = json_object_get(g, "top_k")) && json_is_integer(v)) m->info.gen_top_k = (int)json_integer_value(v);
        if ((v = json_object_get(g, "repetition_penalty")) && json_is_number(v)) m->info.gen_repetition_penalty = (float)json_number_value(v);
        if ((v = json_object_get(g, "bos_token_id")) && json_is_integer(v)) m->info.bos_id = (int32_t)json_integer_value(v);
    }
    if (m->info.n_eos == 0) {   /* as transformers: generation_config, else the model config */
        add_eos(m, json_object_get(m->cfg.root, "eos_token_id"));
        add_eos(m, json_object_get(tc, "eos_token_id"));
    }
    if (m->info.bos_id < 0) {
        json_t *b = json_object_get(tc, "bos_token_id");
        if (!json_is_integer(b)) b = json_object_get(m->cfg.root, "bos_token_id");
        if (json_is_integer(b)) m->info.bos_id = (int32_t)json_integer_value(b);
    }
    json_decref(g);
    vlm_free(text);
    vlm_free(path);
    return rc;
}

/* Whether a template iterates over or indexes message content (as vLLM's content-format
 * detection decides between "string" and "openai"). */
int vlm_template_wants_parts(const char *src) {
    static const char *const pats[] = {"in message['content']", "in message[\"content\"]", "in message.content",
                                       "['content'][0]", "[\"content\"][0]", "content[0]", "in content"};
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++)
        if (strstr(src, pats[i])) return 1;
    return 0;
}

static int load_text_parts(struct vlm_model *m, struct vlm_error *err) {
    char *tj = vlm_path_join(m->dir, "tokenizer.json"), *pc = vlm_path_join(m->dir, "preprocessor_config.json");
    int rc = VLM_OK;
    if (!tj || !pc) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (rc == VLM_OK && vlm_file_exists(tj)) {
        rc = vlm_tokenizer_load_dir(m->dir, &m->tok, err);
        if (rc == VLM_OK && m->info.n_eos == 0) {
            int32_t e = vlm_tokenizer_eos_id(m->tok);
            if (e >= 0 && e < m->info.n_vocab) m->info.eos_ids[m->info.n_eos++] = e;
        }
    }
    if (rc == VLM_OK) {
        char *src = NULL;
        size_t len = 0;
        struct vlm_error e2;
        vlm_error_clear(&e2);
        if (vlm_chat_template_find(m->dir, &src, &len, &e2) == VLM_OK && src) {
            rc = vlm_template_parse(src, len, &m->tmpl, err);
            m->template_wants_parts = vlm_template_wants_parts(src);
            if (rc != VLM_OK) vlm_error_prefix(err, "%s: chat template", m->dir);
            else rc = vlm_chat_template_special_tokens(m->dir, &m->special_tokens, err);
        }
        vlm_free(src);
    }
    if (rc == VLM_OK && vlm_file_exists(pc)) rc = vlm_processor_load(m->dir, &m->proc, err);
    vlm_free(tj);
    vlm_free(pc);
    return rc;
}

/* --dtype and --quantization (formats/weights_prepare.h), with a pool for the conversions. */
int vlm_model_prepare_weights(struct vlm_model *m, const struct vlm_model_params *p, struct vlm_error *err) {
    enum vlm_dtype_param dt;
    enum vlm_dtype q;
    int rc = vlm_dtype_param_parse(p->dtype, &dt, err);
    if (rc == VLM_OK) rc = vlm_quant_param_parse(p->quantization, &q, err);
    if (rc != VLM_OK) return rc;
    struct vlm_pool *pool = q != VLM_DT_COUNT || dt == VLM_DTYPE_BFLOAT16 || dt == VLM_DTYPE_FLOAT16
                                ? vlm_pool_new(m->n_threads) : NULL;
    rc = vlm_weights_prepare(&m->weights, dt, q, pool, err);
    vlm_pool_free(pool);
    return rc;
}

static int model_load(const char *dir, const struct vlm_model_params *p, struct vlm_model **out,
                      struct vlm_error *err) {
    struct vlm_model *m = vlm_calloc(1, sizeof *m);
    if (!m) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->info.bos_id = -1;
    m->info.image_token_id = -1;
    m->n_threads = p->n_threads;
    vlm_weights_init(&m->weights);
    int rc;
    if (!(m->dir = vlm_strdup(dir))) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto fail; }
    if (vlm_model_is_gguf(dir) || p->mmproj) {
        if ((rc = vlm_model_load_gguf(m, dir, p, err)) != VLM_OK) goto fail;
        *out = m;
        return VLM_OK;
    }
    if (!vlm_dir_exists(dir)) { rc = vlm_error_set(err, VLM_E_NOT_FOUND, "%s: not a model folder", dir); goto fail; }
    if ((rc = vlm_config_load(dir, &m->cfg, err)) != VLM_OK) goto fail;
    m->family = vlm_family_find(m->cfg.arch);
    if (!m->family) {
        char names[256];
        vlm_family_names(names, sizeof names);
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: architecture \"%s\" is not supported (supported: %s)",
                           m->cfg.path, m->cfg.arch, names);
        goto fail;
    }
    if ((rc = vlm_safetensors_load_dir(dir, &m->weights, err)) != VLM_OK) goto fail;
    if ((rc = vlm_model_prepare_weights(m, p, err)) != VLM_OK) goto fail;
    if ((rc = m->family->load(m, err)) != VLM_OK) goto fail;
    m->info.arch = m->cfg.arch;
    m->info.dir = m->dir;
    m->info.weight_bytes = m->weights.total_bytes;
    if ((rc = read_generation_config(m, err)) != VLM_OK) goto fail;
    if (p->load_tokenizer && (rc = load_text_parts(m, err)) != VLM_OK) goto fail;
    *out = m;
    return VLM_OK;
fail:
    vlm_model_free(m);
    return rc;
}

int vlm_model_load(const char *dir, const struct vlm_model_params *params, struct vlm_model **out) {
    struct vlm_error err;
    vlm_error_clear(&err);
    struct vlm_model_params p = params ? *params : vlm_model_default_params();
    *out = NULL;
    if (!dir) return vlm_error_set(&err, VLM_E_INVALID, "no model folder given");
    return model_load(dir, &p, out, &err);
}

int vlm_model_encode_image(const struct vlm_model *m, struct vlm_pool *pool,
                           const struct vlm_image_input *in, float *embd, struct vlm_error *err) {
    if (m->family->image_mode != VLM_IMAGES_SPLICED || m->info.image_token_id < 0)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "this model does not take image embeddings as rows");
    return m->family->encode_image(m, pool, in, embd, err);
}
