/* test_image.c — decoders and resize against PIL: decoded RGB of every fixture equals PIL's
 * (hash of the bytes, alpha composited and dropped), resize equals Image.resize for every
 * filter on pseudo-random images, and bad inputs (bombs, truncations, zero bytes, corrupt
 * bytes, allocation failures) give clean errors. References: scripts/make_image_fixtures.py. */
#include "image/image.h"
#include "image_fixture.h"
#include "test.h"
#include "util/alloc.h"
#include "util/error.h"

static const char *const fixtures[] = {
    "astronaut.jpg", "coffee.jpg", "chelsea.png", "odd_37x23.jpg", "palette_trns.png", "rgba.png",
    "grey16.png", "interlaced.png", "cmyk.jpg", "progressive.jpg", "exif_6.jpg", "anim.gif",
    "trns.gif", "lossy.webp", "lossless_rgba.webp", "anim.webp", "rgb24.bmp", "pal8.bmp",
    "rgb565.bmp", "mono.bmp", "rle8.bmp", "rle4.bmp"};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

static int decode_ok(const uint8_t *b, size_t n, const struct vlm_image_limits *l, struct vlm_image *img) {
    struct vlm_error e = {0, ""};
    return vlm_image_decode(b, n, l, img, &e);
}

static void test_decode_parity(json_t *m) {
    json_t *arr = json_object_get(m, "decode"), *d;
    size_t i;
    CHECK(json_array_size(arr) >= 40);
    json_array_foreach(arr, i, d) {
        size_t n;
        const char *name = fx_str(d, "name");
        uint8_t *b = fx_read(name, &n);
        CHECK_MSG(b != NULL, "%s", name);
        if (!b) continue;
        for (int mode = 0; mode < 2; mode++) {
            struct vlm_image_limits l = vlm_image_default_limits();
            struct vlm_image img;
            struct vlm_error e = {0, ""};
            l.alpha_mode = mode ? VLM_ALPHA_DROP : VLM_ALPHA_COMPOSITE;
            int rc = vlm_image_decode(b, n, &l, &img, &e);
            CHECK_MSG(rc == VLM_OK, "%s: %s", name, e.msg);
            if (rc) continue;
            char hex[65];
            fx_sha256_hex(img.rgb, (size_t)img.width * img.height * 3, hex);
            CHECK_MSG(img.width == fx_int(d, "w") && img.height == fx_int(d, "h"), "%s: %dx%d", name,
                      img.width, img.height);
            CHECK_MSG(!strcmp(hex, fx_str(d, mode ? "rgb_drop_sha256" : "rgb_sha256")),
                      "%s: decoded pixels differ from PIL (%s)", name, mode ? "alpha dropped" : "composited");
            vlm_image_free(&img);
        }
        vlm_free(b);
    }
}

/* The same pseudo-random bytes as lcg_image() in the fixture script. */
static void lcg_fill(uint32_t seed, uint8_t *p, size_t n) {
    uint32_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
}

static void test_resize_parity(json_t *m) {
    json_t *arr = json_object_get(m, "resize"), *c;
    size_t i;
    int filters_seen = 0;
    CHECK(json_array_size(arr) >= 30);
    json_array_foreach(arr, i, c) {
        struct vlm_image in, out;
        struct vlm_error e = {0, ""};
        int w = fx_int(c, "w"), h = fx_int(c, "h"), f = fx_int(c, "filter");
        CHECK(vlm_image_alloc(&in, w, h, &e) == VLM_OK);
        lcg_fill((uint32_t)fx_int(c, "seed"), in.rgb, (size_t)w * h * 3);
        int rc = vlm_image_resize(&in, fx_int(c, "ow"), fx_int(c, "oh"), f, &out, &e);
        CHECK_MSG(rc == VLM_OK, "%s", e.msg);
        if (rc == VLM_OK) {
            char hex[65];
            fx_sha256_hex(out.rgb, (size_t)out.width * out.height * 3, hex);
            CHECK_MSG(!strcmp(hex, fx_str(c, "sha256")), "resize %dx%d -> %dx%d filter %d differs from PIL",
                      w, h, fx_int(c, "ow"), fx_int(c, "oh"), f);
            filters_seen |= 1 << f;
        }
        vlm_image_free(&in);
        vlm_image_free(&out);
    }
    CHECK_EQ_INT(filters_seen, 0x3F);   /* NEAREST, LANCZOS, BILINEAR, BICUBIC, BOX, HAMMING */
}

