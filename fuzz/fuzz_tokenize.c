/* fuzz_tokenize.c — libFuzzer target for encoding: arbitrary bytes (invalid UTF-8 included)
 * through two feature-rich tokenizers built at start-up (byte-level with a Split regex and
 * added tokens using lstrip/rstrip/single_word; SentencePiece-style with NFC, Prepend,
 * Replace, byte fallback and Strip); the first byte picks the tokenizer and flags. */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "tok_fuzz.h"
#include "util/utf8.h"

static int add_piece(struct vlm_buf *b, const char *s, int id, int *first) {
    /* s is plain ASCII or already JSON-escaped */
    return vlm_buf_appendf(b, "%s\"%s\": %d", *first ? "" : ", ", s, id) || (*first = 0);
}

/* Byte-level: every byte char, some merges; regex Split + ByteLevel; added tokens. */
static struct vlm_tokenizer *make_bytelevel(void) {
    struct vlm_buf b = {0};
    int first = 1, id = 0;
    vlm_buf_appendf(&b, "{\"model\": {\"type\": \"BPE\", \"ignore_merges\": true, \"vocab\": {");
    for (int c = 0; c < 256; c++) {
        char esc[16];
        int cp = c < 33 ? 256 + c : c == 127 ? 256 + 33 : (c >= 128 && c < 161) ? 256 + 34 + (c - 128) : c == 173 ? 256 + 67 : c;
        snprintf(esc, sizeof esc, "\\u%04x", cp);
        add_piece(&b, esc, id++, &first);
    }
    const char *extra[] = {"\\u0120t", "he", "\\u0120the", "in", "\\u0120in", "12", "\\u0120\\u0120", "ll", "llo", "\\u0120a"};
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) add_piece(&b, extra[i], id++, &first);
    vlm_buf_appendf(&b, "}, \"merges\": [\"\\u0120 t\", \"h e\", \"\\u0120t he\", \"i n\", \"\\u0120 in\", "
                        "[\"1\", \"2\"], \"\\u0120 \\u0120\", \"l l\", \"ll o\", \"\\u0120 a\"]},"
                        " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
                        "{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(?i:'s|'t|'re)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false},"
                        "{\"type\": \"Digits\", \"individual_digits\": false},"
                        "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"use_regex\": true}]},"
                        " \"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
                        " \"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [%d], \"tokens\": [\"<s>\"]}}},"
                        " \"decoder\": {\"type\": \"ByteLevel\"},"
                        " \"added_tokens\": [{\"id\": %d, \"content\": \"<s>\", \"special\": true},"
                        " {\"id\": %d, \"content\": \"<im>\", \"special\": true, \"lstrip\": true, \"rstrip\": true},"
                        " {\"id\": %d, \"content\": \"word\", \"special\": false, \"single_word\": true},"
                        " {\"id\": %d, \"content\": \"<n>\", \"special\": false, \"normalized\": true}]}",
                    id, id, id + 1, id + 2, id + 3);
    struct vlm_tokenizer *t = NULL;
    struct vlm_error err;
    if (vlm_tokenizer_load_mem(b.data, b.len, NULL, 0, &t, &err) != VLM_OK) {
        fprintf(stderr, "fuzz_tokenize: %s\n", err.msg);
        __builtin_trap();
    }
    vlm_buf_free(&b);
    return t;
}

/* SentencePiece-style: characters, <0xNN> byte tokens, NFC + Prepend + Replace. */
static struct vlm_tokenizer *make_sentencepiece(void) {
    struct vlm_buf b = {0};
    int first = 1, id = 0;
    vlm_buf_appendf(&b, "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"fuse_unk\": true, \"unk_token\": \"<unk>\", \"vocab\": {");
    add_piece(&b, "<unk>", id++, &first);
    for (int c = 0; c < 256; c++) {
        char name[16];
        snprintf(name, sizeof name, "<0x%02X>", c);
        add_piece(&b, name, id++, &first);
    }
    const char *chars[] = {"\\u2581", "a", "b", "c", "e", "h", "l", "o", "t", "\\u00e9", "\\u4f60",
                           "\\u2581t", "he", "\\u2581the", "ll", "llo", "\\u2581\\u2581", "ab", "abc"};
    for (size_t i = 0; i < sizeof chars / sizeof chars[0]; i++) add_piece(&b, chars[i], id++, &first);
    vlm_buf_appendf(&b, "}, \"merges\": [\"\\u2581 t\", \"h e\", \"\\u2581t he\", \"l l\", \"ll o\", \"\\u2581 \\u2581\", \"a b\", \"ab c\"]},"
                        " \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"},"
                        " {\"type\": \"Prepend\", \"prepend\": \"\\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]},"
                        " \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": \"\\u2581\\u2581\"}, \"behavior\": \"MergedWithNext\", \"invert\": false},"
                        " \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"\\u2581\"}, \"content\": \" \"},"
                        " {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 0}]},"
                        " \"added_tokens\": [{\"id\": %d, \"content\": \"<s>\", \"special\": true}]}", id);
    struct vlm_tokenizer *t = NULL;
    struct vlm_error err;
    if (vlm_tokenizer_load_mem(b.data, b.len, NULL, 0, &t, &err) != VLM_OK) {
        fprintf(stderr, "fuzz_tokenize: %s\n", err.msg);
        __builtin_trap();
    }
    vlm_buf_free(&b);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static struct vlm_tokenizer *tk[2];
    if (!tk[0]) { tk[0] = make_bytelevel(); tk[1] = make_sentencepiece(); }
    if (size == 0) return 0;
    int sel = data[0];
    tok_fuzz_check(tk[sel & 1], (const char *)data + 1, size - 1, (sel >> 1) & 3);
    return 0;
}
