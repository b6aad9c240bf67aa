/* decode_png.c — PNG through libpng, giving PIL's pixels: 16-bit colour keeps the high byte,
 * 16-bit grey ("I;16") is clipped to 255 as PIL's convert does, palettes are mapped here
 * (alpha from tRNS), grey/RGB colour keys become alpha as PIL's convert("RGBA") does. */
#include "image/decode_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <png.h>
#include <setjmp.h>
#include <string.h>

struct src { const uint8_t *p; size_t n, off; };

static void on_read(png_structp png, png_bytep dst, png_size_t len) {
    struct src *s = png_get_io_ptr(png);
    if (len > s->n - s->off) png_error(png, "eof");
    memcpy(dst, s->p + s->off, len);
    s->off += len;
}
static void on_error(png_structp png, png_const_charp msg) { (void)msg; png_longjmp(png, 1); }
static void on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

struct key {           /* tRNS for grey/RGB, compared as PIL compares it */
    int have;
    unsigned v[3];
};

/* Converts one decoded row (after libpng's transforms) to RGB/RGBA in d. */
static void convert_row(const uint8_t *s, uint8_t *d, int w, int color, int depth16grey,
                        const png_color *pal, const uint8_t *palpha, const struct key *k,
                        int alpha) {
    int oc = alpha ? 4 : 3;
    for (int x = 0; x < w; x++, d += oc) {
        unsigned r, g, b, a = 255;
        switch (color) {
        case PNG_COLOR_TYPE_PALETTE:
            r = pal[s[x]].red; g = pal[s[x]].green; b = pal[s[x]].blue; a = palpha[s[x]];
            break;
        case PNG_COLOR_TYPE_GRAY:
            if (depth16grey) {
                unsigned v = (unsigned)s[2 * x] << 8 | s[2 * x + 1];
                r = g = b = v > 255 ? 255 : v;
                if (k->have && v == k->v[0]) a = 0;
            } else {
                r = g = b = s[x];
                if (k->have && s[x] == k->v[0]) a = 0;
            }
            break;
        case PNG_COLOR_TYPE_GRAY_ALPHA:
            r = g = b = s[2 * x]; a = s[2 * x + 1];
            break;
        case PNG_COLOR_TYPE_RGB:
            r = s[3 * x]; g = s[3 * x + 1]; b = s[3 * x + 2];
            if (k->have && r == k->v[0] && g == k->v[1] && b == k->v[2]) a = 0;
            break;
        default:
            r = s[4 * x]; g = s[4 * x + 1]; b = s[4 * x + 2]; a = s[4 * x + 3];
            break;
        }
        d[0] = (uint8_t)r; d[1] = (uint8_t)g; d[2] = (uint8_t)b;
        if (alpha) d[3] = (uint8_t)a;
    }
}

int img_decode_png(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                   struct img_raw *out, struct vlm_error *err) {
    struct src s = {b, n, 0};
    png_structp png = NULL;
    png_infop info = NULL;
    uint8_t *volatile buf = NULL;
    png_bytep *volatile rows = NULL;
    volatile int rc = VLM_OK;

    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, NULL, on_error, on_warning);
    if (!png) return vlm_error_set(err, VLM_E_NOMEM, "image: out of memory");
    info = png_create_info_struct(png);
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); return vlm_error_set(err, VLM_E_NOMEM, "image: out of memory"); }
    if (setjmp(png_jmpbuf(png))) {
        vlm_free(buf);
        vlm_free(rows);
        img_raw_free(out);
        png_destroy_read_struct(&png, &info, NULL);
        return rc ? rc : img_corrupt(err, "PNG");
    }
    png_set_read_fn(png, &s, on_read);
    png_set_user_limits(png, 1u << 24, 1u << 24);
    png_set_chunk_cache_max(png, 1000);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, info);

    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    rc = img_check_size(w, h, lim, err);
    if (rc) png_longjmp(png, 1);

    /* Palette (zero-padded to 256 like PIL's and libpng's) and its alpha. */
    png_color pal[256];
    uint8_t palpha[256];
    struct key key = {0, {0, 0, 0}};
    memset(pal, 0, sizeof pal);
    memset(palpha, 255, sizeof palpha);
    int has_alpha = (color & PNG_COLOR_MASK_ALPHA) != 0;
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_colorp p; int np = 0;
        if (png_get_PLTE(png, info, &p, &np) && np > 0) memcpy(pal, p, (size_t)(np > 256 ? 256 : np) * sizeof *p);
    }
    if (png_get_valid(png, info, PNG_INFO_tRNS)) {
        png_bytep ta; int nt = 0; png_color_16p tc;
        png_get_tRNS(png, info, &ta, &nt, &tc);
        if (color == PNG_COLOR_TYPE_PALETTE && ta && nt > 0) {
            memcpy(palpha, ta, (size_t)(nt > 256 ? 256 : nt));
            has_alpha = 1;
        } else if (color == PNG_COLOR_TYPE_GRAY && tc) {
            key.have = 1;   /* PIL compares the raw value; 1-bit images use 0/255 */
            key.v[0] = depth == 1 ? (tc->gray ? 255u : 0u) : tc->gray;
            has_alpha = 1;
        } else if (color == PNG_COLOR_TYPE_RGB && tc) {
            key.have = 1;
            key.v[0] = tc->red; key.v[1] = tc->green; key.v[2] = tc->blue;
            has_alpha = 1;
        }
    }
    int grey16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_packing(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16 && !grey16) png_set_strip_16(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    size_t rowbytes = png_get_rowbytes(png, info), total;
    size_t need = (size_t)w * (grey16 ? 2 : (size_t)png_get_channels(png, info));
    if (rowbytes < need || !vlm_mul_ok(rowbytes, h, &total)) png_longjmp(png, 1);
    rc = img_raw_alloc(out, (int)w, (int)h, has_alpha, lim, err);
    if (rc) png_longjmp(png, 1);
    buf = vlm_malloc(total);
    rows = vlm_malloc(sizeof(png_bytep) * h);
    if (!buf || !rows) { rc = vlm_error_set(err, VLM_E_NOMEM, "image: out of memory"); png_longjmp(png, 1); }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = buf + (size_t)y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, info);   /* reads eXIf after the image data too, as PIL does */

    png_uint_32 exn = 0; png_bytep ex = NULL;
    if (png_get_eXIf_1(png, info, &exn, &ex) && ex) out->orientation = img_exif_orientation(ex, exn);

    int oc = has_alpha ? 4 : 3;
    for (png_uint_32 y = 0; y < h; y++)
        convert_row(rows[y], out->px + (size_t)y * w * oc, (int)w, color, grey16, pal, palpha,
                    &key, has_alpha);
    vlm_free(buf);
    vlm_free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return VLM_OK;
}