/* A window of a resize equals the same rectangle of the full resize, on every pass order. */
static void test_resize_window(void) {
    static const int cases[][4] = {{40, 30, 90, 70}, {90, 70, 40, 30}, {50, 60, 50, 20}, {50, 60, 80, 60},
                                   {64, 64, 60, 10}, {30, 80, 90, 30}, {13, 7, 200, 3}};
    int bad = 0, n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int f = 0; f <= VLM_RESAMPLE_HAMMING; f++) {
            struct vlm_image in, full, win;
            struct vlm_error e = {0, ""};
            int W = cases[i][2], H = cases[i][3];
            vlm_image_alloc(&in, cases[i][0], cases[i][1], &e);
            lcg_fill((uint32_t)(i * 7 + (size_t)f), in.rgb, (size_t)in.width * in.height * 3);
            int x0 = W / 3, y0 = H / 4, w = W - W / 3 - W / 5, h = H - H / 4 - H / 6;
            if (w < 1) w = 1;
            if (h < 1) h = 1;
            if (vlm_image_resize(&in, W, H, f, &full, &e) || vlm_image_resize_window(&in, W, H, f, x0, y0, w, h, &win, &e)) {
                bad++;
            } else {
                for (int y = 0; y < h; y++)
                    bad += memcmp(win.rgb + (size_t)y * w * 3, full.rgb + ((size_t)(y0 + y) * W + x0) * 3, (size_t)w * 3) != 0;
                n++;
            }
            vlm_image_free(&in);
            vlm_image_free(&full);
            vlm_image_free(&win);
        }
    CHECK_MSG(bad == 0 && n == 42, "resize windows: %d mismatched rows", bad);
}

static void test_bombs(void) {
    static const char *const bombs[] = {"bomb.png", "bomb.gif", "bomb.jpg", "bomb.bmp", "bomb.webp"};
    for (size_t i = 0; i < sizeof bombs / sizeof bombs[0]; i++) {
        size_t n;
        uint8_t *b = fx_read(bombs[i], &n);
        struct vlm_image img;
        CHECK(b != NULL);
        if (!b) continue;
        uint64_t before = vlm_alloc_fail_after(0);
        (void)before;
        int rc = decode_ok(b, n, NULL, &img);
        CHECK_MSG(rc == VLM_E_TOO_LARGE, "%s: rc %d", bombs[i], rc);
        CHECK(img.rgb == NULL && img.width == 0);
        vlm_free(b);
    }
    /* A configured cap below the image: refused before decoding. */
    size_t n;
    uint8_t *b = fx_read("astronaut.jpg", &n);
    struct vlm_image_limits l = vlm_image_default_limits();
    struct vlm_image img;
    l.max_pixels = 512 * 512 - 1;
    CHECK_EQ_INT(decode_ok(b, n, &l, &img), VLM_E_TOO_LARGE);
    l.max_pixels = 512 * 512;
    CHECK_EQ_INT(decode_ok(b, n, &l, &img), VLM_OK);
    vlm_image_free(&img);
    vlm_free(b);
    /* Progressive scan cap. */
    b = fx_read("coffee.jpg", &n);
    l = vlm_image_default_limits();
    l.max_jpeg_scans = 2;
    CHECK_EQ_INT(decode_ok(b, n, &l, &img), VLM_E_TOO_LARGE);
    vlm_free(b);
    /* Animated WebP frame cap. */
    b = fx_read("anim.webp", &n);
    l = vlm_image_default_limits();
    l.max_frames = 2;
    CHECK_EQ_INT(decode_ok(b, n, &l, &img), VLM_E_TOO_LARGE);
    l.max_frames = 3;
    CHECK_EQ_INT(decode_ok(b, n, &l, &img), VLM_OK);
    vlm_image_free(&img);
    vlm_free(b);
}

static int clean_rc(int rc) {
    return rc == VLM_OK || rc == VLM_E_FORMAT || rc == VLM_E_TOO_LARGE || rc == VLM_E_UNSUPPORTED;
}

