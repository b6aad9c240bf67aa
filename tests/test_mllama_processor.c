/* test_mllama_processor.c — Llama 3.2 Vision's processor against transformers (fixtures
 * written by scripts/make_mllama_fixtures.py): the cross-attention spans of <|image|> tokens
 * as the dense cross_attention_mask, for synthetic ids and real Llama 3 prompts; the
 * MllamaImageProcessor's tiles, aspect_ratio_ids/mask and num_tiles for ~50 images under
 * four configs (bit-identical tiles for the real 560 x 560 config, full tensors within 1e-5
 * for reduced ones); bad configs refused with errors naming the key; allocation failures. */
#include "image/image.h"
#include "image_fixture.h"
#include "models/mllama_processor.h"
#include "models/processor.h"
#include "test.h"

#include <unistd.h>

#define MAX_IMAGES 64
#define N_CONFIGS 4
static const char *const config_names[N_CONFIGS] = {"llama-3.2-vision", "default", "small", "plain"};
static struct vlm_processor *procs[N_CONFIGS];

static struct vlm_processor *proc_for(const char *config) {
    for (int i = 0; i < N_CONFIGS; i++) {
        if (strcmp(config, config_names[i])) continue;
        if (!procs[i]) {
            char rel[256];
            struct vlm_error e = {0, ""};
            snprintf(rel, sizeof rel, "tests/fixtures/mllama/%s", config);
            if (vlm_processor_load(test_path(rel), &procs[i], &e)) fprintf(stderr, "%s: %s\n", rel, e.msg);
        }
        return procs[i];
    }
    return NULL;
}

static json_t *load_xz_json(const char *name) {
    char rel[256];
    size_t n;
    snprintf(rel, sizeof rel, "../mllama/%s", name);   /* fx_read is rooted at fixtures/image */
    uint8_t *t = fx_read_xz(rel, &n);
    if (!t) return NULL;
    json_t *j = json_loadb((const char *)t, n, 0, NULL);
    free(t);
    return j;
}

/* The dense mask (n, n_images, max_tiles) as transformers lays it out, from our spans. */
static char *dense_from_spans(const struct vlm_mllama_span *sp, int n_img, const json_t *tiles,
                              int n, int max_tiles) {
    size_t len = (size_t)n * n_img * max_tiles;
    char *m = malloc(len + 1);
    memset(m, '0', len);
    m[len] = 0;
    for (int i = 0; i < n_img; i++) {
        int nt = (int)json_integer_value(json_array_get(tiles, (size_t)i));
        for (int t = sp[i].start; t < sp[i].end; t++)
            for (int k = 0; k < nt && k < max_tiles; k++) m[((size_t)t * n_img + i) * max_tiles + k] = '1';
    }
    return m;
}

static void test_cross_attention(void) {
    json_t *fx = load_xz_json("cross_attention.json.xz");
    CHECK(fx != NULL);
    if (!fx) return;
    int32_t image_id = (int32_t)json_integer_value(json_object_get(fx, "image_token_id"));
    struct vlm_processor *p = proc_for("llama-3.2-vision");
    json_t *cases = json_object_get(fx, "cases"), *c;
    size_t ci;
    int n_proc = 0, n_consecutive = 0, n_text_first = 0;
    CHECK(json_array_size(cases) >= 50);
    json_array_foreach(cases, ci, c) {
        json_t *ja = json_object_get(c, "ids");
        int n = (int)json_array_size(ja);
        int32_t *ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(ja, (size_t)i));
        struct vlm_mllama_span sp[MAX_IMAGES];
        int want = fx_int(c, "n_images");
        int got = vlm_mllama_cross_attention_spans(ids, n, image_id, sp, MAX_IMAGES);
        CHECK_MSG(got == want, "case %zu: %d images, transformers %d", ci, got, want);
        CHECK_EQ_INT(vlm_mllama_cross_attention_spans(ids, n, image_id, NULL, 0), want);
        json_t *tiles = json_object_get(c, "num_tiles"), *sizes = json_object_get(c, "image_sizes");
        if (sizes && p) {   /* prompts run through MllamaProcessor: our tile counts for its images */
            tiles = json_array();
            for (size_t k = 0; k < json_array_size(sizes); k++) {
                json_t *wh = json_array_get(sizes, k);
                struct vlm_image img;
                struct vlm_image_input in;
                struct vlm_error e = {0, ""};
                int w = (int)json_integer_value(json_array_get(wh, 0)), h = (int)json_integer_value(json_array_get(wh, 1));
                CHECK(vlm_image_alloc(&img, w, h, &e) == VLM_OK);
                memset(img.rgb, 90, (size_t)w * h * 3);
                CHECK(vlm_processor_run(p, &img, NULL, &in, &e) == VLM_OK);
                json_array_append_new(tiles, json_integer(in.n_tiles));
                vlm_image_input_free(&in);
                vlm_image_free(&img);
            }
            CHECK(json_equal(tiles, json_object_get(c, "num_tiles")));
        } else {
            json_incref(tiles);
        }
        if (got == want && want <= MAX_IMAGES) {
            char *m = dense_from_spans(sp, got, tiles, n, fx_int(c, "max_tiles"));
            CHECK_MSG(!strcmp(m, fx_str(c, "mask")), "case %zu (%s): dense mask differs", ci, fx_str(c, "source"));
            free(m);
            for (int i = 0; i < got; i++)
                CHECK(sp[i].start >= 0 && sp[i].start < sp[i].end && sp[i].end <= n && ids[sp[i].start] == image_id);
            for (int i = 1; i < got; i++) n_consecutive += sp[i].start == sp[i - 1].start + 1;
            n_text_first += got > 0 && sp[0].start > 0;
            if (got > 1) {   /* a short spans array gets the same first spans */
                struct vlm_mllama_span one[1];
                CHECK_EQ_INT(vlm_mllama_cross_attention_spans(ids, n, image_id, one, 1), got);
                CHECK(one[0].start == sp[0].start && one[0].end == sp[0].end);
            }
        }
        n_proc += !strcmp(fx_str(c, "source"), "processor");
        json_decref(tiles);
        free(ids);
    }
    CHECK(n_proc >= 5 && n_consecutive >= 5 && n_text_first >= 5);   /* the cases the fixture must hold */
    CHECK_EQ_INT(vlm_mllama_cross_attention_spans(NULL, 0, image_id, NULL, 0), 0);
    json_decref(fx);
}

