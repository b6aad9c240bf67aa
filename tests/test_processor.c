/* test_processor.c — the Idefics3/SmolVLM image processor against transformers (Pillow
 * backend): for SmolVLM-256M's real preprocessor_config.json, identical tile layout, prompt
 * text and image-token count and bit-identical f32 tiles (hashes); for a reduced config, the
 * full tensors compared element by element (max abs diff <= 1e-5). Splitting on and off. */
#include "image/image.h"
#include "image_fixture.h"
#include "models/processor.h"
#include "test.h"

static int load(const char *rel, struct vlm_processor **p) {
    struct vlm_error e = {0, ""};
    int rc = vlm_processor_load(test_path(rel), p, &e);
    if (rc) fprintf(stderr, "load %s: %s\n", rel, e.msg);
    return rc;
}

static int run_case(const struct vlm_processor *p, json_t *c, struct vlm_image_input *in) {
    size_t n;
    struct vlm_image img;
    struct vlm_error e = {0, ""};
    uint8_t *b = fx_read(fx_str(c, "name"), &n);
    memset(in, 0, sizeof *in);
    if (!b) return -1;
    int rc = vlm_image_decode(b, n, NULL, &img, &e);
    vlm_free(b);
    if (rc) { fprintf(stderr, "%s: %s\n", fx_str(c, "name"), e.msg); return rc; }
    struct vlm_processor_overrides ov = {.do_image_splitting = json_is_true(json_object_get(c, "splitting")) ? 1 : 0};
    rc = vlm_processor_run(p, &img, &ov, in, &e);
    if (rc) fprintf(stderr, "%s: %s\n", fx_str(c, "name"), e.msg);
    vlm_image_free(&img);
    return rc;
}

static void check_layout(json_t *c, const struct vlm_image_input *in) {
    const char *name = fx_str(c, "name");
    CHECK_MSG(in->n_tiles == fx_int(c, "n_tiles") && in->height == fx_int(c, "h") &&
              in->width == fx_int(c, "w") && in->channels == 3,
              "%s: shape (%d,3,%d,%d)", name, in->n_tiles, in->height, in->width);
    CHECK_MSG(in->n_rows == fx_int(c, "rows") && in->n_cols == fx_int(c, "cols"), "%s: grid %dx%d",
              name, in->n_rows, in->n_cols);
    CHECK_EQ_INT(in->n_image_tokens, fx_int(c, "n_image_tokens"));
    CHECK_MSG(in->prompt && !strcmp(in->prompt, fx_str(c, "prompt")), "%s: prompt text differs", name);
    json_t *mv = json_object_get(c, "mask_valid");
    for (int t = 0; t < in->n_tiles && t < (int)json_array_size(mv); t++) {
        const uint8_t *m = in->pixel_mask + (size_t)t * in->height * in->width;
        int rows = 0, cols = 0;
        for (int y = 0; y < in->height; y++) rows += m[(size_t)y * in->width] != 0;
        for (int x = 0; x < in->width; x++) cols += m[x] != 0;
        json_t *e = json_array_get(mv, (size_t)t);
        CHECK(rows == json_integer_value(json_array_get(e, 0)) && cols == json_integer_value(json_array_get(e, 1)));
    }
}

static void test_full_config(json_t *m) {
    struct vlm_processor *p = NULL;
    CHECK_EQ_INT(load("tests/fixtures/image/smolvlm-256m", &p), VLM_OK);
    if (!p) return;
    CHECK_EQ_STR(vlm_processor_image_placeholder(p), "<image>");
    json_t *arr = json_object_get(m, "processor"), *c;
    size_t i;
    int ran = 0, split_seen = 0;
    CHECK(json_array_size(arr) >= 80);
    json_array_foreach(arr, i, c) {
        if (test_quick() && i % 8) continue;   /* ASan run: a sample */
        struct vlm_image_input in;
        int rc = run_case(p, c, &in);
        CHECK_EQ_INT(rc, VLM_OK);
        if (rc) continue;
        ran++;
        check_layout(c, &in);
        split_seen |= in.n_rows > 0;
        json_t *hs = json_object_get(c, "tile_sha256");
        size_t plane = (size_t)3 * in.height * in.width;
        int same = 0;
        for (int t = 0; t < in.n_tiles; t++) {
            char hex[65];
            fx_sha256_hex(in.pixels + (size_t)t * plane, plane * sizeof(float), hex);
            same += !strcmp(hex, json_string_value(json_array_get(hs, (size_t)t)));
        }
        CHECK_MSG(same == in.n_tiles, "%s (splitting %d): %d of %d tiles bit-identical to transformers",
                  fx_str(c, "name"), json_is_true(json_object_get(c, "splitting")), same, in.n_tiles);
        vlm_image_input_free(&in);
    }
    CHECK(ran > 0 && split_seen);
    vlm_processor_free(p);
}

