/* decode.c — the decoder front door: sniffs the format from magic bytes, runs the format's
 * decoder (decode_*.c), then does what transformers + PIL do next: alpha to RGB (composite
 * onto the background, or drop) and the EXIF orientation (ImageOps.exif_transpose). */
#include "image/decode_internal.h"
#include "image/image.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>
#include <sys/mman.h>

struct vlm_image_limits vlm_image_default_limits(void) {
    struct vlm_image_limits l;
    memset(&l, 0, sizeof l);
    l.max_pixels = 89478485ull;   /* PIL's Image.MAX_IMAGE_PIXELS */
    l.max_frames = 1000;
    l.background[0] = l.background[1] = l.background[2] = 255;
    l.alpha_mode = VLM_ALPHA_COMPOSITE;
    l.max_jpeg_scans = 1000;
    l.apply_exif = 1;
    return l;
}

enum vlm_image_format vlm_image_sniff(const uint8_t *b, size_t n) {
    if (!b) return VLM_IMAGE_UNKNOWN;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return VLM_IMAGE_JPEG;
    if (n >= 8 && !memcmp(b, "\x89PNG\r\n\x1a\n", 8)) return VLM_IMAGE_PNG;
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return VLM_IMAGE_WEBP;
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return VLM_IMAGE_GIF;
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return VLM_IMAGE_BMP;
    return VLM_IMAGE_UNKNOWN;
}

const char *vlm_image_format_name(enum vlm_image_format f) {
    switch (f) {
    case VLM_IMAGE_JPEG: return "jpeg";
    case VLM_IMAGE_PNG:  return "png";
    case VLM_IMAGE_WEBP: return "webp";
    case VLM_IMAGE_GIF:  return "gif";
    case VLM_IMAGE_BMP:  return "bmp";
    default:             return "unknown";
    }
}

