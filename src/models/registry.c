/* registry.c — maps a config's architectures[0] (or, later, a GGUF general.architecture) to
 * the family that runs it. Adding a family is adding its files under src/models/ and rows here. */
#include <stdio.h>
#include <string.h>

#include "models/gguf_family.h"
#include "models/gemma3.h"
#include "models/gemma3_gguf.h"
#include "models/idefics3.h"
#include "models/llava.h"
#include "models/mllama.h"
#include "models/idefics3_gguf.h"
#include "models/model.h"
#include "models/qwen25vl.h"

static const struct {
    const char *arch;
    const struct vlm_family *family;
} rows[] = {
    {"Idefics3ForConditionalGeneration", &vlm_family_idefics3},
    /* SmolVLM2 checkpoints name the same graph differently at the top level only. */
    {"SmolVLMForConditionalGeneration", &vlm_family_idefics3},
    {"LlavaForConditionalGeneration", &vlm_family_llava},
    {"LlavaNextForConditionalGeneration", &vlm_family_llava},
    {"MllamaForConditionalGeneration", &vlm_family_mllama},
    {"Gemma3ForConditionalGeneration", &vlm_family_gemma3},
    {"Gemma3ForCausalLM", &vlm_family_gemma3},
    {"Qwen2_5_VLForConditionalGeneration", &vlm_family_qwen25vl},
    {"Qwen2VLForConditionalGeneration", &vlm_family_qwen2vl},
};

const struct vlm_family *vlm_family_find(const char *arch) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (arch && !strcmp(arch, rows[i].arch)) return rows[i].family;
    return NULL;
}

void vlm_family_names(char *buf, size_t size) {
    size_t used = 0;
    if (size) buf[0] = '\0';
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s", i ? ", " : "", rows[i].arch);
        if (n < 0) break;
        used += (size_t)n;
    }
}

/* GGUF: (text file architecture, mmproj projector type) -> the family's GGUF mapping. */
static const struct vlm_gguf_family *const gguf_rows[] = {
    &vlm_gguf_idefics3,
    &vlm_gguf_gemma3_text,
    &vlm_gguf_gemma3,
};

const struct vlm_gguf_family *vlm_gguf_family_find(const char *text_arch, const char *projector) {
    for (size_t i = 0; i < sizeof gguf_rows / sizeof gguf_rows[0]; i++) {
        const struct vlm_gguf_family *f = gguf_rows[i];
        if (!text_arch || strcmp(text_arch, f->text_arch)) continue;
        if ((projector == NULL) != (f->projector == NULL)) continue;
        if (projector && strcmp(projector, f->projector)) continue;
        return f;
    }
    return NULL;
}

void vlm_gguf_family_names(char *buf, size_t size) {
    size_t used = 0;
    if (size) buf[0] = '\0';
    for (size_t i = 0; i < sizeof gguf_rows / sizeof gguf_rows[0] && used < size; i++) {
        const struct vlm_gguf_family *f = gguf_rows[i];
        int n = snprintf(buf + used, size - used, "%s%s%s%s", i ? ", " : "", f->text_arch,
                         f->projector ? " + mmproj " : "", f->projector ? f->projector : "");
        if (n < 0) break;
        used += (size_t)n;
    }
}