/* The canvas choice and the resized size against transformers' functions for 3000 sizes. */
static void test_canvas(void) {
    json_t *fx = load_xz_json("canvas.json.xz");
    CHECK(fx != NULL);
    if (!fx) return;
    json_t *cases = json_object_get(fx, "cases"), *c;
    size_t i;
    int bad = 0;
    CHECK(json_array_size(cases) >= 3000);
    json_array_foreach(cases, i, c) {
        int v[9];
        for (int k = 0; k < 9; k++) v[k] = (int)json_integer_value(json_array_get(c, (size_t)k));
        int rows = 0, cols = 0, nh = 0, nw = 0;
        int id = vlm_mllama_tile_canvas(v[0], v[1], v[2], v[3], &rows, &cols);
        if (id > 0) vlm_mllama_fit_to_canvas(v[0], v[1], rows * v[3], cols * v[3], v[3], &nh, &nw);
        if (id != v[8] || rows != v[4] || cols != v[5] || nh != v[6] || nw != v[7]) {
            if (bad++ < 5)
                fprintf(stderr, "%d x %d (max %d, tile %d): id %d %dx%d -> %dx%d; transformers id %d %dx%d -> %dx%d\n",
                        v[1], v[0], v[2], v[3], id, rows, cols, nw, nh, v[8], v[4], v[5], v[7], v[6]);
        }
    }
    CHECK_EQ_INT(bad, 0);
    int r, cl;
    CHECK(vlm_mllama_tile_canvas(0, 5, 4, 560, &r, &cl) == 0 && vlm_mllama_tile_canvas(5, 5, 0, 560, &r, &cl) == 0 &&
          vlm_mllama_tile_canvas(5, 5, 4, 0, &r, &cl) == 0 && vlm_mllama_tile_canvas(5, 5, 65, 560, &r, &cl) == 0);
    json_decref(fx);
}

static int decode_fixture(const char *name, struct vlm_image *img) {
    size_t n;
    struct vlm_error e = {0, ""};
    uint8_t *b = fx_read(name, &n);
    if (!b) return -1;
    int rc = vlm_image_decode(b, n, NULL, img, &e);
    vlm_free(b);
    if (rc) fprintf(stderr, "%s: %s\n", name, e.msg);
    return rc;
}

