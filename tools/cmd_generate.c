/* cmd_generate.c — `vlm generate`: one user turn (images, then text) through the model's chat
 * template, streamed to stdout; with --json one object with text, token ids, log-probabilities
 * and timing. The offline path of transformers' apply_chat_template + generate. */
#include "commands.h"
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
    fprintf(f, "usage: vlm generate [MODEL_DIR] [--image FILE_OR_URL]... --prompt TEXT [options]\n\n"
               "Applies the model's chat template to one user turn (the images, then TEXT) and\n"
               "generates, streaming the text to stdout. MODEL_DIR defaults to the bundled demo model.\n"
               "  --image X          an image file, or an http(s)://, file:// or data: URL (repeatable)\n"
               "  --prompt TEXT      the user's text\n"
               "  --max-tokens N     new tokens at most (default 256)\n"
               "  --temperature T    0 = greedy (default: the model's generation_config.json, else 0)\n"
               "  --top-p P, --top-k K, --min-p P, --repetition-penalty R   sampling filters\n"
               "  --seed S           reproducible sampling\n"
               "  --stop S           stop string (repeatable)\n"
               "  --threads N        threads (default: all cores)\n"
               "  --mmproj FILE      the vision file (llama.cpp mmproj .gguf) of a .gguf model\n"
               "  --dtype T          auto (bf16 products for a bf16 checkpoint), float32, bfloat16, float16\n"
               "  --quantization Q   quantize on load: q8_0, q4_k, q5_k, q6_k, q4_0, q4_1, q5_0, q5_1\n"
               "  --json             print one JSON object: text, token_ids, logprobs, timing\n");
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
    if (rc != VLM_OK) {
        fprintf(stderr, "vlm generate: %s: %s\n", arg, err.msg[0] ? err.msg : vlm_strerror(rc));
        return rc;
    }
    out->data = data;
    out->len = n;
    return VLM_OK;
}

static void print_json(const struct vlm_generate_result *r) {
    json_t *ids = json_array(), *lps = json_array();
    for (int i = 0; i < r->n_tokens; i++) {
        json_array_append_new(ids, json_integer(r->token_ids[i]));
        json_array_append_new(lps, json_real(r->logprobs[i]));
    }
    double dec_s = r->t_decode_ms / 1e3, pre_s = r->t_prefill_ms / 1e3;
    json_t *o = json_pack("{s:s, s:o, s:o, s:s, s:{s:i, s:i}, s:{s:f, s:f, s:f, s:f, s:f}}",
        "text", r->text, "token_ids", ids, "logprobs", lps, "finish_reason", r->finish_reason,
        "usage", "prompt_tokens", r->n_prompt_tokens, "completion_tokens", r->n_tokens,
        "timing", "image_encode_ms", r->t_image_ms, "prefill_ms", r->t_prefill_ms, "decode_ms", r->t_decode_ms,
        "prefill_tokens_per_s", pre_s > 0 ? r->n_prompt_tokens / pre_s : 0.0,
        "decode_tokens_per_s", dec_s > 0 && r->n_tokens > 1 ? (r->n_tokens - 1) / dec_s : 0.0);
    char *s = o ? json_dumps(o, JSON_ENSURE_ASCII) : NULL;
    if (s) printf("%s\n", s);
    free(s);
    json_decref(o);
}

int cmd_generate(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *image_args[MAX_IMAGES], *stops[16];
    int n_images = 0, n_stop = 0, json = 0;
    struct vlm_generate_params gp = vlm_generate_default_params();
    struct vlm_model_params mp = vlm_model_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int has = v != NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--image") && has) { if (n_images == MAX_IMAGES) { fprintf(stderr, "vlm generate: at most %d images\n", MAX_IMAGES); return 2; } image_args[n_images++] = v; i++; }
        else if (!strcmp(a, "--prompt") && has) { prompt = v; i++; }
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
        else { fprintf(stderr, "vlm generate: unknown or incomplete option '%s'\n\n", a); usage(stderr); return 2; }
    }
    if (!prompt) { fprintf(stderr, "vlm generate: --prompt is required\n\n"); usage(stderr); return 2; }
    if (gp.max_tokens <= 0) { fprintf(stderr, "vlm generate: --max-tokens must be positive\n"); return 2; }
    if (!dir) dir = vlm_tool_default_model();
    struct vlm_image_bytes imgs[MAX_IMAGES];
    int rc = 0, loaded = 0;
    for (int i = 0; i < n_images && rc == 0; i++, loaded++) rc = load_image(image_args[i], &imgs[i]) == VLM_OK ? 0 : 1;
    if (rc) loaded--;
    struct vlm_model *m = NULL;
    if (rc == 0 && vlm_model_load(dir, &mp, &m) != VLM_OK) {
        fprintf(stderr, "vlm generate: %s\n", vlm_last_error());
        rc = 1;
    }
    json_t *content = json_array();
    for (int i = 0; i < n_images; i++) json_array_append_new(content, json_pack("{s:s}", "type", "image"));
    json_array_append_new(content, json_pack("{s:s, s:s}", "type", "text", "text", prompt));
    json_t *msgs = json_pack("[{s:s, s:o}]", "role", "user", "content", content);
    char *mj = msgs ? json_dumps(msgs, 0) : NULL;
    if (rc == 0) {
        gp.stop = stops;
        gp.n_stop = n_stop;
        if (!json) gp.on_text = on_text;
        struct vlm_generate_result r;
        if (vlm_generate(m, mj, imgs, n_images, &gp, &r) != VLM_OK) {
            fprintf(stderr, "vlm generate: %s\n", vlm_last_error());
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
    return rc;
}
