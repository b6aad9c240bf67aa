/* decode_jpeg.c — JPEG through libjpeg-turbo with PIL's settings (library defaults: ISLOW
 * IDCT, fancy upsampling, block smoothing); grey as L, CMYK/YCCK read with Adobe's inverted
 * polarity and converted with PIL's cmyk2rgb. setjmp error handling, scan and size caps. */
#include "image/decode_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

struct jerr {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    int too_many_scans;
    int max_scans;
    long warnings;
};

static void on_error(j_common_ptr c) {
    struct jerr *e = (struct jerr *)c->err;
    longjmp(e->jb, 1);
}

/* Warnings: a premature end of data is an error (PIL reports truncated files); other
 * recoverable corruption is tolerated as PIL does, but only so many times. */
static void on_message(j_common_ptr c, int level) {
    struct jerr *e = (struct jerr *)c->err;
    if (level >= 0) return;
    if (e->pub.msg_code == JWRN_JPEG_EOF || ++e->warnings > 10000) longjmp(e->jb, 1);
}

static void on_output(j_common_ptr c) { (void)c; }

/* libjpeg-turbo's advice against progressive-scan bombs: count scans while reading. */
static void on_progress(j_common_ptr c) {
    struct jerr *e = (struct jerr *)c->err;
    j_decompress_ptr d = (j_decompress_ptr)c;
    if (d->input_scan_number > e->max_scans) {
        e->too_many_scans = 1;
        longjmp(e->jb, 1);
    }
}

/* The first APP1 "Exif\0\0" segment's orientation (PIL keeps the first). */
static int find_orientation(j_decompress_ptr d) {
    for (jpeg_saved_marker_ptr m = d->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && !memcmp(m->data, "Exif\0\0", 6))
            return img_exif_orientation(m->data, m->data_length);
    return 0;
}

/* PIL's cmyk2rgb on "CMYK;I" data (inverted when read). */
static inline uint8_t cmyk_ch(unsigned c, unsigned nk) {
    unsigned t = c * nk + 128;
    int v = (int)nk - (int)(((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void row_to_rgb(const uint8_t *s, uint8_t *d, int w, int comps) {
    if (comps == 1) {
        for (int x = 0; x < w; x++, d += 3) d[0] = d[1] = d[2] = s[x];
    } else if (comps == 4) {
        for (int x = 0; x < w; x++, s += 4, d += 3) {
            unsigned nk = s[3];   /* k = 255 - s[3] ("CMYK;I"), nk = 255 - k */
            d[0] = cmyk_ch(255u - s[0], nk);
            d[1] = cmyk_ch(255u - s[1], nk);
            d[2] = cmyk_ch(255u - s[2], nk);
        }
    } else {
        memcpy(d, s, (size_t)w * 3);
    }
}

int img_decode_jpeg(const uint8_t *b, size_t n, const struct vlm_image_limits *lim,
                    struct img_raw *out, struct vlm_error *err) {
    struct jpeg_decompress_struct d;
    struct jerr e;
    struct jpeg_progress_mgr prog;
    uint8_t *volatile row = NULL;
    volatile int rc = VLM_OK;

    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);
    d.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = on_error;
    e.pub.emit_message = on_message;
    e.pub.output_message = on_output;
    e.max_scans = lim->max_jpeg_scans > 0 ? lim->max_jpeg_scans : 1000;
    if (setjmp(e.jb)) {
        vlm_free(row);
        img_raw_free(out);
        jpeg_destroy_decompress(&d);
        if (e.too_many_scans)
            return vlm_error_set(err, VLM_E_TOO_LARGE, "image: JPEG has too many scans");
        return rc ? rc : img_corrupt(err, "JPEG");
    }
    jpeg_create_decompress(&d);
    prog.progress_monitor = on_progress;
    d.progress = &prog;
    jpeg_mem_src(&d, b, (unsigned long)n);
    jpeg_save_markers(&d, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&d, TRUE);

    int comps = d.num_components;
    if (comps == 1) d.out_color_space = JCS_GRAYSCALE;
    else if (comps == 3) d.out_color_space = JCS_RGB;
    else if (comps == 4) d.out_color_space = JCS_CMYK;   /* libjpeg turns YCCK into CMYK */
    else { rc = vlm_error_set(err, VLM_E_FORMAT, "image: unsupported JPEG colour layout"); longjmp(e.jb, 1); }
    d.dct_method = JDCT_ISLOW;
    d.do_fancy_upsampling = TRUE;

    rc = img_raw_alloc(out, (int)d.image_width, (int)d.image_height, 0, lim, err);
    if (rc) longjmp(e.jb, 1);
    out->orientation = find_orientation(&d);

    jpeg_start_decompress(&d);
    if ((int)d.output_width != out->w || (int)d.output_height != out->h ||
        d.output_components != (comps == 4 ? 4 : comps)) {
        rc = img_corrupt(err, "JPEG");
        longjmp(e.jb, 1);
    }
    row = vlm_malloc((size_t)out->w * 4);
    if (!row) { rc = vlm_error_set(err, VLM_E_NOMEM, "image: out of memory"); longjmp(e.jb, 1); }
    while (d.output_scanline < d.output_height) {
        int y = (int)d.output_scanline;
        uint8_t *dst = out->px + (size_t)y * out->w * 3;
        JSAMPROW rp = comps == 3 ? (JSAMPROW)dst : (JSAMPROW)row;   /* RGB lands in place */
        if (jpeg_read_scanlines(&d, &rp, 1) != 1) { rc = img_corrupt(err, "JPEG"); longjmp(e.jb, 1); }
        if (comps != 3) row_to_rgb(row, dst, out->w, comps);
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    vlm_free(row);
    return VLM_OK;
}