static void test_images(void) {
    size_t n, nt;
    uint8_t *mt = fx_read_xz("../mllama/manifest.json.xz", &n);
    float *tensors = (float *)fx_read_xz("../mllama/tensors.f32.xz", &nt);
    json_t *m = mt ? json_loadb((const char *)mt, n, 0, NULL) : NULL;
    free(mt);
    CHECK(m != NULL && tensors != NULL);
    if (!m || !tensors) { json_decref(m); free(tensors); return; }
    json_t *arr = json_object_get(m, "processor"), *c;
    size_t i;
    int ran = 0, full = 0, hashed = 0, tiles_seen[5] = {0}, ids_seen = 0;
    CHECK(json_array_size(arr) >= 4 * 50);
    json_array_foreach(arr, i, c) {
        const char *name = fx_str(c, "name"), *cfg = fx_str(c, "config");
        json_t *hs = json_object_get(c, "tile_sha256");
        /* ASan run: the images made for Mllama, and a sample of the others at 560 x 560 */
        if (test_quick() && hs && i % 5 && strncmp(name, "../mllama/", 10)) continue;
        struct vlm_processor *p = proc_for(cfg);
        struct vlm_image img;
        struct vlm_image_input in;
        struct vlm_error e = {0, ""};
        CHECK_MSG(p != NULL, "config %s", cfg);
        if (!p || decode_fixture(name, &img)) { CHECK_MSG(0, "%s", name); continue; }
        int rc = vlm_processor_run(p, &img, NULL, &in, &e);
        CHECK_MSG(rc == VLM_OK, "%s (%s): %s", name, cfg, e.msg);
        int rows = 0, cols = 0, want_id = fx_int(c, "aspect_ratio_id");
        CHECK_EQ_INT(vlm_mllama_tile_canvas(img.height, img.width, fx_int(c, "max_tiles"), fx_int(c, "tile"),
                                            &rows, &cols), want_id);
        vlm_image_free(&img);
        if (rc) continue;
        ran++;
        int T = fx_int(c, "tile"), want_n = fx_int(c, "n_tiles"), max_tiles = fx_int(c, "max_tiles");
        CHECK_MSG(in.n_tiles == want_n && in.channels == 3 && in.height == T && in.width == T,
                  "%s (%s): (%d,%d,%d,%d), transformers %d tiles of %d", name, cfg, in.n_tiles, in.channels,
                  in.height, in.width, want_n, T);
        CHECK_MSG(in.aspect_ratio_id == want_id && in.n_rows == rows && in.n_cols == cols &&
                  rows * cols == in.n_tiles, "%s (%s): aspect_ratio_id %d (%dx%d), transformers %d", name, cfg,
                  in.aspect_ratio_id, in.n_rows, in.n_cols, want_id);
        json_t *arm = json_object_get(c, "aspect_ratio_mask");   /* = the first n_tiles of max_tiles */
        int mask_ok = (int)json_array_size(arm) == max_tiles;
        for (int k = 0; k < max_tiles && mask_ok; k++)
            mask_ok = json_integer_value(json_array_get(arm, (size_t)k)) == (k < in.n_tiles || k == 0);
        CHECK_MSG(mask_ok, "%s (%s): aspect_ratio_mask", name, cfg);
        CHECK_EQ_INT(fx_int(c, "zero_padded_tiles"), max_tiles - in.n_tiles);
        CHECK(in.n_image_tokens == 1 && in.prompt && !strcmp(in.prompt, "<|image|>"));
        if (in.pixel_mask) {   /* every pixel of every tile is real for the vision tower */
            size_t all = (size_t)in.n_tiles * T * T, ones = 0;
            for (size_t k = 0; k < all; k++) ones += in.pixel_mask[k] != 0;
            CHECK(ones == all);
        }
        if (in.n_tiles >= 1 && in.n_tiles <= 4 && !strcmp(cfg, "llama-3.2-vision")) {
            tiles_seen[in.n_tiles] = 1;
            ids_seen |= 1 << in.aspect_ratio_id;
        }
        size_t plane = (size_t)3 * T * T;
        if (hs && in.n_tiles == want_n) {
            int same = 0;
            for (int t = 0; t < in.n_tiles; t++) {
                char hex[65];
                fx_sha256_hex(in.pixels + (size_t)t * plane, plane * sizeof(float), hex);
                same += !strcmp(hex, json_string_value(json_array_get(hs, (size_t)t)));
            }
            double md = 0;
            json_t *smp, *sa = json_object_get(c, "samples");
            size_t k;
            json_array_foreach(sa, k, smp) {
                size_t at = (size_t)json_integer_value(json_array_get(smp, 0));
                double d = fabs(in.pixels[at] - json_number_value(json_array_get(smp, 1)));
                if (d > md) md = d;
            }
            CHECK_MSG(same == in.n_tiles && md <= 1e-5, "%s (%s): %d of %d tiles bit-identical, sampled max "
                      "diff %g", name, cfg, same, in.n_tiles, md);
            hashed++;
        } else if (in.n_tiles == want_n) {
            size_t off = (size_t)fx_int(c, "offset"), cnt = (size_t)fx_int(c, "count");
            CHECK(cnt == plane * (size_t)in.n_tiles && (off + cnt) * sizeof(float) <= nt);
            double md = 0;
            for (size_t k = 0; k < cnt && (off + cnt) * sizeof(float) <= nt; k++) {
                double d = fabs(in.pixels[k] - tensors[off + k]);
                if (d > md) md = d;
            }
            CHECK_MSG(md <= 1e-5, "%s (%s): max abs diff %g", name, cfg, md);
            full++;
        }
        vlm_image_input_free(&in);
    }
    CHECK(ran > 0 && full >= 100 && hashed >= (test_quick() ? 40 : 90));
    CHECK(tiles_seen[1] && tiles_seen[2] && tiles_seen[3] && tiles_seen[4]);   /* 1..4-tile canvases */
    CHECK_MSG(ids_seen == 0x1FE, "aspect_ratio_ids seen: 0x%x", ids_seen);   /* all 8 of max 4 tiles */
    json_decref(m);
    free(tensors);
}