static void test_truncation_and_corruption(void) {
    for (size_t f = 0; f < N_FIXTURES; f++) {
        size_t n;
        uint8_t *b = fx_read(fixtures[f], &n);
        CHECK(b != NULL);
        if (!b) continue;
        struct vlm_image img;
        /* Cut in the middle of the data: every decoder must refuse, as PIL does. */
        if (strncmp(fixtures[f], "anim.gif", 8)) {   /* a GIF's first frame may end before */
            CHECK_MSG(decode_ok(b, n / 2, NULL, &img) != VLM_OK, "%s cut at half decoded", fixtures[f]);
            CHECK(img.rgb == NULL);
        }
        size_t step = test_quick() ? n / 16 + 1 : n / 97 + 1, bad = 0;
        for (size_t cut = 0; cut < n; cut += step) {
            int rc = decode_ok(b, cut, NULL, &img);
            if (!clean_rc(rc) || (rc != VLM_OK && img.rgb)) bad++;
            vlm_image_free(&img);
        }
        CHECK_MSG(bad == 0, "%s: %zu truncations gave an unclean result", fixtures[f], bad);
        /* Corrupt bytes (deterministic positions and values past the first 16 bytes). */
        uint8_t *c = malloc(n);
        uint32_t x = 12345;
        int rounds = test_quick() ? 8 : 40;
        bad = 0;
        for (int r = 0; r < rounds && c; r++) {
            memcpy(c, b, n);
            for (int k = 0; k < 4 && n > 17; k++) {
                x = x * 1664525u + 1013904223u;
                c[16 + (x >> 8) % (n - 16)] ^= (uint8_t)(1u + (x & 0xFE));
            }
            int rc = decode_ok(c, n, NULL, &img);
            if (!clean_rc(rc)) bad++;
            if (rc == VLM_OK) CHECK(img.width > 0 && img.height > 0 && img.rgb);
            vlm_image_free(&img);
        }
        CHECK_MSG(bad == 0, "%s: corrupt data gave an unclean result", fixtures[f]);
        free(c);
        vlm_free(b);
    }
}

static void test_small_inputs(void) {
    struct vlm_image img;
    struct vlm_error e = {0, ""};
    static const uint8_t zeros[64] = {0};
    static const uint8_t text[] = "hello, this is not an image at all";
    CHECK_EQ_INT(vlm_image_decode(zeros, 0, NULL, &img, &e), VLM_E_FORMAT);
    CHECK_EQ_INT(vlm_image_decode(NULL, 10, NULL, &img, &e), VLM_E_FORMAT);
    CHECK_EQ_INT(vlm_image_decode(zeros, sizeof zeros, NULL, &img, &e), VLM_E_FORMAT);
    CHECK_EQ_INT(vlm_image_decode(text, sizeof text, NULL, &img, &e), VLM_E_FORMAT);
    CHECK(strstr(e.msg, "not a supported image format") != NULL);
    /* Magic bytes alone, for each format. */
    static const char *const magics[] = {"\xFF\xD8\xFF", "\x89PNG\r\n\x1a\n", "RIFF\0\0\0\0WEBP", "GIF89a", "BM"};
    static const size_t mlen[] = {3, 8, 12, 6, 2};
    for (int i = 0; i < 5; i++) {
        int rc = vlm_image_decode((const uint8_t *)magics[i], mlen[i], NULL, &img, &e);
        CHECK_MSG(rc == VLM_E_FORMAT, "magic %d: rc %d", i, rc);
        CHECK(img.rgb == NULL);
        /* Messages are generic: no library text such as "libpng" or "Premature". */
        CHECK(strstr(e.msg, "lib") == NULL);
    }
    /* Sniffing ignores file names: a PNG is a PNG whatever it is called. */
    size_t n;
    uint8_t *b = fx_read("chelsea.png", &n);
    CHECK_EQ_INT(vlm_image_sniff(b, n), VLM_IMAGE_PNG);
    CHECK_EQ_INT(vlm_image_decode_as(VLM_IMAGE_JPEG, b, n, NULL, &img, &e), VLM_E_FORMAT);
    vlm_free(b);
}

