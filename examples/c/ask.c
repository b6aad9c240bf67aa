/* ask.c — the smallest libvlm program: load a model, ask one question about one image.
 * Build against an installed vlm:  cc ask.c $(pkg-config --cflags --libs vlm) -o ask
 * Run:  ./ask MODEL_DIR IMAGE "What is shown in the image?" */
#include <stdio.h>
#include <stdlib.h>
#include <vlm.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s MODEL_DIR IMAGE QUESTION\n", argv[0]); return 2; }
    FILE *f = fopen(argv[2], "rb");
    static unsigned char bytes[16 << 20];
    size_t len = f ? fread(bytes, 1, sizeof bytes, f) : 0;
    if (f) fclose(f);
    if (!len) { fprintf(stderr, "%s: cannot read\n", argv[2]); return 1; }
    struct vlm_model *model;
    if (vlm_model_load(argv[1], NULL, &model) != VLM_OK) { fprintf(stderr, "%s\n", vlm_last_error()); return 1; }
    char messages[4096];
    snprintf(messages, sizeof messages, "[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, "
             "{\"type\": \"text\", \"text\": \"%s\"}]}]", argv[3]);   /* QUESTION must not need JSON escapes */
    struct vlm_image_bytes image = {bytes, len};
    struct vlm_generate_params gp = vlm_generate_default_params();
    gp.temperature = 0;
    struct vlm_generate_result r;
    int rc = vlm_generate(model, messages, &image, 1, &gp, &r);
    if (rc == VLM_OK) printf("%s\n", r.text);
    else fprintf(stderr, "%s\n", vlm_last_error());
    vlm_generate_result_free(&r);
    vlm_model_free(model);
    return rc == VLM_OK ? 0 : 1;
}