/* Writes dir/preprocessor_config.json = json and loads it: the load's status, err filled. */
static int load_config(const char *dir, const char *json, struct vlm_processor **p, struct vlm_error *e) {
    char path[1100];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(json, f);
    fclose(f);
    *p = NULL;
    return vlm_processor_load(dir, p, e);
}

static void test_bad_configs(void) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/vlm-test-mllama-XXXXXX");
    if (!mkdtemp(dir)) { CHECK_MSG(0, "mkdtemp"); return; }
    static const struct { const char *json, *says; } bad[] = {
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": 0}", "max_image_tiles"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": -3}", "max_image_tiles"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": 100000}", "max_image_tiles"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": 1e300}", "max_image_tiles"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": \"4\"}", "max_image_tiles"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": 64, "
         "\"size\": {\"height\": 2048, \"width\": 2048}}", "too large"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"size\": {\"height\": 0, \"width\": 0}}", "size"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"size\": 560}", "size"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"size\": {\"shortest_edge\": 560}}", "size"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"size\": {\"height\": 560, \"width\": 448}}", "square"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"size\": {\"height\": 99999, \"width\": 99999}}", "tile size"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"do_pad\": false}", "do_pad"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"do_resize\": false}", "do_resize"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"resample\": 9}", "resample"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"image_std\": [0.5, 0, 0.5]}", "image_std"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"image_mean\": [0.5, 0.5]}", "image_mean"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"rescale_factor\": \"x\"}", "rescale_factor"},
        {"{\"image_processor_type\": \"MllamaImageProcessor\", \"image_mean\": [1e300, 0.5, 0.5]}", "finite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct vlm_processor *p = NULL;
        struct vlm_error e = {0, ""};
        int rc = load_config(dir, bad[i].json, &p, &e);
        CHECK_MSG(rc != VLM_OK && p == NULL && strstr(e.msg, bad[i].says), "config %zu: rc %d, \"%s\"", i, rc, e.msg);
        vlm_processor_free(p);
    }
    /* Edge configs that load: one tile (every image resized into one), 64 tiles, by class. */
    static const char *const good[] = {
        "{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": 1, \"size\": {\"height\": 8, \"width\": 8}}",
        "{\"image_processor_type\": \"MllamaImageProcessor\", \"max_image_tiles\": 64, \"size\": {\"height\": 8, \"width\": 8}}",
        "{\"processor_class\": \"MllamaProcessor\", \"size\": {\"height\": 8, \"width\": 8}}",
    };
    struct vlm_image img;
    struct vlm_error e = {0, ""};
    CHECK_EQ_INT(vlm_image_alloc(&img, 300, 7, &e), VLM_OK);
    memset(img.rgb, 200, 300 * 7 * 3);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct vlm_processor *p = NULL;
        struct vlm_image_input in;
        int rc = load_config(dir, good[i], &p, &e);
        CHECK_MSG(rc == VLM_OK, "good config %zu: %s", i, e.msg);
        if (rc) continue;
        CHECK_EQ_STR(vlm_processor_image_placeholder(p), "<|image|>");
        CHECK_EQ_INT(vlm_processor_run(p, &img, NULL, &in, &e), VLM_OK);
        int want = i == 0 ? 1 : i == 1 ? 38 : 4;   /* 300 x 7 into 8-px tiles: 1 x 38 of 64, 1 x 4 of 4 */
        CHECK_MSG(in.n_tiles == want && in.n_rows == 1, "good config %zu: %d tiles", i, in.n_tiles);
        vlm_image_input_free(&in);
        if (i == 0) {   /* allocation failures while running: errors, nothing left allocated */
            int ok = 0, badrc = 0;
            for (uint64_t k = 1; k < 100 && !ok; k++) {
                vlm_alloc_fail_after(k);
                rc = vlm_processor_run(p, &img, NULL, &in, &e);
                vlm_alloc_fail_after(0);
                if (rc == VLM_OK) ok = 1;
                else if (rc != VLM_E_NOMEM || in.pixels || in.prompt) badrc++;
                vlm_image_input_free(&in);
            }
            CHECK(ok && !badrc);
        }
        vlm_processor_free(p);
    }
    vlm_image_free(&img);
    char path[1100];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    unlink(path);
    rmdir(dir);
}

