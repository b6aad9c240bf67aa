/* cmd_generate.c — `vlm generate`: one user turn (images, then text) through the model's chat
 * template, streamed to stdout; with --json one object with text, token ids, log-probabilities
 * and timing. The offline path of transformers' apply_chat_template + generate. */
#include "commands.h"
#include "serve_args.h"
#include "server/media.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "vlm.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGES 16
#define MAX_IMAGE_BYTES (64u << 20)

static void usage(FILE *f) {
    fprintf(f, "usage: vlm generate [MODEL_DIR] [--image FILE_OR_URL]... (--prompt TEXT | --messages FILE) [options]\n\n"
               "Applies the model's chat template to one user turn (the images, then TEXT) and\n"
               "generates, streaming the text to stdout. MODEL_DIR defaults to the bundled demo model.\n"
               "  --image X          an image file, or an http(s)://, file:// or data: URL (repeatable)\n"
               "  --prompt TEXT      the user's text\n"
               "  --system TEXT      a system message first\n"
               "  --raw              TEXT is a plain completion prompt, no chat template: BOS + TEXT,\n"
               "                     as llama-completion runs it (for base models; no images)\n"
               "  --messages FILE    a conversation (JSON list of OpenAI/HF messages, several turns);\n"
               "                     {\"type\": \"image\"} parts take the --image arguments in order,\n"
               "                     image_url parts name their own file or URL; --prompt adds a turn\n"
               "  --no-splitting     do not split images into tiles (do_image_splitting=false)\n"
               "  --mm-processor-kwargs JSON  processor settings, e.g. '{\"size\": {\"longest_edge\": 512}}'\n"
               "  --max-tokens N     new tokens at most (default 256)\n"
               "  --temperature T    0 = greedy (default: the model's generation_config.json, else 0)\n"
               "  --top-p P, --top-k K, --min-p P, --repetition-penalty R   sampling filters\n"
               "  --seed S           reproducible sampling\n"
               "  --stop S           stop string (repeatable)\n"
               "  --threads N        threads (default: all cores)\n"
               "  --mmproj FILE      the vision file (llama.cpp mmproj .gguf) of a .gguf model\n"
               "  --dtype T          auto (bf16 products for a bf16 checkpoint), float32, bfloat16, float16\n"
               "  --quantization Q   quantize on load: q8_0, q4_k, q5_k, q6_k, q4_0, q4_1, q5_0, q5_1\n"
               "  --json             print one JSON object: text, token_ids, logprobs, prompt_token_ids,\n"
               "                     usage (prompt, completion, total), timing\n\n" VLM_MODEL_REF_HELP);
}

static int on_text(const char *text, size_t len, void *user) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static int load_image(const char *arg, struct vlm_image_bytes *out) {
    struct vlm_error err;
    uint8_t *data = NULL;
    size_t n = 0;
    int rc;
    if (!strncmp(arg, "http://", 7) || !strncmp(arg, "https://", 8) || !strncmp(arg, "data:", 5) ||
        !strncmp(arg, "file://", 7)) {
        struct vlm_media_policy p;
        vlm_media_policy_default(&p);
        p.allow_private = 1;       /* the user's own command line: intranet URLs are theirs to fetch */
        p.local_root = "/";        /* file:// anywhere the user can read */
        p.max_bytes = MAX_IMAGE_BYTES;
        p.timeout_ms = 30000;
        rc = vlm_media_global_init(&err);
        if (rc == VLM_OK) rc = vlm_media_load(&p, arg, strlen(arg), &data, &n, &err);
    } else {
        char *buf = NULL;
        rc = vlm_read_file(arg, MAX_IMAGE_BYTES, &buf, &n, &err);
        data = (uint8_t *)buf;
    }
    if (rc != VLM_OK) {   /* the message names the file already when it comes from the file layer */
        const char *msg = err.msg[0] ? err.msg : vlm_strerror(rc);
        if (strstr(msg, arg)) fprintf(stderr, "vlm generate: %s\n", msg);
        else fprintf(stderr, "vlm generate: %s: %s\n", arg, msg);
        return rc;
    }
    out->data = data;
    out->len = n;
    return VLM_OK;
}

