/* decode_webp.c — WebP through libwebp as PIL does: the demuxer reads canvas size, frame
 * count and the EXIF chunk from the container first; still images decode to RGB or RGBA
 * (non-premultiplied), animations give their first frame on the canvas (WebPAnimDecoder). */
#include "image/decode_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>

static int decode_still(const uint8_t *b, size_t n, int alpha, struct img_raw *out,
                        struct vlm_error *err) {
    size_t stride = (size_t)out->w * (alpha ? 4 : 3), size = stride * (size_t)out->h;
    uint8_t *r = alpha ? WebPDecodeRGBAInto(b, n, out->px, size, (int)stride)
                       : WebPDecodeRGBInto(b, n, out->px, size, (int)stride);
    return r ? VLM_OK : img_corrupt(err, "WebP");
}

static int decode_anim(const uint8_t *b, size_t n, struct img_raw *out, struct vlm_error *err) {
    WebPAnimDecoderOptions o;
    if (!WebPAnimDecoderOptionsInit(&o)) return img_corrupt(err, "WebP");
    o.color_mode = MODE_RGBA;
    o.use_threads = 0;
    WebPData data = {b, n};
    WebPAnimDecoder *dec = WebPAnimDecoderNew(&data, &o);
    if (!dec) return img_corrupt(err, "WebP");
    uint8_t *buf = NULL;
    int ts = 0, rc = VLM_OK;
    WebPAnimInfo info;
    if (!WebPAnimDecoderGetInfo(dec, &info) || (int)info.canvas_width != out->w ||
        (int)info.canvas_height != out->h || !WebPAnimDecoderGetNext(dec, &buf, &ts) || !buf)
        rc = img_corrupt(err, "WebP");
    else
        memcpy(out->px, buf, (size_t)out->w * out->h * 4);
    WebPAnimDecoderDelete(dec);
    return rc;
}

int img_decode_webp(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                    struct img_raw *out, struct vlm_error *err) {
    WebPData data = {b, n};
    WebPDemuxState st;
    WebPDemuxer *dmx = WebPDemuxPartial(&data, &st);
    if (!dmx || st != WEBP_DEMUX_DONE) {
        WebPDemuxDelete(dmx);
        return img_corrupt(err, "WebP");
    }
    uint32_t w = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_WIDTH), h = WebPDemuxGetI(dmx, WEBP_FF_CANVAS_HEIGHT);
    uint32_t flags = WebPDemuxGetI(dmx, WEBP_FF_FORMAT_FLAGS);
    uint32_t frames = WebPDemuxGetI(dmx, WEBP_FF_FRAME_COUNT);
    int orientation = 0;
    WebPChunkIterator ci;
    if (WebPDemuxGetChunk(dmx, "EXIF", 1, &ci)) {
        orientation = img_exif_orientation(ci.chunk.bytes, ci.chunk.size);
        WebPDemuxReleaseChunkIterator(&ci);
    }
    WebPDemuxDelete(dmx);

    int rc = img_check_size(w, h, lim, err);
    if (rc) return rc;
    if (frames < 1) return img_corrupt(err, "WebP");
    if (lim->max_frames > 0 && frames > (uint32_t)lim->max_frames)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "image: WebP has %u frames, over the limit of %d",
                             frames, lim->max_frames);
    int anim = (flags & ANIMATION_FLAG) != 0;
    WebPBitstreamFeatures f;
    int alpha = 1;
    if (!anim) {
        if (WebPGetFeatures(b, n, &f) != VP8_STATUS_OK || (uint32_t)f.width != w ||
            (uint32_t)f.height != h)
            return img_corrupt(err, "WebP");
        alpha = f.has_alpha;
    }
    rc = img_raw_alloc(out, (int)w, (int)h, alpha, lim, err);
    if (rc) return rc;
    out->orientation = orientation;
    rc = anim ? decode_anim(b, n, out, err) : decode_still(b, n, alpha, out, err);
    if (rc == VLM_OK && anim && !(flags & ALPHA_FLAG)) {
        /* PIL opens an animation without the alpha flag as RGB: drop the canvas alpha. */
        size_t np = (size_t)out->w * out->h;
        for (size_t i = 0; i < np; i++) memmove(out->px + i * 3, out->px + i * 4, 3);
        out->has_alpha = 0;
    }
    if (rc) img_raw_free(out);
    return rc;
}