/* Every allocation failure on the way returns an error and leaks nothing (ASan checks). */
static void test_alloc_failures(void) {
    static const char *const names[] = {"rgba.png", "odd_37x23.jpg", "trns.gif", "lossy.webp", "pal8.bmp"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        size_t n;
        uint8_t *b = fx_read(names[f], &n);
        int ok = 0, bad = 0;
        for (uint64_t k = 1; k < 64 && !ok; k++) {
            struct vlm_image img;
            struct vlm_error e = {0, ""};
            vlm_alloc_fail_after(k);
            int rc = vlm_image_decode(b, n, NULL, &img, &e);
            vlm_alloc_fail_after(0);
            if (rc == VLM_OK) ok = 1;
            else if (rc != VLM_E_NOMEM || img.rgb) bad++;
            vlm_image_free(&img);
        }
        CHECK_MSG(ok && !bad, "%s: allocation failures handled badly", names[f]);
        vlm_free(b);
    }
}

static void test_orientation_and_alpha(void) {
    /* exif_6 (rotate 270) turns the 24 x 16 source into 16 x 24. */
    size_t n;
    struct vlm_image a, b2;
    uint8_t *b = fx_read("exif_6.jpg", &n);
    struct vlm_image_limits l = vlm_image_default_limits();
    CHECK_EQ_INT(decode_ok(b, n, &l, &a), VLM_OK);
    CHECK(a.width == 16 && a.height == 24);
    l.apply_exif = 0;
    CHECK_EQ_INT(decode_ok(b, n, &l, &b2), VLM_OK);
    CHECK(b2.width == 24 && b2.height == 16);
    vlm_image_free(&a);
    vlm_image_free(&b2);
    vlm_free(b);
    /* A black background changes composited pixels of a translucent image. */
    b = fx_read("rgba.png", &n);
    l = vlm_image_default_limits();
    CHECK_EQ_INT(decode_ok(b, n, &l, &a), VLM_OK);
    l.background[0] = l.background[1] = l.background[2] = 0;
    CHECK_EQ_INT(decode_ok(b, n, &l, &b2), VLM_OK);
    CHECK(a.rgb && b2.rgb && memcmp(a.rgb, b2.rgb, (size_t)a.width * a.height * 3) != 0);
    vlm_image_free(&a);
    vlm_image_free(&b2);
    vlm_free(b);
}

static void test_resize_args(void) {
    struct vlm_image in, out;
    struct vlm_error e = {0, ""};
    CHECK_EQ_INT(vlm_image_alloc(&in, 4, 3, &e), VLM_OK);
    memset(in.rgb, 7, 36);
    CHECK_EQ_INT(vlm_image_resize(&in, 0, 3, VLM_RESAMPLE_BILINEAR, &out, &e), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_image_resize(&in, 2, 2, 42, &out, &e), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_image_resize(&in, 9, 5, VLM_RESAMPLE_LANCZOS, &out, &e), VLM_OK);
    CHECK(out.width == 9 && out.height == 5 && out.rgb[0] == 7 && out.rgb[9 * 5 * 3 - 1] == 7);
    vlm_image_free(&out);
    CHECK_EQ_INT(vlm_image_crop(&in, 2, 1, 3, 1, &out, &e), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_image_crop(&in, 1, 1, 3, 2, &out, &e), VLM_OK);
    vlm_image_free(&out);
    vlm_image_free(&in);
}

int main(void) {
    json_t *m = fx_manifest();
    CHECK(m != NULL);
    if (m) {
        test_decode_parity(m);
        test_resize_parity(m);                 /* SIMD kernels where the CPU has them */
        setenv("VLM_FORCE_GENERIC", "1", 1);   /* and the scalar reference */
        test_resize_parity(m);
        test_decode_parity(m);
        unsetenv("VLM_FORCE_GENERIC");
        json_decref(m);
    }
    test_resize_window();
    setenv("VLM_FORCE_GENERIC", "1", 1);
    test_resize_window();
    unsetenv("VLM_FORCE_GENERIC");
    test_bombs();
    test_truncation_and_corruption();
    test_small_inputs();
    test_alloc_failures();
    test_orientation_and_alpha();
    test_resize_args();
    TEST_MAIN_END();
}