static void print_json(const struct vlm_generate_result *r) {
    json_t *ids = json_array(), *lps = json_array(), *pids = json_array();
    for (int i = 0; i < r->n_tokens; i++) {
        json_array_append_new(ids, json_integer(r->token_ids[i]));
        json_array_append_new(lps, json_real(r->logprobs[i]));
    }
    for (int i = 0; i < r->n_prompt_tokens && r->prompt_ids; i++) json_array_append_new(pids, json_integer(r->prompt_ids[i]));
    double dec_s = r->t_decode_ms / 1e3, pre_s = r->t_prefill_ms / 1e3;
    json_t *o = json_pack("{s:s, s:o, s:o, s:o, s:s, s:{s:i, s:i, s:i}, s:{s:f, s:f, s:f, s:f, s:f}}",
        "text", r->text, "token_ids", ids, "logprobs", lps, "prompt_token_ids", pids, "finish_reason", r->finish_reason,
        "usage", "prompt_tokens", r->n_prompt_tokens, "completion_tokens", r->n_tokens,
        "total_tokens", r->n_prompt_tokens + r->n_tokens,
        "timing", "image_encode_ms", r->t_image_ms, "prefill_ms", r->t_prefill_ms, "decode_ms", r->t_decode_ms,
        "prefill_tokens_per_s", pre_s > 0 ? r->n_prompt_tokens / pre_s : 0.0,
        "decode_tokens_per_s", dec_s > 0 && r->n_tokens > 1 ? (r->n_tokens - 1) / dec_s : 0.0);
    char *s = o ? json_dumps(o, JSON_ENSURE_ASCII) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

static const char *const generate_flags[] = {
    "--image", "--prompt", "--system", "--messages", "--no-splitting", "--mm-processor-kwargs", "--max-tokens",
    "--temperature", "--top-p", "--top-k", "--min-p", "--repetition-penalty", "--seed", "--stop", "--threads",
    "--json", "--raw", "--help"};

/* The conversation: --messages FILE (its image_url parts become {"type": "image"} and their URLs
 * join the image list in order, {"type": "image"} parts take --image arguments), then --system
 * first and --prompt (with the remaining --image arguments) as a last user turn. */
static json_t *build_messages(const char *file, const char *sys, const char *prompt, const char **image_args,
                              int n_args, const char **images, int *n_images) {
    json_error_t je;
    json_t *msgs = file ? json_load_file(file, JSON_REJECT_DUPLICATES, &je) : json_array();
    if (json_is_object(msgs)) { json_t *m = json_incref(json_object_get(msgs, "messages")); json_decref(msgs); msgs = m; }
    if (!json_is_array(msgs)) {
        fprintf(stderr, "vlm generate: %s: %s\n", file, msgs ? "expected a list of messages" : je.text);
        json_decref(msgs);
        return NULL;
    }
    int used = 0;
    *n_images = 0;
    size_t i, j;
    json_t *m, *part;
    json_array_foreach(msgs, i, m) {
        json_t *c = json_object_get(m, "content");
        if (!json_is_array(c)) continue;
        json_array_foreach(c, j, part) {
            const char *t = json_string_value(json_object_get(part, "type"));
            const char *url = json_string_value(json_object_get(json_object_get(part, "image_url"), "url"));
            if (!t || (strcmp(t, "image") && strcmp(t, "image_url"))) continue;
            if (*n_images == MAX_IMAGES) { fprintf(stderr, "vlm generate: at most %d images\n", MAX_IMAGES); json_decref(msgs); return NULL; }
            if (!strcmp(t, "image_url") && url) images[(*n_images)++] = url;
            else if (used < n_args) images[(*n_images)++] = image_args[used++];
            else { fprintf(stderr, "vlm generate: %s: more image parts than --image arguments\n", file); json_decref(msgs); return NULL; }
            json_array_set_new(c, j, json_pack("{s:s}", "type", "image"));
        }
    }
    if (sys) json_array_insert_new(msgs, 0, json_pack("{s:s, s:s}", "role", "system", "content", sys));
    if (prompt) {
        json_t *content = json_array();
        for (; used < n_args && *n_images < MAX_IMAGES; used++) {
            images[(*n_images)++] = image_args[used];
            json_array_append_new(content, json_pack("{s:s}", "type", "image"));
        }
        json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", prompt));
        json_array_append_new(msgs, json_pack("{s:s, s:o}", "role", "user", "content", content));
    }
    if (used < n_args) { fprintf(stderr, "vlm generate: more --image arguments than image parts\n"); json_decref(msgs); return NULL; }
    return msgs;
}

int cmd_generate(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *sys = NULL, *mfile = NULL, *image_args[MAX_IMAGES], *stops[16];
    const char *images[MAX_IMAGES];
    int n_args = 0, n_images = 0, n_stop = 0, json = 0, raw = 0;
    struct vlm_generate_params gp = vlm_generate_default_params();
    struct vlm_model_params mp = vlm_model_default_params();
    struct vlm_model_ref ref = {0};
    char *resolved = NULL;
    for (int i = 1; i < argc; i++) {
        { int k_ = vlm_model_ref_flag(&ref, "generate", argc, argv, &i); if (k_ < 0) return 2; if (k_) continue; }
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int has = v != NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--raw")) raw = 1;
        else if (!strcmp(a, "--no-splitting")) gp.mm_processor_kwargs = "{\"do_image_splitting\": false}";
        else if (!strcmp(a, "--mm-processor-kwargs") && has) { gp.mm_processor_kwargs = v; i++; }
        else if (!strcmp(a, "--image") && has) { if (n_args == MAX_IMAGES) { fprintf(stderr, "vlm generate: at most %d images\n", MAX_IMAGES); return 2; } image_args[n_args++] = v; i++; }
        else if (!strcmp(a, "--prompt") && has) { prompt = v; i++; }
        else if (!strcmp(a, "--system") && has) { sys = v; i++; }
        else if (!strcmp(a, "--messages") && has) { mfile = v; i++; }
        else if (!strcmp(a, "--max-tokens") && has) { gp.max_tokens = (int)strtol(v, NULL, 10); i++; }
        else if (!strcmp(a, "--temperature") && has) { gp.temperature = strtof(v, NULL); i++; }
        else if (!strcmp(a, "--top-p") && has) { gp.top_p = strtof(v, NULL); i++; }
        else if (!strcmp(a, "--top-k") && has) { gp.top_k = (int)strtol(v, NULL, 10); i++; }
        else if (!strcmp(a, "--min-p") && has) { gp.min_p = strtof(v, NULL); i++; }
        else if (!strcmp(a, "--repetition-penalty") && has) { gp.repetition_penalty = strtof(v, NULL); i++; }
        else if (!strcmp(a, "--seed") && has) { gp.seed = strtoull(v, NULL, 10); gp.has_seed = 1; i++; }
        else if (!strcmp(a, "--threads") && has) { mp.n_threads = (int)strtol(v, NULL, 10); i++; }
        else if (!strcmp(a, "--mmproj") && has) { mp.mmproj = v; i++; }
        else if (!strcmp(a, "--dtype") && has) { mp.dtype = v; i++; }
        else if ((!strcmp(a, "--quantization") || !strcmp(a, "-q")) && has) { mp.quantization = v; i++; }
        else if (!strcmp(a, "--stop") && has) { if (n_stop < 16) stops[n_stop++] = v; i++; }
        else if (a[0] != '-' && !dir) dir = a;
        else {
            const char *near = a[0] == '-' ? vlm_nearest_flag(a, generate_flags, (int)(sizeof generate_flags / sizeof generate_flags[0])) : NULL;
            if (near && strcmp(near, a)) fprintf(stderr, "vlm generate: unknown option '%s'; did you mean %s?\n\n", a, near);
            else fprintf(stderr, "vlm generate: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!prompt && !mfile) { fprintf(stderr, "vlm generate: --prompt or --messages is required\n\n"); usage(stderr); return 2; }
    if (gp.max_tokens <= 0) { fprintf(stderr, "vlm generate: --max-tokens must be positive\n"); return 2; }
    if (raw && (!prompt || mfile || sys || n_args)) {
        fprintf(stderr, "vlm generate: --raw takes --prompt only (no --messages, --system or --image)\n");
        return 2;
    }
    if (raw) gp.raw_prompt = prompt;
    if (!dir) dir = vlm_tool_default_model();
    json_t *msgs = build_messages(mfile, sys, prompt, image_args, n_args, images, &n_images);
    if (!msgs) return 2;
    if (vlm_model_ref_resolve("generate", dir, &ref, true, &resolved)) { json_decref(msgs); return 1; }
    dir = resolved;
    struct vlm_image_bytes imgs[MAX_IMAGES];
    int rc = 0, loaded = 0;
    for (int i = 0; i < n_images && rc == 0; i++, loaded++) rc = load_image(images[i], &imgs[i]) == VLM_OK ? 0 : 1;
    if (rc) loaded--;
    struct vlm_model *m = NULL;
    if (rc == 0 && vlm_model_load(dir, &mp, &m) != VLM_OK) {
        fprintf(stderr, "vlm generate: %s\n", vlm_last_error());
        rc = 1;
    }
    char *mj = json_dumps(msgs, 0);
    if (rc == 0) {
        gp.stop = stops;
        gp.n_stop = n_stop;
        if (!json) gp.on_text = on_text;
        struct vlm_generate_result r;
        if (vlm_generate(m, mj, imgs, n_images, &gp, &r) != VLM_OK) {
            const char *e = vlm_last_error();
            int k = 0;   /* "image K: ..." names the file it came from */
            if (sscanf(e, "image %d", &k) == 1 && k >= 1 && k <= n_images) fprintf(stderr, "vlm generate: %s: %s\n", images[k - 1], e);
            else fprintf(stderr, "vlm generate: %s\n", e);
            rc = 1;
        } else {
            if (json) print_json(&r);
            else printf("\n");
            fprintf(stderr, "[%d prompt tokens, %d generated (%s); image %.0f ms, prefill %.0f ms, decode %.1f tok/s]\n",
                    r.n_prompt_tokens, r.n_tokens, r.finish_reason, r.t_image_ms, r.t_prefill_ms,
                    r.t_decode_ms > 0 && r.n_tokens > 1 ? (r.n_tokens - 1) * 1e3 / r.t_decode_ms : 0.0);
            vlm_generate_result_free(&r);
        }
    }
    free(mj);
    json_decref(msgs);
    for (int i = 0; i < loaded; i++) vlm_free((void *)imgs[i].data);
    vlm_model_free(m);
    vlm_free(resolved);
    return rc;
}
