/* cmd_preprocess.c — `vlm preprocess`: decodes an image and runs the model's image processor
 * on it, printing tile shapes, image-token count and the prompt expansion, optionally writing
 * the pixel values as .npy and timing repeated runs (start-up excluded). */
#include "commands.h"
#include "image/image.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_IMAGE_BYTES (256u << 20)

static void usage(FILE *f) {
    fprintf(f, "usage: vlm preprocess [MODEL_DIR] --image FILE [--out FILE.npy] [--no-splitting]\n"
               "                      [--longest-edge N] [--min-pixels N] [--max-pixels N] [--repeat N]\n\n"
               "Runs the model's image processor (preprocessor_config.json) on FILE and prints the\n"
               "tensor shapes, the number of image tokens and the prompt text one image becomes.\n"
               "  --out FILE.npy    write pixel values (f32, shape (tiles, 3, H, W), C order)\n"
               "  --no-splitting    do_image_splitting=False for this run\n"
               "  --longest-edge N  override size.longest_edge (Idefics3/SmolVLM)\n"
               "  --min-pixels N, --max-pixels N   override the pixel bounds (Qwen2-VL)\n"
               "  --repeat N        decode + preprocess N times and print ms per image\n");
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Writes a (n, c, h, w) float32 array in NumPy's .npy v1.0 format. */
static int write_npy(const char *path, const struct vlm_image_input *in) {
    char hdr[128];
    int n = in->grid_thw[0] > 0   /* patch families: (patches, C*T*P*P) as transformers returns */
                ? snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }",
                           in->n_tiles, in->channels * in->height * in->width)
                : snprintf(hdr, sizeof hdr,
                           "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d, %d, %d), }",
                           in->n_tiles, in->channels, in->height, in->width);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    unsigned hl = (unsigned)(n + pad + 1);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 255),
                             (unsigned char)(hl >> 8)};
    size_t cnt = (size_t)in->n_tiles * in->channels * in->height * in->width;
    int ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)n, f) == (size_t)n;
    for (int i = 0; ok && i < pad; i++) ok = fputc(' ', f) != EOF;
    ok = ok && fputc('\n', f) != EOF && fwrite(in->pixels, sizeof(float), cnt, f) == cnt;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* The prompt with runs of "<image>" shown as "<image>*N". */
static void print_prompt_summary(const char *p, const char *tok) {
    size_t tl = strlen(tok);
    fputs("prompt: ", stdout);
    while (*p) {
        if (!strncmp(p, tok, tl)) {
            int k = 0;
            while (!strncmp(p, tok, tl)) { p += tl; k++; }
            printf("%s*%d", tok, k);
        } else if (*p == '\n') {
            fputs("\\n", stdout);
            p++;
        } else {
            putchar(*p++);
        }
    }
    putchar('\n');
}

int cmd_preprocess(int argc, char **argv) {
    const char *model = NULL, *image = NULL, *out = NULL;
    struct vlm_processor_overrides ov = {.do_image_splitting = -1};
    int repeat = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-splitting")) { ov.do_image_splitting = 0; continue; }
        if (i + 1 < argc && !strcmp(a, "--image")) { image = argv[++i]; continue; }
        if (i + 1 < argc && !strcmp(a, "--out")) { out = argv[++i]; continue; }
        if (i + 1 < argc && (!strcmp(a, "--repeat") || !strcmp(a, "--longest-edge") ||
                             !strcmp(a, "--min-pixels") || !strcmp(a, "--max-pixels"))) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > (1L << 28)) { fprintf(stderr, "vlm preprocess: bad %s\n", a); return 2; }
            if (!strcmp(a, "--repeat")) repeat = (int)(v > 100000 ? 100000 : v);
            else if (!strcmp(a, "--longest-edge")) ov.longest_edge = (int)(v > 100000 ? 100000 : v);
            else if (!strcmp(a, "--min-pixels")) ov.min_pixels = v;
            else ov.max_pixels = v;
            continue;
        }
        if (a[0] != '-' && !model) { model = a; continue; }
        fprintf(stderr, "vlm preprocess: unexpected argument '%s'\n\n", a);
        usage(stderr);
        return 2;
    }
    if (!image) { usage(stderr); return 2; }
    if (!model) model = vlm_tool_default_model();

    struct vlm_error err = {0, ""};
    struct vlm_processor *proc = NULL;
    char *bytes = NULL;
    size_t len = 0;
    struct vlm_image img = {0, 0, NULL};
    struct vlm_image_input in;
    memset(&in, 0, sizeof in);
    int rc = vlm_processor_load(model, &proc, &err);
    if (rc == VLM_OK) rc = vlm_read_file(image, MAX_IMAGE_BYTES, &bytes, &len, &err);
    double t0 = now_ms();
    if (rc == VLM_OK) rc = vlm_image_decode((const uint8_t *)bytes, len, NULL, &img, &err);
    double t1 = now_ms();
    if (rc == VLM_OK) rc = vlm_processor_run(proc, &img, &ov, &in, &err);
    double t2 = now_ms();
    if (rc != VLM_OK) {
        fprintf(stderr, "vlm preprocess: %s\n", err.msg);
        goto done;
    }
    printf("image: %s (%s, %d x %d)\n", image,
           vlm_image_format_name(vlm_image_sniff((const uint8_t *)bytes, len)), img.width, img.height);
    printf("pixel_values: (%d, %d, %d, %d) f32", in.n_tiles, in.channels, in.height, in.width);
    if (in.grid_thw[0] > 0)
        printf("  [patches; image_grid_thw (%d, %d, %d)]\n", in.grid_thw[0], in.grid_thw[1], in.grid_thw[2]);
    else if (in.aspect_ratio_id > 0)   /* Mllama: the tile canvas, no global image */
        printf("  [%d x %d tiles of the canvas, aspect_ratio_id %d]\n", in.n_rows, in.n_cols, in.aspect_ratio_id);
    else if (in.n_rows) printf("  [%d x %d tiles + global image]\n", in.n_rows, in.n_cols);
    else printf("  [one image, not split]\n");
    printf("image tokens: %d\n", in.n_image_tokens);
    print_prompt_summary(in.prompt, vlm_processor_image_placeholder(proc));
    printf("time: decode %.2f ms, preprocess %.2f ms (first run)\n", t1 - t0, t2 - t1);
    if (out) {
        if (write_npy(out, &in)) { fprintf(stderr, "vlm preprocess: cannot write %s\n", out); rc = VLM_E_IO; goto done; }
        printf("wrote %s\n", out);
    }
    if (repeat > 0) {
        double best = 1e30, sum = 0;
        for (int r = 0; r < repeat && rc == VLM_OK; r++) {
            struct vlm_image im2;
            struct vlm_image_input in2;
            memset(&in2, 0, sizeof in2);
            double a = now_ms();
            rc = vlm_image_decode((const uint8_t *)bytes, len, NULL, &im2, &err);
            if (rc == VLM_OK) rc = vlm_processor_run(proc, &im2, &ov, &in2, &err);
            double b = now_ms() - a;
            vlm_image_free(&im2);
            vlm_image_input_free(&in2);
            sum += b;
            if (b < best) best = b;
        }
        if (rc == VLM_OK)
            printf("decode+preprocess: %.3f ms/image mean, %.3f ms min over %d runs\n",
                   sum / repeat, best, repeat);
        else
            fprintf(stderr, "vlm preprocess: %s\n", err.msg);
    }
done:
    vlm_image_input_free(&in);
    vlm_image_free(&img);
    vlm_free(bytes);
    vlm_processor_free(proc);
    return rc == VLM_OK ? 0 : 1;
}
