/* prompt.c — chat messages + decoded images -> token ids and image inputs, shared by
 * `vlm generate` and the server. Image parts become {"type":"image"} for the template; each
 * rendered placeholder is replaced by its image's processor text; the text is tokenized with
 * special tokens parsed (as transformers does), and the placeholder and image-token counts are
 * checked against the images so that text can never create or shift an image slot. */
#include "engine/prompt.h"

#include <string.h>

#include "engine/engine.h"
#include "image/image.h"
#include "models/model.h"
#include "models/processor.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

#define PROMPT_MAX_BYTES (64u << 20)

struct vlm_prompt_opts vlm_prompt_default_opts(void) {
    struct vlm_prompt_opts o;
    memset(&o, 0, sizeof o);
    o.add_generation_prompt = 1;
    o.wants_parts = -1;
    return o;
}

static int is_image_part(json_t *part) {
    const char *t = json_string_value(json_object_get(part, "type"));
    return t && (!strcmp(t, "image") || !strcmp(t, "image_url") || !strcmp(t, "input_image"));
}

int vlm_prompt_count_images(json_t *messages) {
    if (!json_is_array(messages)) return -1;
    int n = 0;
    size_t i, j;
    json_t *msg, *part;
    json_array_foreach(messages, i, msg) {
        if (!json_is_object(msg)) return -1;
        json_t *c = json_object_get(msg, "content");
        if (json_is_array(c))
            json_array_foreach(c, j, part) if (json_is_object(part) && is_image_part(part)) n++;
    }
    return n;
}

/* vLLM's "string" content format: the parts of one message as one string, the image
 * placeholders first (one per image), then the text parts, joined by newlines. */
static json_t *parts_as_string(json_t *parts, const char *placeholder) {
    struct vlm_buf b = {0};
    size_t j;
    json_t *part;
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        json_array_foreach(parts, j, part) {
            int img = json_is_object(part) && is_image_part(part);
            const char *t = img ? placeholder : json_string_value(json_object_get(part, "text"));
            if (img != (pass == 0) || !t) continue;
            if ((n++ && vlm_buf_append(&b, "\n", 1)) || vlm_buf_append(&b, t, strlen(t))) { vlm_buf_free(&b); return NULL; }
        }
    json_t *s = json_stringn(b.len ? b.data : "", b.len);
    vlm_buf_free(&b);
    return s;
}

/* A copy of messages where every image part is {"type": "image"} (what HF templates test);
 * format 1 ("openai"): string content becomes one text part; 0 ("string"): a list of parts
 * becomes one string (placeholder text for its images); -1: lists stay lists. */
static json_t *template_messages(json_t *messages, int wants_parts, const char *placeholder) {
    json_t *copy = json_deep_copy(messages);
    size_t i, j;
    json_t *msg, *part;
    if (!copy) return NULL;
    json_array_foreach(copy, i, msg) {
        json_t *c = json_object_get(msg, "content");
        if (wants_parts == 0 && json_is_array(c)) {
            json_t *str = parts_as_string(c, placeholder ? placeholder : "");
            if (!str || json_object_set_new(msg, "content", str)) { json_decref(copy); return NULL; }
            continue;
        }
        if (wants_parts == 1 && json_is_string(c)) {
            json_t *parts = json_pack("[{s:s, s:O}]", "type", "text", "text", c);
            if (!parts || json_object_set_new(msg, "content", parts)) { json_decref(copy); return NULL; }
            continue;
        }
        if (!json_is_array(c)) continue;
        json_array_foreach(c, j, part) {
            if (!json_is_object(part) || !is_image_part(part)) continue;
            json_t *img = json_pack("{s:s}", "type", "image");
            if (!img || json_array_set_new(c, j, img)) { json_decref(copy); return NULL; }
        }
    }
    return copy;
}

void vlm_prompt_free(struct vlm_prompt *p) {
    if (!p) return;
    for (int i = 0; i < p->n_images; i++) vlm_image_input_free(&p->images[i]);
    vlm_free(p->images);
    vlm_free(p->text);
    vlm_free(p->ids);
    vlm_free(p->image_of);
    vlm_free(p->row_of);
    memset(p, 0, sizeof *p);
}

static int render(const struct vlm_model *m, json_t *messages, const struct vlm_prompt_opts *o, char **text,
                  size_t *len, struct vlm_error *err) {
    const struct vlm_template *t = o->template_override ? o->template_override : m->tmpl;
    if (!t) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: the model has no chat template", m->dir);
    int format = o->wants_parts >= 0 ? o->wants_parts : m->template_wants_parts ? 1 : -1;
    json_t *msgs = template_messages(messages, format, m->proc ? vlm_processor_image_placeholder(m->proc) : NULL), *ctx = NULL;
    if (!msgs) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int rc = vlm_chat_template_context(m->special_tokens, msgs, o->add_generation_prompt, 0, &ctx, err);
    json_decref(msgs);
    if (rc != VLM_OK) return rc;
    if (json_is_object(o->chat_template_kwargs)) {
        const char *k;
        json_t *v;
        json_object_foreach(o->chat_template_kwargs, k, v)
            if (strcmp(k, "messages")) json_object_set(ctx, k, v);
    }
    rc = vlm_template_render(t, ctx, NULL, text, len, err);
    json_decref(ctx);
    return rc;
}