/* Random preprocessor_config.json contents (keys from the family's, values of every JSON type,
 * out-of-range numbers): each loads or fails with a message; what loads processes images. */
static void test_random_configs(void) {
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/vlm-test-mllama-XXXXXX");
    if (!mkdtemp(dir)) { CHECK_MSG(0, "mkdtemp"); return; }
    static const char *const keys[] = {"size", "max_image_tiles", "do_resize", "do_pad", "do_rescale",
                                       "do_normalize", "do_convert_rgb", "resample", "rescale_factor",
                                       "image_mean", "image_std"};
    static const char *const vals[] = {
        "0", "1", "2", "3", "4", "5", "-1", "64", "65", "1000000000", "99999999999", "0.5", "1e300", "-0.0",
        "true", "false", "null", "\"4\"", "[]", "[0.5, 0.5, 0.5]", "[1, 0, 1]", "[1e30, 1, 1]", "{}",
        "{\"height\": 8, \"width\": 8}", "{\"height\": 0, \"width\": 8}", "{\"height\": 64, \"width\": 64}",
        "{\"height\": 5, \"width\": 5, \"longest_edge\": 3}", "{\"height\": 3}"};
    uint32_t seed = 12345;
    int loaded = 0, refused = 0, n_cfg = test_quick() ? 150 : 600;
    struct vlm_image img;
    struct vlm_error e = {0, ""};
    CHECK_EQ_INT(vlm_image_alloc(&img, 37, 23, &e), VLM_OK);
    for (size_t k = 0; k < (size_t)37 * 23 * 3; k++) img.rgb[k] = (uint8_t)(k * 7);
    for (int it = 0; it < n_cfg; it++) {
        char json[2048];
        int len = snprintf(json, sizeof json, "{\"image_processor_type\": \"MllamaImageProcessor\"");
        int nk = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 4;
        int tiles_size_set = 0;
        for (int j = 0; j < nk; j++) {
            const char *key = keys[((seed = seed * 1103515245u + 12345u) >> 16) % (sizeof keys / sizeof keys[0])];
            const char *val = vals[((seed = seed * 1103515245u + 12345u) >> 16) % (sizeof vals / sizeof vals[0])];
            if (strstr(json, key)) continue;   /* duplicate keys are refused before us */
            tiles_size_set |= !strcmp(key, "size");
            len += snprintf(json + len, sizeof json - (size_t)len, ", \"%s\": %s", key, val);
        }
        if (!tiles_size_set)   /* keep the tiles small so that the runs stay quick */
            len += snprintf(json + len, sizeof json - (size_t)len, ", \"size\": {\"height\": 12, \"width\": 12}");
        snprintf(json + len, sizeof json - (size_t)len, "}");
        struct vlm_processor *p = NULL;
        int rc = load_config(dir, json, &p, &e);
        if (rc != VLM_OK) {
            CHECK_MSG(p == NULL && e.msg[0], "%s: rc %d without a message", json, rc);
            refused++;
            continue;
        }
        loaded++;
        struct vlm_image_input in;
        rc = vlm_processor_run(p, &img, NULL, &in, &e);
        CHECK_MSG(rc == VLM_OK && in.n_tiles >= 1 && in.n_tiles == in.n_rows * in.n_cols && in.aspect_ratio_id >= 1 &&
                  in.height == in.width && in.height >= 1 && in.pixels, "%s: rc %d (%s)", json, rc, e.msg);
        vlm_image_input_free(&in);
        vlm_processor_free(p);
    }
    CHECK(loaded >= n_cfg / 10 && refused >= n_cfg / 10);
    vlm_image_free(&img);
    char path[1100];
    snprintf(path, sizeof path, "%s/preprocessor_config.json", dir);
    unlink(path);
    rmdir(dir);
}

int main(void) {
    test_canvas();
    test_cross_attention();
    test_images();
    test_bad_configs();
    test_random_configs();
    for (int i = 0; i < N_CONFIGS; i++) vlm_processor_free(procs[i]);
    TEST_MAIN_END();
}