static void test_small_config(json_t *m) {
    struct vlm_processor *p = NULL;
    size_t blob_len = 0;
    float *blob = (float *)fx_read_xz("small_tensors.f32.xz", &blob_len);
    CHECK(blob != NULL);
    CHECK_EQ_INT(load("tests/fixtures/image/smolvlm-small", &p), VLM_OK);
    if (!p || !blob) { free(blob); vlm_processor_free(p); return; }
    json_t *arr = json_object_get(m, "processor_small"), *c;
    size_t i;
    double worst = 0;
    json_array_foreach(arr, i, c) {
        struct vlm_image_input in;
        int rc = run_case(p, c, &in);
        CHECK_EQ_INT(rc, VLM_OK);
        if (rc) continue;
        check_layout(c, &in);
        size_t off = (size_t)json_integer_value(json_object_get(c, "offset")) / sizeof(float);
        size_t cnt = (size_t)json_integer_value(json_object_get(c, "count"));
        size_t have = (size_t)in.n_tiles * 3 * in.height * in.width;
        CHECK(cnt == have && (off + cnt) * sizeof(float) <= blob_len);
        if (cnt != have || (off + cnt) * sizeof(float) > blob_len) { vlm_image_input_free(&in); continue; }
        double d = 0;
        for (size_t k = 0; k < cnt; k++) {
            double v = fabs((double)in.pixels[k] - blob[off + k]);
            if (v > d) d = v;
        }
        CHECK_MSG(d <= 1e-5, "%s: max abs diff %g", fx_str(c, "name"), d);
        if (d > worst) worst = d;
        vlm_image_input_free(&in);
    }
    printf("reduced config: %zu cases, max abs diff %g\n", json_array_size(arr), worst);
    free(blob);
    vlm_processor_free(p);
}

/* Qwen2-VL / Qwen2.5-VL: smart_resize, bicubic, patch layout, grid and token count. */
static void test_qwen2vl(json_t *m) {
    struct vlm_processor *p = NULL;
    CHECK_EQ_INT(load("tests/fixtures/image/qwen2.5-vl", &p), VLM_OK);
    if (!p) return;
    CHECK_EQ_STR(vlm_processor_image_placeholder(p), "<|image_pad|>");
    json_t *arr = json_object_get(m, "qwen2vl"), *c;
    size_t i;
    int errors_seen = 0, ok_seen = 0;
    CHECK(json_array_size(arr) >= 40);
    json_array_foreach(arr, i, c) {
        if (test_quick() && i % 4) continue;
        size_t n;
        struct vlm_image img;
        struct vlm_image_input in;
        struct vlm_error e = {0, ""};
        const char *name = fx_str(c, "name");
        uint8_t *b = fx_read(name, &n);
        CHECK(b && vlm_image_decode(b, n, NULL, &img, &e) == VLM_OK);
        vlm_free(b);
        int rc = vlm_processor_run(p, &img, NULL, &in, &e);
        vlm_image_free(&img);
        if (json_is_true(json_object_get(c, "error"))) {   /* transformers refuses it too */
            CHECK_MSG(rc == VLM_E_INVALID, "%s: rc %d", name, rc);
            errors_seen++;
            continue;
        }
        CHECK_MSG(rc == VLM_OK, "%s: %s", name, e.msg);
        if (rc) continue;
        ok_seen++;
        json_t *shape = json_object_get(c, "shape"), *thw = json_object_get(c, "grid_thw");
        CHECK_MSG((json_int_t)in.n_tiles == json_integer_value(json_array_get(shape, 0)) &&
                  (json_int_t)in.channels * in.height * in.width == json_integer_value(json_array_get(shape, 1)),
                  "%s: %d patches of %d", name, in.n_tiles, in.channels * in.height * in.width);
        for (int k = 0; k < 3; k++) CHECK(in.grid_thw[k] == json_integer_value(json_array_get(thw, (size_t)k)));
        CHECK_EQ_INT(in.n_image_tokens, fx_int(c, "n_image_tokens"));
        CHECK(in.prompt && strlen(in.prompt) == 13 * (size_t)in.n_image_tokens);
        char hex[65];
        fx_sha256_hex(in.pixels, (size_t)in.n_tiles * in.channels * in.height * in.width * sizeof(float), hex);
        CHECK_MSG(!strcmp(hex, fx_str(c, "sha256")), "%s: pixel_values differ from transformers", name);
        vlm_image_input_free(&in);
    }
    CHECK(ok_seen > 0 && (test_quick() || errors_seen > 0));
    /* max_pixels override: 512 x 512 with max 256*28*28 pixels -> 16 x 16 grid of 28 px. */
    struct vlm_image img;
    struct vlm_image_input in;
    struct vlm_error e = {0, ""};
    struct vlm_processor_overrides ov = {.do_image_splitting = -1, .max_pixels = 256 * 28 * 28};
    CHECK_EQ_INT(vlm_image_alloc(&img, 512, 512, &e), VLM_OK);
    memset(img.rgb, 200, 512 * 512 * 3);
    CHECK_EQ_INT(vlm_processor_run(p, &img, &ov, &in, &e), VLM_OK);
    CHECK(in.grid_thw[1] == 32 && in.grid_thw[2] == 32 && in.n_image_tokens == 256);
    vlm_image_input_free(&in);
    ov.min_pixels = 1L << 27;   /* min above max */
    CHECK_EQ_INT(vlm_processor_run(p, &img, &ov, &in, &e), VLM_E_INVALID);
    vlm_image_free(&img);
    vlm_processor_free(p);
}

