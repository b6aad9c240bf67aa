/* fuzz_gguf_export_tok.c — libFuzzer target for `vlm quantize`'s tokenizer export: arbitrary
 * bytes as tokenizer.json (the first byte picks the vocabulary size and whether the pre-tokenizer
 * is named); whatever vlm_gguf_export_tokenizer accepts must come out as a GGUF file our reader
 * parses. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "formats/config.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "models/gguf_export.h"
#include "util/error.h"
#include "util/file.h"

static char dir[64], tok[96], out[96];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/fuzz-gguf-export-%d", (int)getpid());
        mkdir(dir, 0700);
        snprintf(tok, sizeof tok, "%s/tokenizer.json", dir);
        snprintf(out, sizeof out, "%s/out.gguf", dir);
    }
    if (size < 1) return 0;
    FILE *f = fopen(tok, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    struct vlm_config cfg = {0};
    cfg.path = (char *)"config.json";
    cfg.root = json_object();
    cfg.arch = cfg.model_type = "";
    struct vlm_gguf_writer *w;
    struct vlm_error err;
    int n_vocab = 1 + (data[0] & 0x7f) * 4;
    if (vlm_gguf_writer_open(out, &w, &err) == VLM_OK) {
        int rc = vlm_gguf_export_tokenizer(w, &cfg, dir, n_vocab, data[0] & 0x80 ? "smollm" : NULL, &err);
        if (rc == VLM_OK) rc = vlm_gguf_writer_finish(w, &err);
        vlm_gguf_writer_free(w);
        struct vlm_mmap m;
        struct vlm_gguf g;
        if (rc == VLM_OK && vlm_mmap_file(out, &m, &err) == VLM_OK) {
            if (vlm_gguf_parse(m.data, m.size, out, &g, &err) != VLM_OK) abort();   /* we wrote a file we cannot read */
            vlm_gguf_free(&g);
            vlm_munmap(&m);
        }
    }
    json_decref(cfg.root);
    return 0;
}
