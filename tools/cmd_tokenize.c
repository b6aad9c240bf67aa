/* cmd_tokenize.c — `vlm tokenize`: prints the ids and pieces of a text, like llama.cpp's
 * llama-tokenize; ids equal HF tokenizers' encode() (file) or AutoTokenizer (folder). */
#include "commands.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

static void usage(FILE *f) {
    fprintf(f, "usage: vlm tokenize [MODEL_DIR | tokenizer.json] (--text TEXT | --file PATH)\n"
               "                    [--no-special] [--no-parse-special] [--json]\n"
               "  MODEL_DIR       a Hugging Face model folder (tokenizer.json + tokenizer_config.json);\n"
               "                  ids as transformers' AutoTokenizer.from_pretrained(MODEL_DIR)(text)\n"
               "  tokenizer.json  ids as tokenizers' Tokenizer.from_file(path).encode(text)\n"
               "  --no-special    do not add BOS/EOS (add_special_tokens=False)\n"
               "  --no-parse-special  treat special-token spellings in the text as plain text\n"
               "  --json          print {\"ids\": [...], \"pieces\": [...]}\n\n" VLM_MODEL_REF_HELP);
}

static int load(const char *path, struct vlm_tokenizer **tok, struct vlm_error *err) {
    if (vlm_dir_exists(path)) return vlm_tokenizer_load_dir(path, tok, err);
    return vlm_tokenizer_load(path, NULL, tok, err);
}

static int print_json(const struct vlm_tokenizer *tok, const int32_t *ids, size_t n) {
    json_t *o = json_object(), *ji = json_array(), *jp = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *p = vlm_tokenizer_piece(tok, ids[i]);
        json_array_append_new(ji, json_integer(ids[i]));
        json_array_append_new(jp, json_string(p ? p : ""));
    }
    json_object_set_new(o, "ids", ji);
    json_object_set_new(o, "pieces", jp);
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(o);
    if (!s) return 1;
    printf("%s\n", s);
    free(s);
    return 0;
}

/* One line per id: the id, the vocabulary piece, and the text it decodes to on its own
 * (quoted; control characters escaped), as llama.cpp's llama-tokenize shows. */
static void print_row(const struct vlm_tokenizer *tok, int32_t id) {
    const char *p = vlm_tokenizer_piece(tok, id);
    char *text = NULL;
    size_t len = 0;
    struct vlm_error err = {0};
    printf("%7d  %-20s  \"", id, p ? p : "");
    if (vlm_detokenize(tok, &id, 1, 0, &text, &len, &err) == VLM_OK) {
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)text[i];
            if (c == '\n') fputs("\\n", stdout);
            else if (c == '\r') fputs("\\r", stdout);
            else if (c == '\t') fputs("\\t", stdout);
            else if (c == '"' || c == '\\') printf("\\%c", c);
            else if (c < 0x20 || c == 0x7f) printf("\\x%02x", c);
            else putchar(c);
        }
    }
    printf("\"\n");
    vlm_free(text);
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL, *text = NULL, *file = NULL;
    int flags = VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL, as_json = 0;
    struct vlm_model_ref ref = {0};
    char *resolved = NULL;
    for (int i = 1; i < argc; i++) {
        { int k_ = vlm_model_ref_flag(&ref, "tokenize", argc, argv, &i); if (k_ < 0) return 2; if (k_) continue; }
        if (!strcmp(argv[i], "--text") && i + 1 < argc) text = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "--no-special")) flags &= ~VLM_TOK_ADD_SPECIAL;
        else if (!strcmp(argv[i], "--no-parse-special")) flags &= ~VLM_TOK_PARSE_SPECIAL;
        else if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(stdout); return 0; }
        else if (argv[i][0] != '-' && !path) path = argv[i];
        else { usage(stderr); return 2; }
    }
    if (!!text == !!file) { usage(stderr); return 2; }
    if (!path) path = vlm_tool_default_model();
    if (!vlm_file_exists(path)) {   /* a tokenizer.json is used as is; folders and hub ids resolve */
        ref.no_weights = true;
        if (vlm_model_ref_resolve("tokenize", path, &ref, false, &resolved)) return 1;
        path = resolved;
    }
    struct vlm_error err = {0};
    struct vlm_tokenizer *tok = NULL;
    char *buf = NULL;
    size_t len = text ? strlen(text) : 0, n = 0;
    int32_t *ids = NULL;
    int rc = load(path, &tok, &err);
    if (!rc && file) rc = vlm_read_file(file, (size_t)1 << 30, &buf, &len, &err);
    if (!rc) rc = vlm_tokenize(tok, file ? buf : text, len, flags, &ids, &n, &err);
    int status = 0;
    if (rc) {
        fprintf(stderr, "vlm tokenize: %s\n", err.msg);
        status = 1;
    } else if (as_json) {
        status = print_json(tok, ids, n);
    } else {
        for (size_t i = 0; i < n; i++) print_row(tok, ids[i]);
    }
    vlm_free(ids);
    vlm_free(buf);
    vlm_tokenizer_free(tok);
    vlm_free(resolved);
    return status;
}