/* CLIPImageProcessor (LLaVA 1.5): shortest-edge bicubic resize, center crop, 576 tokens. */
static void test_clip(json_t *m) {
    struct vlm_processor *p = NULL;
    CHECK_EQ_INT(load("tests/fixtures/image/llava-1.5", &p), VLM_OK);
    if (!p) return;
    json_t *arr = json_object_get(m, "clip"), *c;
    size_t i;
    CHECK(json_array_size(arr) >= 40);
    json_array_foreach(arr, i, c) {
        if (test_quick() && i % 4) continue;
        size_t n;
        struct vlm_image img;
        struct vlm_image_input in;
        struct vlm_error e = {0, ""};
        const char *name = fx_str(c, "name");
        uint8_t *b = fx_read(name, &n);
        CHECK(b && vlm_image_decode(b, n, NULL, &img, &e) == VLM_OK);
        vlm_free(b);
        int rc = vlm_processor_run(p, &img, NULL, &in, &e);
        vlm_image_free(&img);
        CHECK_MSG(rc == VLM_OK, "%s: %s", name, e.msg);
        if (rc) continue;
        json_t *shape = json_object_get(c, "shape");
        CHECK(in.n_tiles == 1 && in.channels == 3 &&
              in.height == json_integer_value(json_array_get(shape, 2)) &&
              in.width == json_integer_value(json_array_get(shape, 3)));
        CHECK_EQ_INT(in.n_image_tokens, fx_int(c, "n_image_tokens"));
        CHECK(in.prompt && strlen(in.prompt) == 7 * (size_t)in.n_image_tokens);
        char hex[65];
        fx_sha256_hex(in.pixels, (size_t)3 * in.height * in.width * sizeof(float), hex);
        CHECK_MSG(!strcmp(hex, fx_str(c, "sha256")), "%s: pixel_values differ from transformers", name);
        vlm_image_input_free(&in);
    }
    vlm_processor_free(p);
}

