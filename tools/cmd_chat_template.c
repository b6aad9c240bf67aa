/* cmd_chat_template.c — `vlm chat-template`: renders a model's chat template for a conversation
 * exactly as transformers' apply_chat_template(..., tokenize=False) and prints it verbatim. */
#include "commands.h"
#include "engine/prompt.h"
#include "text/chat_template.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: vlm chat-template [MODEL_DIR] --messages FILE.json [--no-generation-prompt]\n"
            "                         [--continue-final-message] [--kwargs JSON] [--template FILE]\n"
            "                         [--content-format auto|string|openai]\n\n"
            "Prints the prompt the model's chat template makes of a conversation, byte for byte as\n"
            "transformers' apply_chat_template(messages, tokenize=False, add_generation_prompt=True)\n"
            "(no newline is added). MODEL_DIR defaults to the bundled demo model.\n\n"
            "  --messages FILE.json      a list of messages, or an object with \"messages\" (an OpenAI\n"
            "                            request body); '-' reads standard input\n"
            "  --no-generation-prompt    add_generation_prompt=False\n"
            "  --continue-final-message  leave the last message open (continue_final_message=True;\n"
            "                            implies --no-generation-prompt)\n"
            "  --kwargs JSON             extra template variables, e.g. '{\"enable_thinking\": false}'\n"
            "  --template FILE           use this template instead of the model's\n"
            "  --content-format F        string content as is (string), as one text part (openai), or\n"
            "                            as the template needs (auto, the default): the prompt `vlm serve`\n"
            "                            makes (vLLM's --chat-template-content-format)\n\n"
            "The template is found as transformers does: chat_template.jinja, chat_template.json,\n"
            "then tokenizer_config.json \"chat_template\" (\"default\" of a named list). Special tokens\n"
            "(bos_token, eos_token, ..., image_token) come from tokenizer_config.json and\n"
            "special_tokens_map.json. A processor template (chat_template.jinja/.json) sees OpenAI\n"
            "image_url parts as {\"type\": \"image\", \"url\": ...}, as a transformers processor does.\n\n" VLM_MODEL_REF_HELP);
}

static json_t *load_messages(const char *path, struct vlm_error *err) {
    json_error_t je;
    json_t *j = !strcmp(path, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &je)
                                   : json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        vlm_error_set(err, VLM_E_FORMAT, "%s: line %d: %s", path, je.line, je.text);
        return NULL;
    }
    if (json_is_object(j)) {
        json_t *m = json_incref(json_object_get(j, "messages"));
        json_decref(j);
        j = m;
    }
    if (!json_is_array(j)) {
        json_decref(j);
        vlm_error_set(err, VLM_E_FORMAT, "%s: expected a list of messages or an object with \"messages\"", path);
        return NULL;
    }
    return j;
}

/* Each message whose content is a string gets it as [{"type": "text", "text": ...}]. */
static void strings_as_parts(json_t *msgs) {
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        json_t *c = json_object_get(m, "content");
        if (json_is_string(c)) json_object_set_new(m, "content", json_pack("[{s:s, s:O}]", "type", "text", "text", c));
    }
}

static int render(const char *dir, const char *messages_path, int gen, int cont, const char *kwargs,
                  const char *tpl_path, int content_format) {
    struct vlm_error err;
    vlm_error_clear(&err);
    char *src = NULL, *out = NULL;
    size_t n = 0, len = 0;
    json_t *msgs = NULL, *special = NULL, *extra = NULL;
    struct vlm_template *t = NULL;
    int rc;
    if (tpl_path) rc = vlm_read_file(tpl_path, 4u << 20, &src, &n, &err);
    else rc = vlm_chat_template_find(dir, &src, &n, &err);
    if (!rc && !(msgs = load_messages(messages_path, &err))) rc = err.code;
    if (!rc) rc = vlm_chat_template_special_tokens(dir, &special, &err);
    if (!rc && kwargs) {
        json_error_t je;
        extra = json_loads(kwargs, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(extra)) rc = vlm_error_set(&err, VLM_E_INVALID, "--kwargs: expected a JSON object (%s)", je.text);
    }
    if (!rc) rc = vlm_template_parse(src, n, &t, &err);
    /* as the server does (vLLM's content format "auto"): a template that loops over content
       parts gets string content as one text part */
    if (!rc && (content_format > 0 || (content_format < 0 && vlm_template_wants_parts(src)))) strings_as_parts(msgs);
    if (!rc) {
        struct vlm_chat_template_opts o = {
            .add_generation_prompt = gen && !cont,
            .continue_final_message = cont,
            .flags = !tpl_path && vlm_chat_template_is_processor(dir) ? VLM_CHAT_TEMPLATE_PROCESSOR : 0,
            .kwargs = extra,
        };
        rc = vlm_chat_template_apply(t, special, msgs, &o, &out, &len, &err);
    }
    if (!rc && fwrite(out, 1, len, stdout) != len) rc = vlm_error_set(&err, VLM_E_IO, "writing the prompt failed");
    if (rc) fprintf(stderr, "vlm chat-template: %s\n", err.msg);
    vlm_free(out);
    vlm_free(src);
    vlm_template_free(t);
    json_decref(msgs);
    json_decref(special);
    json_decref(extra);
    return rc ? 1 : 0;
}

int cmd_chat_template(int argc, char **argv) {
    const char *dir = NULL, *messages = NULL, *kwargs = NULL, *tpl = NULL;
    int gen = 1, cont = 0, content_format = -1;
    struct vlm_model_ref ref = {0};
    char *resolved = NULL;
    for (int i = 1; i < argc; i++) {
        { int k_ = vlm_model_ref_flag(&ref, "chat-template", argc, argv, &i); if (k_ < 0) return 2; if (k_) continue; }
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-generation-prompt")) { gen = 0; continue; }
        if (!strcmp(a, "--continue-final-message")) { cont = 1; continue; }
        if (!strcmp(a, "--content-format") && i + 1 < argc) {
            const char *v = argv[++i];
            content_format = !strcmp(v, "string") ? 0 : !strcmp(v, "openai") ? 1 : !strcmp(v, "auto") ? -1 : -2;
            if (content_format == -2) { fprintf(stderr, "vlm chat-template: --content-format takes auto, string or openai\n"); return 2; }
            continue;
        }
        if ((!strcmp(a, "--messages") || !strcmp(a, "--kwargs") || !strcmp(a, "--template")) && i + 1 < argc) {
            const char **dst = a[2] == 'm' ? &messages : a[2] == 'k' ? &kwargs : &tpl;
            *dst = argv[++i];
            continue;
        }
        if (a[0] == '-' && a[1]) {
            fprintf(stderr, "vlm chat-template: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
        if (dir) { fprintf(stderr, "vlm chat-template: more than one MODEL_DIR\n\n"); usage(stderr); return 2; }
        dir = a;
    }
    if (!messages) { usage(stderr); return 2; }
    ref.no_weights = true;
    if (vlm_model_ref_resolve("chat-template", dir ? dir : vlm_tool_default_model(), &ref, false, &resolved)) return 1;
    int rc = render(resolved, messages, gen, cont, kwargs, tpl, content_format);
    vlm_free(resolved);
    return rc;
}