/* Replaces the placeholders of text in order with the images' prompt texts. */
static int expand(const char *text, size_t len, const char *ph, struct vlm_image_input *in, int n_images,
                  char **out, struct vlm_error *err) {
    size_t phl = strlen(ph);
    int count = 0;
    for (const char *p = text; phl && (p = memmem(p, len - (size_t)(p - text), ph, phl)); p += phl) count++;
    if (count != n_images)
        return vlm_error_set(err, VLM_E_INVALID, "the prompt has %d image placeholders for %d images (image placeholder text is not allowed in messages)",
                             count, n_images);
    struct vlm_buf b = {0};
    b.max = PROMPT_MAX_BYTES;
    const char *p = text;
    int rc = VLM_OK;
    for (int i = 0; i < n_images && rc == VLM_OK; i++) {
        const char *hit = memmem(p, len - (size_t)(p - text), ph, phl);
        rc = vlm_buf_append(&b, p, (size_t)(hit - p));
        if (rc == VLM_OK) rc = vlm_buf_append(&b, in[i].prompt, strlen(in[i].prompt));
        p = hit + phl;
    }
    if (rc == VLM_OK) rc = vlm_buf_append(&b, p, len - (size_t)(p - text));
    if (rc != VLM_OK) {
        vlm_buf_free(&b);
        return vlm_error_set(err, rc, "prompt too large");
    }
    *out = vlm_buf_take(&b);
    return VLM_OK;
}

/* image_of/row_of per position; checks each image gets exactly its token count. */
static int map_image_rows(const struct vlm_model *m, struct vlm_prompt *p, struct vlm_error *err) {
    p->image_of = vlm_malloc(sizeof(int32_t) * (p->n_ids ? p->n_ids : 1));
    p->row_of = vlm_malloc(sizeof(int32_t) * (p->n_ids ? p->n_ids : 1));
    if (!p->image_of || !p->row_of) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int img = 0, row = 0;
    size_t total = 0;
    for (size_t i = 0; i < p->n_ids; i++) {
        p->image_of[i] = p->row_of[i] = -1;
        if (p->ids[i] != m->info.image_token_id) continue;
        total++;
        if (img >= p->n_images) continue;
        p->image_of[i] = img;
        p->row_of[i] = row;
        if (++row == p->images[img].n_image_tokens) { img++; row = 0; }
    }
    size_t want = 0;
    for (int i = 0; i < p->n_images; i++) want += (size_t)p->images[i].n_image_tokens;
    if (total != want || img != p->n_images)
        return vlm_error_set(err, VLM_E_INVALID, "the prompt has %zu image tokens, the %d images need %zu (image tokens are not allowed in text)",
                             total, p->n_images, want);
    p->n_image_tokens = total;
    return VLM_OK;
}

int vlm_prompt_prepare(const struct vlm_model *m, json_t *messages, const struct vlm_image *const *images,
                       int n_images, const struct vlm_prompt_opts *opts, struct vlm_prompt *out,
                       struct vlm_error *err) {
    struct vlm_prompt_opts o = opts ? *opts : vlm_prompt_default_opts();
    memset(out, 0, sizeof *out);
    int n_parts = vlm_prompt_count_images(messages);
    if (n_parts < 0) return vlm_error_set(err, VLM_E_INVALID, "messages must be an array of objects");
    if (n_parts != n_images)
        return vlm_error_set(err, VLM_E_INVALID, "messages have %d image parts but %d images were given", n_parts, n_images);
    if (!m->tok) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: the model has no tokenizer", m->dir);
    if (n_images > 0 && (!m->proc || m->info.image_token_id < 0))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: the model takes no images (no image processor)", m->dir);
    char *text = NULL;
    size_t len = 0;
    int rc = render(m, messages, &o, &text, &len, err);
    if (rc != VLM_OK) return rc;
    if (n_images > 0) {
        out->images = vlm_calloc((size_t)n_images, sizeof *out->images);
        if (!out->images) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto done; }
        for (int i = 0; i < n_images; i++) {
            rc = vlm_processor_run(m->proc, images[i], o.proc, &out->images[i], err);
            if (rc != VLM_OK) goto done;
            out->n_images = i + 1;
        }
    }
    if (n_images > 0) {
        rc = expand(text, len, vlm_processor_image_placeholder(m->proc), out->images, n_images, &out->text, err);
        if (rc != VLM_OK) goto done;
    } else {
        const char *ph = m->proc ? vlm_processor_image_placeholder(m->proc) : NULL;
        if (ph && *ph && memmem(text, len, ph, strlen(ph))) {
            rc = vlm_error_set(err, VLM_E_INVALID, "image placeholder text is not allowed in messages");
            goto done;
        }
        out->text = text;
        text = NULL;
    }
    /* As transformers' processor apply_chat_template: the tokenizer's special tokens (its
     * post-processor's BOS: LLaVA 1.5's template has none) unless the prompt starts with BOS. */
    const char *bos = vlm_tokenizer_bos_token(m->tok);
    int flags = VLM_TOK_PARSE_SPECIAL;
    if (!*bos || strncmp(out->text, bos, strlen(bos))) flags |= VLM_TOK_ADD_SPECIAL;
    rc = vlm_tokenize(m->tok, out->text, strlen(out->text), flags, &out->ids, &out->n_ids, err);
    if (rc != VLM_OK) goto done;
    if (o.max_tokens && out->n_ids > o.max_tokens) {
        rc = vlm_error_set(err, VLM_E_TOO_LARGE, "the prompt has %zu tokens, more than the %zu allowed", out->n_ids, o.max_tokens);
        goto done;
    }
    rc = map_image_rows(m, out, err);
done:
    vlm_free(text);
    if (rc != VLM_OK) vlm_prompt_free(out);
    return rc;
}
