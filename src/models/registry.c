/* registry.c — maps a config's architectures[0] to the family that runs it. Adding a family
 * is adding its files under src/models/ and one row here. */
#include <string.h>

#include "models/idefics3.h"
#include "models/model.h"

static const struct vlm_family *const families[] = {
    &vlm_family_idefics3,
    &vlm_family_smolvlm,
};

const struct vlm_family *vlm_family_find(const char *arch) {
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
        if (arch && !strcmp(arch, families[i]->arch)) return families[i];
    return NULL;
}

const char *vlm_family_names(void) {
    return "Idefics3ForConditionalGeneration, SmolVLMForConditionalGeneration";
}
