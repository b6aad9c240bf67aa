/* decode_gif.c — the first frame of a GIF through giflib, laid out as PIL does: the canvas
 * is the logical screen (grown to hold the frame), pixels outside the frame take the
 * transparent index (else index 0), a palette that is the identity grey ramp means mode L,
 * and the transparent index becomes alpha. Later frames are never read. */
#include "image/decode_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <gif_lib.h>
#include <string.h>

struct src { const uint8_t *p; size_t n, off; };

static int on_read(GifFileType *g, GifByteType *dst, int len) {
    struct src *s = g->UserData;
    if (len <= 0) return 0;
    size_t k = (size_t)len;
    if (k > s->n - s->off) k = s->n - s->off;
    memcpy(dst, s->p + s->off, k);
    s->off += k;
    return (int)k;
}

/* 256-entry RGB table for the frame. Without a colour map PIL reads the indices as grey
 * levels (mode L); a short colour map leaves the remaining entries black, as PIL's palette. */
static void make_palette(const ColorMapObject *cm, uint8_t pal[256][3]) {
    for (int i = 0; i < 256; i++) pal[i][0] = pal[i][1] = pal[i][2] = (uint8_t)i;
    if (!cm || !cm->Colors) return;
    int n = cm->ColorCount > 256 ? 256 : cm->ColorCount, identity = 1;
    for (int i = 0; i < n; i++)
        identity &= cm->Colors[i].Red == i && cm->Colors[i].Green == i && cm->Colors[i].Blue == i;
    if (identity) return;   /* PIL: "palette not needed", mode L */
    memset(pal, 0, 256 * 3);
    for (int i = 0; i < n; i++) {
        pal[i][0] = cm->Colors[i].Red;
        pal[i][1] = cm->Colors[i].Green;
        pal[i][2] = cm->Colors[i].Blue;
    }
}

static int read_first_frame(GifFileType *g, int *trans) {
    GifRecordType t;
    *trans = -1;
    for (int guard = 0; guard < 100000; guard++) {
        if (DGifGetRecordType(g, &t) != GIF_OK) return -1;
        if (t == IMAGE_DESC_RECORD_TYPE) return DGifGetImageDesc(g) == GIF_OK ? 0 : -1;
        if (t == TERMINATE_RECORD_TYPE) return -1;
        if (t != EXTENSION_RECORD_TYPE) continue;
        int code;
        GifByteType *ext = NULL;
        if (DGifGetExtension(g, &code, &ext) != GIF_OK) return -1;
        if (code == GRAPHICS_EXT_FUNC_CODE && ext && ext[0] >= 4)
            *trans = (ext[1] & 1) ? ext[4] : -1;
        while (ext) if (DGifGetExtensionNext(g, &ext) != GIF_OK) return -1;
    }
    return -1;
}

static int decode(GifFileType *g, const struct vlm_image_limits *lim, struct img_raw *out,
                  struct vlm_error *err) {
    int trans;
    if (read_first_frame(g, &trans)) return img_corrupt(err, "GIF");
    const GifImageDesc *d = &g->Image;
    if (d->Width <= 0 || d->Height <= 0 || d->Left < 0 || d->Top < 0) return img_corrupt(err, "GIF");
    int W = g->SWidth > d->Left + d->Width ? g->SWidth : d->Left + d->Width;
    int H = g->SHeight > d->Top + d->Height ? g->SHeight : d->Top + d->Height;
    int alpha = trans >= 0;
    int rc = img_raw_alloc(out, W, H, alpha, lim, err);
    if (rc) return rc;

    uint8_t pal[256][3];
    make_palette(d->ColorMap ? d->ColorMap : g->SColorMap, pal);
    uint8_t *idx = vlm_malloc((size_t)W * H);
    if (!idx) return vlm_error_set(err, VLM_E_NOMEM, "image: out of memory");
    memset(idx, alpha ? trans : 0, (size_t)W * H);

    static const int start[4] = {0, 4, 2, 1}, step[4] = {8, 8, 4, 2};
    int passes = d->Interlace ? 4 : 1;
    for (int p = 0; p < passes; p++) {
        int y0 = d->Interlace ? start[p] : 0, dy = d->Interlace ? step[p] : 1;
        for (int y = y0; y < d->Height; y += dy) {
            uint8_t *row = idx + (size_t)(d->Top + y) * W + d->Left;
            if (DGifGetLine(g, row, d->Width) != GIF_OK) { vlm_free(idx); return img_corrupt(err, "GIF"); }
        }
    }
    int oc = alpha ? 4 : 3;
    uint8_t *o = out->px;
    for (size_t i = 0, n = (size_t)W * H; i < n; i++, o += oc) {
        const uint8_t *c = pal[idx[i]];
        o[0] = c[0]; o[1] = c[1]; o[2] = c[2];
        if (alpha) o[3] = idx[i] == trans ? 0 : 255;
    }
    vlm_free(idx);
    return VLM_OK;
}

int img_decode_gif(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                   struct img_raw *out, struct vlm_error *err) {
    struct src s = {b, n, 0};
    int e = 0;
    GifFileType *g = DGifOpen(&s, on_read, &e);
    if (!g) return img_corrupt(err, "GIF");
    int rc = img_check_size((uint64_t)(g->SWidth > 0 ? g->SWidth : 1),
                            (uint64_t)(g->SHeight > 0 ? g->SHeight : 1), lim, err);
    if (rc == VLM_OK) rc = decode(g, lim, out, err);
    if (rc) img_raw_free(out);
    DGifCloseFile(g, &e);
    return rc;
}
