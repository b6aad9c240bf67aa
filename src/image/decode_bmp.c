/* decode_bmp.c — a small BMP reader covering what PIL's BmpImagePlugin opens:
 * core/info/v4/v5 headers, 1/4/8-bit palettes (raw or RLE4/RLE8), 16-bit 555/565, 24-bit,
 * 32-bit BGRX and the bit-field layouts PIL accepts (alpha when the mask has one). */
#include "image/decode_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static unsigned le16(const uint8_t *p) { return p[0] | p[1] << 8; }

struct bmp {
    uint32_t w, h;
    int top_down, bits, compression, colors, pad;   /* pad: palette entry size, 3 or 4 */
    uint32_t mask[4];                               /* r, g, b, a for bit fields */
    size_t pal_off, data_off;
};

/* The 32-bit bit-field layouts PIL supports: each mask is one whole byte (or zero). */
static int masks_ok32(const uint32_t m[4]) {
    static const uint32_t ok[][4] = {
        {0xFF0000, 0xFF00, 0xFF, 0}, {0xFF000000, 0xFF0000, 0xFF00, 0}, {0xFF000000, 0xFF00, 0xFF, 0},
        {0xFF000000, 0xFF0000, 0xFF00, 0xFF}, {0xFF, 0xFF00, 0xFF0000, 0xFF000000},
        {0xFF0000, 0xFF00, 0xFF, 0xFF000000}, {0xFF000000, 0xFF00, 0xFF, 0xFF0000}, {0, 0, 0, 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!memcmp(ok[i], m, sizeof ok[i])) return 1;
    return 0;
}

static int parse_header(const uint8_t *b, size_t n, struct bmp *h) {
    if (n < 18) return -1;
    uint32_t hs = le32(b + 14);
    memset(h, 0, sizeof *h);
    if (hs < 12 || hs > n - 14) return -1;
    const uint8_t *d = b + 18;   /* header data after its size field */
    size_t pos = 14 + (size_t)hs;
    if (hs == 12) {
        h->w = le16(d); h->h = le16(d + 2); h->bits = (int)le16(d + 6);
        h->pad = 3;
    } else if (hs == 40 || hs == 52 || hs == 56 || hs == 64 || hs == 108 || hs == 124) {
        h->w = le32(d);
        h->top_down = d[7] == 0xFF;
        h->h = h->top_down ? (uint32_t)(0u - le32(d + 4)) : le32(d + 4);
        h->bits = (int)le16(d + 10);
        h->compression = (int)le32(d + 12);
        h->colors = (int)le32(d + 28);
        h->pad = 4;
        if (h->compression == 3) {
            if (hs - 4 >= 48) {
                for (int i = 0; i < 3; i++) h->mask[i] = le32(d + 36 + 4 * i);
                h->mask[3] = hs - 4 >= 52 ? le32(d + 48) : 0;
            } else {
                if (n - pos < 12) return -1;
                for (int i = 0; i < 3; i++) h->mask[i] = le32(b + pos + 4 * i);
                pos += 12;
            }
        }
    } else {
        return -1;
    }
    if (h->colors == 0 || h->pad == 3) h->colors = h->bits < 31 ? 1 << (h->bits > 16 ? 16 : h->bits) : 0;
    h->pal_off = pos;
    h->data_off = le32(b + 10);
    if (h->data_off == 14 + (size_t)hs && h->bits <= 8) h->data_off += (size_t)h->pad * h->colors;
    return 0;
}

static int bits_supported(const struct bmp *h) {
    if (h->compression == 1 || h->compression == 2) return h->bits == 1 || h->bits == 4 || h->bits == 8;
    if (h->compression == 0) return h->bits == 1 || h->bits == 4 || h->bits == 8 ||
                                    h->bits == 16 || h->bits == 24 || h->bits == 32;
    if (h->compression != 3) return 0;
    if (h->bits == 32) return masks_ok32(h->mask);
    if (h->bits == 24) return h->mask[0] == 0xFF0000 && h->mask[1] == 0xFF00 && h->mask[2] == 0xFF;
    if (h->bits == 16) return (h->mask[0] == 0xF800 && h->mask[1] == 0x7E0 && h->mask[2] == 0x1F) ||
                              (h->mask[0] == 0x7C00 && h->mask[1] == 0x3E0 && h->mask[2] == 0x1F);
    return 0;
}

static uint8_t field(uint32_t v, uint32_t m) {
    if (!m) return 0;
    return (uint8_t)((v & m) >> __builtin_ctz(m));
}

static void decode_row(const struct bmp *h, const uint8_t *s, uint8_t *o, const uint8_t pal[256][3],
                       int alpha) {
    int oc = alpha ? 4 : 3;
    uint32_t m[4] = {h->mask[0], h->mask[1], h->mask[2], h->mask[3]};
    if (h->bits == 32 && (h->compression == 0 || !(m[0] | m[1] | m[2] | m[3]))) {
        m[0] = 0xFF0000; m[1] = 0xFF00; m[2] = 0xFF; m[3] = h->compression == 0 ? 0 : 0xFF000000;
    }
    int is565 = h->compression == 3 && h->mask[0] == 0xF800;
    for (uint32_t x = 0; x < h->w; x++, o += oc) {
        const uint8_t *c;
        unsigned idx, p;
        switch (h->bits) {
        case 1: idx = (s[x >> 3] >> (7 - (x & 7))) & 1; c = pal[idx]; o[0] = c[0]; o[1] = c[1]; o[2] = c[2]; break;
        case 4: idx = (s[x >> 1] >> ((x & 1) ? 0 : 4)) & 15; c = pal[idx]; o[0] = c[0]; o[1] = c[1]; o[2] = c[2]; break;
        case 8: c = pal[s[x]]; o[0] = c[0]; o[1] = c[1]; o[2] = c[2]; break;
        case 16:
            p = le16(s + 2 * x);
            if (is565) {
                o[0] = (uint8_t)(((p >> 11) & 31) * 255 / 31);
                o[1] = (uint8_t)(((p >> 5) & 63) * 255 / 63);
            } else {
                o[0] = (uint8_t)(((p >> 10) & 31) * 255 / 31);
                o[1] = (uint8_t)(((p >> 5) & 31) * 255 / 31);
            }
            o[2] = (uint8_t)((p & 31) * 255 / 31);
            break;
        case 24: o[0] = s[3 * x + 2]; o[1] = s[3 * x + 1]; o[2] = s[3 * x]; break;
        default:
            p = le32(s + 4 * x);
            o[0] = field(p, m[0]); o[1] = field(p, m[1]); o[2] = field(p, m[2]);
            if (alpha) o[3] = field(p, m[3]);
            break;
        }
    }
}

/* PIL's BmpRleDecoder, quirks included: indices in file order (bottom-up rows unless the
 * height was negative), runs clipped at the row end, end-of-line pads with 0, deltas skip with
 * 0, absolute runs word-aligned by file offset; fewer pixels than the image holds is an error. */
static int decode_rle(const uint8_t *b, size_t n, const struct bmp *h, uint8_t *idx) {
    size_t dest = (size_t)h->w * h->h, len = 0, pos = h->data_off;
    long x = 0;
    int rle4 = h->compression == 2;
    while (len < dest) {
        if (pos + 2 > n) break;
        unsigned cnt = b[pos], byte = b[pos + 1];
        pos += 2;
        if (cnt) {
            if (x + (long)cnt > (long)h->w) cnt = x < (long)h->w ? (unsigned)(h->w - x) : 0;
            for (unsigned i = 0; i < cnt && len < dest; i++)
                idx[len++] = (uint8_t)(rle4 ? (i % 2 ? byte & 15 : byte >> 4) : byte);
            x += cnt;
        } else if (byte == 0) {
            while (len % h->w) idx[len++] = 0;
            x = 0;
        } else if (byte == 1) {
            break;
        } else if (byte == 2) {
            if (pos + 2 > n) break;
            size_t skip = (size_t)b[pos] + (size_t)b[pos + 1] * h->w;
            pos += 2;
            if (skip > dest - len) skip = dest - len;
            memset(idx + len, 0, skip);
            len += skip;
            x = (long)(len % h->w);
        } else {
            size_t count = byte < dest - len ? byte : dest - len;
            size_t nbytes = rle4 ? (count + 1) / 2 : count, got = n - pos < nbytes ? n - pos : nbytes;
            for (size_t i = 0; i < got; i++) {
                if (rle4) {
                    idx[len++] = (uint8_t)(b[pos + i] >> 4);
                    if (i * 2 + 1 < count) idx[len++] = (uint8_t)(b[pos + i] & 15);
                } else {
                    idx[len++] = b[pos + i];
                }
            }
            pos += got;
            if (got < nbytes || len == dest) break;
            x += byte;
            if (pos % 2) pos++;
        }
    }
    return len == dest ? 0 : -1;
}

int img_decode_bmp(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                   struct img_raw *out, struct vlm_error *err) {
    struct bmp h;
    if (parse_header(b, n, &h)) return img_corrupt(err, "BMP");
    if (!bits_supported(&h))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "image: unsupported BMP variant");
    int rc = img_check_size(h.w, h.h, lim, err);
    if (rc) return rc;

    uint8_t pal[256][3];
    for (int i = 0; i < 256; i++) pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
    if (h.bits <= 8) {
        if (h.colors <= 0 || h.colors > 65536) return img_corrupt(err, "BMP");
        size_t np = (size_t)h.colors, need = np * (size_t)h.pad;
        if (h.pal_off > n || n - h.pal_off < need) return img_corrupt(err, "BMP");
        /* PIL keeps a palette of grey levels 0..n-1 (or black/white for 2 colours) as mode
         * L / 1: indices are grey values; any other palette leaves entries past it black. */
        int grey = 1;
        for (size_t i = 0; i < np; i++) {
            const uint8_t *e = b + h.pal_off + i * (size_t)h.pad;
            unsigned want = np == 2 ? (i ? 255u : 0u) : (unsigned)i;
            grey &= e[0] == want && e[1] == want && e[2] == want;
        }
        if (!grey) memset(pal, 0, sizeof pal);
        for (size_t i = 0; i < np && i < 256; i++) {   /* stored B, G, R(, X) */
            const uint8_t *e = b + h.pal_off + i * (size_t)h.pad;
            pal[i][0] = e[2]; pal[i][1] = e[1]; pal[i][2] = e[0];
        }
    }
    if (h.compression == 1 || h.compression == 2) {
        uint8_t *idx = vlm_malloc((size_t)h.w * h.h);
        if (!idx) return vlm_error_set(err, VLM_E_NOMEM, "image: out of memory");
        if (h.data_off > n || decode_rle(b, n, &h, idx)) { vlm_free(idx); return img_corrupt(err, "BMP"); }
        rc = img_raw_alloc(out, (int)h.w, (int)h.h, 0, lim, err);
        if (rc) { vlm_free(idx); return rc; }
        for (uint32_t y = 0; y < h.h; y++) {
            const uint8_t *s = idx + (size_t)(h.top_down ? y : h.h - 1 - y) * h.w;
            uint8_t *o = out->px + (size_t)y * h.w * 3;
            for (uint32_t x = 0; x < h.w; x++, o += 3) memcpy(o, pal[s[x]], 3);
        }
        vlm_free(idx);
        return VLM_OK;
    }
    size_t stride = (((size_t)h.w * (size_t)h.bits + 31) >> 3) & ~(size_t)3, total;
    if (!vlm_mul_ok(stride, h.h, &total) || h.data_off > n || n - h.data_off < total)
        return img_corrupt(err, "BMP");
    int alpha = h.bits == 32 && h.compression == 3 && (h.mask[3] || !(h.mask[0] | h.mask[1] | h.mask[2]));
    rc = img_raw_alloc(out, (int)h.w, (int)h.h, alpha, lim, err);
    if (rc) return rc;
    for (uint32_t y = 0; y < h.h; y++) {
        uint32_t sy = h.top_down ? y : h.h - 1 - y;
        decode_row(&h, b + h.data_off + (size_t)sy * stride, out->px + (size_t)y * h.w * (alpha ? 4 : 3),
                   pal, alpha);
    }
    return VLM_OK;
}
