/* inspect_gguf.c — `vlm inspect FILE.gguf`: a GGUF file's header, metadata (strings cut short,
 * arrays as their type and length) and tensors (name, ggml type, shape, bytes), plus a count
 * and byte total per type. */
#include "commands.h"
#include "formats/gguf.h"
#include "util/error.h"
#include "util/file.h"

#include <stdio.h>
#include <string.h>

static const char *const value_names[VLM_GGUF_TYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

static void print_value(const struct vlm_gguf *g, const struct vlm_gguf_kv *kv) {
    switch (kv->type) {
    case VLM_GGUF_STRING: {
        size_t n = kv->n > 72 ? 72 : (size_t)kv->n;
        putchar('"');
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)kv->str[i];
            if (ch == '\n') fputs("\\n", stdout);
            else if (ch < 32 || ch == 127) printf("\\x%02x", ch);
            else putchar(ch);
        }
        printf("\"%s", kv->n > n ? " ..." : "");
        if (kv->n > n) printf(" (%llu bytes)", (unsigned long long)kv->n);
        break;
    }
    case VLM_GGUF_ARRAY:
        printf("[%s x %llu]", value_names[kv->arr_type], (unsigned long long)kv->n);
        if (kv->arr_type == VLM_GGUF_STRING && kv->n) {
            size_t pos = kv->offset, len;
            const char *s;
            vlm_gguf_arr_str(g, &pos, &s, &len);
            printf(" first \"%.*s\"", (int)(len > 32 ? 32 : len), s);
        } else if (kv->arr_type != VLM_GGUF_STRING && kv->n && kv->n <= 8) {
            for (uint64_t i = 0; i < kv->n; i++) printf("%s%g", i ? ", " : " ", vlm_gguf_arr_num(kv, i));
        }
        break;
    case VLM_GGUF_F32: case VLM_GGUF_F64: printf("%g", kv->v.f); break;
    case VLM_GGUF_BOOL: printf("%s", kv->v.u ? "true" : "false"); break;
    case VLM_GGUF_I8: case VLM_GGUF_I16: case VLM_GGUF_I32: case VLM_GGUF_I64: printf("%lld", (long long)kv->v.i); break;
    default: printf("%llu", (unsigned long long)kv->v.u); break;
    }
}

int vlm_inspect_gguf(const char *path) {
    struct vlm_mmap mm = {0};
    struct vlm_error err;
    struct vlm_gguf g;
    if (vlm_mmap_file(path, &mm, &err) != VLM_OK || vlm_gguf_parse(mm.data, mm.size, path, &g, &err) != VLM_OK) {
        fprintf(stderr, "vlm inspect: %s\n", err.msg);
        if (mm.data) vlm_munmap(&mm);
        return 1;
    }
    printf("file           %s\nformat         GGUF v%u, %zu metadata keys, %zu tensors, alignment %u, data at %zu\n",
           path, g.version, g.n_kv, g.n_tensors, g.alignment, g.data_offset);
    printf("metadata\n");
    for (size_t i = 0; i < g.n_kv; i++) {
        printf("  %-44s %-6s ", g.kv[i].key, value_names[g.kv[i].type]);
        print_value(&g, &g.kv[i]);
        putchar('\n');
    }
    size_t count[64] = {0}, bytes[64] = {0};
    printf("tensors\n");
    for (size_t i = 0; i < g.n_tensors; i++) {
        const struct vlm_gguf_tensor *t = &g.t[i];
        printf("  %-44s %-7s [", t->name, vlm_gguf_type_name(t->ggml_type));
        for (uint32_t d = 0; d < t->n_dims; d++) printf("%s%lld", d ? ", " : "", (long long)t->ne[d]);
        printf("] %zu bytes\n", t->nbytes);
        if (t->ggml_type < 64) { count[t->ggml_type]++; bytes[t->ggml_type] += t->nbytes; }
    }
    printf("types\n");
    for (uint32_t ty = 0; ty < 64; ty++)
        if (count[ty]) printf("  %-7s %5zu tensors %10.2f MiB\n", vlm_gguf_type_name(ty), count[ty], bytes[ty] / 1048576.0);
    vlm_gguf_free(&g);
    vlm_munmap(&mm);
    return 0;
}