/* Gemma 3: 896 x 896 bilinear, pan-and-scan crops, the boi/soft-token/eoi prompt. */
static void test_gemma3(json_t *m) {
    struct vlm_processor *p[2] = {NULL, NULL};
    CHECK_EQ_INT(load("tests/fixtures/image/gemma3", &p[0]), VLM_OK);
    CHECK_EQ_INT(load("tests/fixtures/image/gemma3-pas", &p[1]), VLM_OK);
    if (!p[0] || !p[1]) { vlm_processor_free(p[0]); vlm_processor_free(p[1]); return; }
    CHECK_EQ_STR(vlm_processor_image_placeholder(p[0]), "<start_of_image>");
    json_t *arr = json_object_get(m, "gemma3"), *c;
    size_t i;
    int crops_seen = 0;
    CHECK(json_array_size(arr) >= 60);
    json_array_foreach(arr, i, c) {
        int pas = !strcmp(fx_str(c, "config"), "gemma3-pas");
        if (test_quick() && i % 6 && fx_int(c, "num_crops") == 0) continue;
        size_t n;
        struct vlm_image img;
        struct vlm_image_input in;
        struct vlm_error e = {0, ""};
        const char *name = fx_str(c, "name");
        uint8_t *b = fx_read(name, &n);
        CHECK(b && vlm_image_decode(b, n, NULL, &img, &e) == VLM_OK);
        vlm_free(b);
        int rc = vlm_processor_run(p[pas], &img, NULL, &in, &e);
        vlm_image_free(&img);
        CHECK_MSG(rc == VLM_OK, "%s: %s", name, e.msg);
        if (rc) continue;
        json_t *shape = json_object_get(c, "shape"), *hs = json_object_get(c, "tile_sha256");
        CHECK_MSG(in.n_tiles == json_integer_value(json_array_get(shape, 0)) &&
                  in.height == json_integer_value(json_array_get(shape, 2)) &&
                  in.width == json_integer_value(json_array_get(shape, 3)), "%s: %d tiles", name, in.n_tiles);
        CHECK_MSG(in.prompt && !strcmp(in.prompt, fx_str(c, "prompt")), "%s: prompt differs", name);
        CHECK_EQ_INT(in.n_image_tokens, 256 * in.n_tiles);
        crops_seen += in.n_tiles > 1;
        size_t plane = (size_t)3 * in.height * in.width;
        int same = 0;
        for (int t = 0; t < in.n_tiles && t < (int)json_array_size(hs); t++) {
            char hex[65];
            fx_sha256_hex(in.pixels + (size_t)t * plane, plane * sizeof(float), hex);
            same += !strcmp(hex, json_string_value(json_array_get(hs, (size_t)t)));
        }
        CHECK_MSG(same == in.n_tiles, "%s (%s): %d of %d images bit-identical", name, fx_str(c, "config"), same,
                  in.n_tiles);
        vlm_image_input_free(&in);
    }
    CHECK(crops_seen > 0);
    vlm_processor_free(p[0]);
    vlm_processor_free(p[1]);
}

static void test_errors(void) {
    struct vlm_processor *p = NULL;
    struct vlm_error e = {0, ""};
    /* No preprocessor_config.json in the folder. */
    CHECK(vlm_processor_load(test_path("tests/fixtures/image"), &p, &e) != VLM_OK && p == NULL);
    CHECK_EQ_INT(load("tests/fixtures/image/smolvlm-small", &p), VLM_OK);
    struct vlm_image img;
    struct vlm_image_input in;
    CHECK_EQ_INT(vlm_image_alloc(&img, 40, 30, &e), VLM_OK);
    memset(img.rgb, 100, 40 * 30 * 3);
    struct vlm_processor_overrides bad = {.do_image_splitting = -1, .longest_edge = 100000};
    CHECK_EQ_INT(vlm_processor_run(p, &img, &bad, &in, &e), VLM_E_INVALID);
    CHECK(in.pixels == NULL && in.prompt == NULL);
    CHECK_EQ_INT(vlm_processor_run(p, NULL, NULL, &in, &e), VLM_E_INVALID);
    /* Overrides: a larger longest edge gives more tiles; splitting off gives one tile. */
    struct vlm_processor_overrides big = {.do_image_splitting = 1, .longest_edge = 192},
                                   off = {.do_image_splitting = 0};
    CHECK_EQ_INT(vlm_processor_run(p, &img, &big, &in, &e), VLM_OK);
    CHECK(in.n_rows == 5 && in.n_cols == 6 && in.n_tiles == 31);   /* 192x144 -> 6x5 tiles of 32 */
    vlm_image_input_free(&in);
    CHECK_EQ_INT(vlm_processor_run(p, &img, &off, &in, &e), VLM_OK);
    CHECK(in.n_tiles == 1 && in.n_rows == 0 && in.n_image_tokens == 4);
    vlm_image_input_free(&in);
    /* Allocation failures while running: errors, no leaks. */
    int ok = 0, badrc = 0;
    for (uint64_t k = 1; k < 200 && !ok; k++) {
        vlm_alloc_fail_after(k);
        int rc = vlm_processor_run(p, &img, NULL, &in, &e);
        vlm_alloc_fail_after(0);
        if (rc == VLM_OK) ok = 1;
        else if (rc != VLM_E_NOMEM || in.pixels) badrc++;
        vlm_image_input_free(&in);
    }
    CHECK(ok && !badrc);
    vlm_image_free(&img);
    vlm_processor_free(p);
}

int main(void) {
    json_t *m = fx_manifest();
    CHECK(m != NULL);
    if (m) {
        test_full_config(m);
        test_small_config(m);
        test_qwen2vl(m);
        test_clip(m);
        test_gemma3(m);
        json_decref(m);
    }
    test_errors();
    TEST_MAIN_END();
}