void vlm_image_advise_large(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    if (!p || n < 4 * huge) return;
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(huge - 1), e = ((uintptr_t)p + n) & ~(huge - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
    (void)p; (void)n;
#endif
}

int img_corrupt(struct vlm_error *err, const char *format) {
    return vlm_error_set(err, VLM_E_FORMAT, "image: corrupt or truncated %s data", format);
}

int img_check_size(uint64_t w, uint64_t h, const struct vlm_image_limits *lim,
                   struct vlm_error *err) {
    if (w == 0 || h == 0) return vlm_error_set(err, VLM_E_FORMAT, "image: zero width or height");
    if (w > (1u << 24) || h > (1u << 24) || w * h > lim->max_pixels)
        return vlm_error_set(err, VLM_E_TOO_LARGE,
                             "image: %llu x %llu pixels is over the limit of %llu pixels",
                             (unsigned long long)w, (unsigned long long)h,
                             (unsigned long long)lim->max_pixels);
    return VLM_OK;
}

int img_raw_alloc(struct img_raw *r, int w, int h, int has_alpha,
                  const struct vlm_image_limits *lim, struct vlm_error *err) {
    size_t n;
    int rc = img_check_size((uint64_t)(w < 0 ? 0 : w), (uint64_t)(h < 0 ? 0 : h), lim, err);
    if (rc) return rc;
    if (!vlm_mul3_ok((size_t)w, (size_t)h, has_alpha ? 4 : 3, &n))
        return vlm_error_set(err, VLM_E_TOO_LARGE, "image: too large");
    r->px = vlm_malloc(n);
    if (!r->px) return vlm_error_set(err, VLM_E_NOMEM, "image: out of memory for %d x %d", w, h);
    vlm_image_advise_large(r->px, n);
    r->w = w;
    r->h = h;
    r->has_alpha = has_alpha;
    return VLM_OK;
}

void img_raw_free(struct img_raw *r) {
    if (!r) return;
    vlm_free(r->px);
    r->px = NULL;
}

/* ---- EXIF ---------------------------------------------------------------------------- */

static unsigned rd16(const uint8_t *p, int le) { return le ? p[0] | p[1] << 8 : p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
    return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
              : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int img_exif_orientation(const uint8_t *p, size_t n) {
    if (!p) return 0;
    if (n >= 6 && !memcmp(p, "Exif\0\0", 6)) { p += 6; n -= 6; }
    if (n < 8) return 0;
    int le;
    if (p[0] == 'I' && p[1] == 'I') le = 1;
    else if (p[0] == 'M' && p[1] == 'M') le = 0;
    else return 0;
    if (rd16(p + 2, le) != 42) return 0;
    uint32_t ifd = rd32(p + 4, le);
    if (ifd > n || n - ifd < 2) return 0;
    unsigned count = rd16(p + ifd, le);
    for (unsigned i = 0; i < count; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        if (e + 12 > n) return 0;
        if (rd16(p + e, le) != 0x0112) continue;
        unsigned type = rd16(p + e + 2, le);
        uint32_t cnt = rd32(p + e + 4, le);
        if (cnt < 1) return 0;
        unsigned v;
        if (type == 3) v = rd16(p + e + 8, le);        /* SHORT */
        else if (type == 4) v = rd32(p + e + 8, le);   /* LONG */
        else return 0;
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

/* ---- conversion to RGB --------------------------------------------------------------- */

/* PIL's alpha_composite(background opaque, src): exact integer arithmetic of
 * AlphaComposite.c for an opaque destination (coefficients a*128 and (255-a)*128). */
static inline uint8_t blend(unsigned c, unsigned a, unsigned bg) {
    if (a == 0) return (uint8_t)bg;
    uint32_t x = (c * a + bg * (255 - a)) * 128u + (0x80u << 7);
    return (uint8_t)(((((x >> 8) + x) >> 8)) >> 7);
}

static int raw_to_rgb(struct img_raw *r, const struct vlm_image_limits *lim,
                      struct vlm_image *out, struct vlm_error *err) {
    if (!r->has_alpha) {
        out->width = r->w;
        out->height = r->h;
        out->rgb = r->px;
        r->px = NULL;
        return VLM_OK;
    }
    int rc = vlm_image_alloc(out, r->w, r->h, err);
    if (rc) return rc;
    size_t n = (size_t)r->w * (size_t)r->h;
    const uint8_t *s = r->px;
    uint8_t *d = out->rgb;
    if (lim->alpha_mode == VLM_ALPHA_DROP) {
        for (size_t i = 0; i < n; i++, s += 4, d += 3) { d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; }
    } else {
        const uint8_t *bg = lim->background;
        for (size_t i = 0; i < n; i++, s += 4, d += 3) {
            d[0] = blend(s[0], s[3], bg[0]);
            d[1] = blend(s[1], s[3], bg[1]);
            d[2] = blend(s[2], s[3], bg[2]);
        }
    }
    img_raw_free(r);
    return VLM_OK;
}

/* Applies EXIF orientation o (2..8) as PIL's exif_transpose: 2 mirror, 3 rotate 180,
 * 4 flip, 5 transpose, 6 rotate 270 (clockwise 90), 7 transverse, 8 rotate 90. */
static int orient(struct vlm_image *img, int o, struct vlm_error *err) {
    if (o < 2 || o > 8) return VLM_OK;
    int W = img->width, H = img->height;
    int swap = o >= 5;
    struct vlm_image t;
    int rc = vlm_image_alloc(&t, swap ? H : W, swap ? W : H, err);
    if (rc) return rc;
    for (int y = 0; y < t.height; y++) {
        uint8_t *d = t.rgb + (size_t)y * t.width * 3;
        for (int x = 0; x < t.width; x++, d += 3) {
            int sx, sy;
            switch (o) {
            case 2:  sx = W - 1 - x; sy = y; break;
            case 3:  sx = W - 1 - x; sy = H - 1 - y; break;
            case 4:  sx = x; sy = H - 1 - y; break;
            case 5:  sx = y; sy = x; break;
            case 6:  sx = y; sy = H - 1 - x; break;
            case 7:  sx = W - 1 - y; sy = H - 1 - x; break;
            default: sx = W - 1 - y; sy = x; break;   /* 8 */
            }
            const uint8_t *s = img->rgb + ((size_t)sy * W + sx) * 3;
            d[0] = s[0]; d[1] = s[1]; d[2] = s[2];
        }
    }
    vlm_image_free(img);
    *img = t;
    return VLM_OK;
}

int vlm_image_decode_as(enum vlm_image_format fmt, const uint8_t *bytes, size_t len,
                        const struct vlm_image_limits *lim, struct vlm_image *out,
                        struct vlm_error *err) {
    struct vlm_image_limits dl = vlm_image_default_limits();
    struct img_raw r;
    int rc;
    if (!out) return vlm_error_set(err, VLM_E_INVALID, "image: no output");
    memset(out, 0, sizeof *out);
    memset(&r, 0, sizeof r);
    if (!lim) lim = &dl;
    if (!bytes || len == 0) return vlm_error_set(err, VLM_E_FORMAT, "image: empty data");
    switch (fmt) {
    case VLM_IMAGE_JPEG: rc = img_decode_jpeg(bytes, len, lim, &r, err); break;
    case VLM_IMAGE_PNG:  rc = img_decode_png(bytes, len, lim, &r, err); break;
    case VLM_IMAGE_WEBP: rc = img_decode_webp(bytes, len, lim, &r, err); break;
    case VLM_IMAGE_GIF:  rc = img_decode_gif(bytes, len, lim, &r, err); break;
    case VLM_IMAGE_BMP:  rc = img_decode_bmp(bytes, len, lim, &r, err); break;
    default:
        return vlm_error_set(err, VLM_E_FORMAT,
                             "image: not a supported image format (JPEG, PNG, WebP, GIF, BMP)");
    }
    if (rc == VLM_OK) rc = raw_to_rgb(&r, lim, out, err);
    img_raw_free(&r);
    if (rc == VLM_OK && lim->apply_exif) rc = orient(out, r.orientation, err);
    if (rc) vlm_image_free(out);
    return rc;
}

int vlm_image_decode(const uint8_t *bytes, size_t len, const struct vlm_image_limits *lim,
                     struct vlm_image *out, struct vlm_error *err) {
    return vlm_image_decode_as(vlm_image_sniff(bytes, len), bytes, len, lim, out, err);
}

void vlm_image_free(struct vlm_image *img) {
    if (!img) return;
    vlm_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

int vlm_image_alloc(struct vlm_image *img, int width, int height, struct vlm_error *err) {
    size_t n;
    img->rgb = NULL;
    img->width = img->height = 0;
    if (width < 1 || height < 1 || !vlm_mul3_ok((size_t)width, (size_t)height, 3, &n))
        return vlm_error_set(err, VLM_E_INVALID, "image: bad size %d x %d", width, height);
    img->rgb = vlm_malloc(n);
    if (!img->rgb) return vlm_error_set(err, VLM_E_NOMEM, "image: out of memory");
    vlm_image_advise_large(img->rgb, n);
    img->width = width;
    img->height = height;
    return VLM_OK;
}
