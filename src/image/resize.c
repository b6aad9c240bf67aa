/* resize.c — Image.resize of PIL for 8-bit RGB, reproduced bit for bit: the same filters and
 * support scaling when shrinking (antialiasing), coefficients normalised in double then
 * turned into 22-bit fixed point with PIL's rounding, a horizontal pass over only the rows the
 * vertical pass reads, then the vertical pass; NEAREST is PIL's affine nearest-neighbour.
 * Also crop and the channels-first rescale/normalize every processor ends with. */
#include "image/image.h"
#include "image/resize_internal.h"
#include "util/alloc.h"
#include "util/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREC 22   /* PIL's PRECISION_BITS = 32 - 8 - 2 */

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static double f_box(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }
static double f_bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}
static double f_hamming(double x) {
    if (x < 0.0) x = -x;
    if (x == 0.0) return 1.0;
    if (x >= 1.0) return 0.0;
    x = x * M_PI;
    return sin(x) / x * (0.54f + 0.46f * cos(x));   /* float constants, as PIL */
}
static double f_bicubic(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}
static double sinc(double x) {
    if (x == 0.0) return 1.0;
    x = x * M_PI;
    return sin(x) / x;
}
static double f_lanczos(double x) {
    return -3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0;
}

struct filter { double (*fn)(double); double support; };

static int pick(int resample, struct filter *f) {
    switch (resample) {
    case VLM_RESAMPLE_BOX:      *f = (struct filter){f_box, 0.5}; return 0;
    case VLM_RESAMPLE_BILINEAR: *f = (struct filter){f_bilinear, 1.0}; return 0;
    case VLM_RESAMPLE_HAMMING:  *f = (struct filter){f_hamming, 1.0}; return 0;
    case VLM_RESAMPLE_BICUBIC:  *f = (struct filter){f_bicubic, 2.0}; return 0;
    case VLM_RESAMPLE_LANCZOS:  *f = (struct filter){f_lanczos, 3.0}; return 0;
    default: return -1;
    }
}

/* Fixed-point coefficients for resampling in_size -> out_size: for each output index i,
 * taps k[i*ksize .. +n[i]) apply to inputs start[i] ... (PIL's precompute_coeffs followed by
 * normalize_coeffs_8bpc). */

static void coeffs_free(struct img_coeffs *c) {
    vlm_free(c->start); vlm_free(c->n); vlm_free(c->k);
    memset(c, 0, sizeof *c);
}

/* Coefficients of outputs [first, first + count) of a resize in_size -> out_size; entry i
 * of the table is output first + i. */
static int coeffs_make(int in_size, int out_size, int first, int count, const struct filter *f,
                       struct img_coeffs *c) {
    float in0 = 0.0f, in1 = (float)in_size;
    double scale = (double)(in1 - in0) / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = f->support * filterscale;
    size_t total;
    memset(c, 0, sizeof *c);
    c->ksize = (int)ceil(support) * 2 + 1;
    if (!vlm_mul_ok((size_t)count, (size_t)c->ksize, &total)) return -1;
    double *w = vlm_malloc(sizeof(double) * (size_t)c->ksize);
    c->start = vlm_malloc(sizeof(int) * (size_t)count);
    c->n = vlm_malloc(sizeof(int) * (size_t)count);
    c->k = vlm_calloc(total, sizeof(int32_t));
    if (!w || !c->start || !c->n || !c->k) { vlm_free(w); coeffs_free(c); return -1; }
    for (int i = 0; i < count; i++) {
        int xx = first + i;
        double center = in0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > c->ksize) xmax = c->ksize;   /* cannot happen; keeps the writes in bounds */
        for (int x = 0; x < xmax; x++) {
            w[x] = f->fn((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = c->k + (size_t)i * c->ksize;
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PREC)) : (int32_t)(0.5 + v * (1 << PREC));
        }
        c->start[i] = xmin;
        c->n[i] = xmax < 0 ? 0 : xmax;
    }
    vlm_free(w);
    return 0;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PREC;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* AVX2 kernels when the CPU has them, unless VLM_FORCE_GENERIC is set (tests run both). Only
 * x86-64 builds compile resize_avx2.c. */
#if defined(__x86_64__)
static int use_avx2(void) {
    const char *g = getenv("VLM_FORCE_GENERIC");
    if (g && *g && *g != '0') return 0;
    return __builtin_cpu_supports("avx2") ? 1 : 0;
}
#endif

/* One row: src (in RGB) resampled horizontally into dst (out_w RGB). */
static void row_h(const uint8_t *src, const struct img_coeffs *c, int out_w, uint8_t *dst) {
    for (int xx = 0; xx < out_w; xx++) {
        const int32_t *k = c->k + (size_t)xx * c->ksize;
        const uint8_t *s = src + (size_t)c->start[xx] * 3;
        int32_t s0 = 1 << (PREC - 1), s1 = s0, s2 = s0;
        for (int x = 0, n = c->n[xx]; x < n; x++, s += 3) {
            s0 += s[0] * k[x];
            s1 += s[1] * k[x];
            s2 += s[2] * k[x];
        }
        dst[3 * xx] = clip8(s0);
        dst[3 * xx + 1] = clip8(s1);
        dst[3 * xx + 2] = clip8(s2);
    }
}

/* Rows [y0, y0+rows) of in, resampled horizontally into tmp (rows x out_w). */
static int pass_h(const struct vlm_image *in, int y0, int rows, const struct img_coeffs *c,
                  int out_w, uint8_t *tmp) {
    size_t in_bytes = (size_t)in->width * 3, out_bytes = (size_t)out_w * 3;
    int y = 0;
#if defined(__x86_64__)
    if (use_avx2() && rows >= 8) {
        uint8_t *tbuf = vlm_malloc(in_bytes * 8 + 64);
        if (!tbuf) return -1;
        for (; y + 8 <= rows; y += 8) {
            const uint8_t *ir[8];
            uint8_t *orow[8];
            for (int r = 0; r < 8; r++) {
                ir[r] = in->rgb + (size_t)(y0 + y + r) * in_bytes;
                orow[r] = tmp + (size_t)(y + r) * out_bytes;
            }
            img_pass_h8_avx2(ir, out_w, c, orow, tbuf, in_bytes);
        }
        vlm_free(tbuf);
    }
#endif
    for (; y < rows; y++)
        row_h(in->rgb + (size_t)(y0 + y) * in_bytes, c, out_w, tmp + (size_t)y * out_bytes);
    return 0;
}

/* Vertical pass: out row yy (n bytes) = taps over rows (start[yy] - first) of src, whose rows
 * are stride bytes apart. */
static int pass_v(const uint8_t *src, size_t stride, size_t n, int first, const struct img_coeffs *c,
                  int out_h, uint8_t *out) {
#if defined(__x86_64__)
    if (use_avx2()) {
        for (int yy = 0; yy < out_h; yy++)
            img_pass_v_avx2(src + (size_t)(c->start[yy] - first) * stride, stride, n,
                            c->k + (size_t)yy * c->ksize, c->n[yy], out + (size_t)yy * n);
        return 0;
    }
#endif
    int32_t *acc = vlm_malloc(sizeof(int32_t) * n);
    if (!acc) return -1;
    for (int yy = 0; yy < out_h; yy++) {
        const int32_t *k = c->k + (size_t)yy * c->ksize;
        for (size_t i = 0; i < n; i++) acc[i] = 1 << (PREC - 1);
        for (int y = 0; y < c->n[yy]; y++) {
            const uint8_t *s = src + (size_t)(c->start[yy] - first + y) * stride;
            int32_t kv = k[y];
            for (size_t i = 0; i < n; i++) acc[i] += s[i] * kv;
        }
        uint8_t *d = out + (size_t)yy * n;
        for (size_t i = 0; i < n; i++) d[i] = clip8(acc[i]);
    }
    vlm_free(acc);
    return 0;
}

/* PIL's ImagingScaleAffine with a = (in/out scale): positions accumulate in double, from the
 * first output column/row even when only the window (x0, y0, out size) is produced. */
static void nearest(const struct vlm_image *in, int W, int H, int x0, int y0, struct vlm_image *out) {
    double a0 = (double)((float)in->width - 0.0f) / W;
    double a4 = (double)((float)in->height - 0.0f) / H;
    int *xin = vlm_malloc(sizeof(int) * (size_t)out->width);
    double xo = a0 * 0.5, yo = a4 * 0.5;
    memset(out->rgb, 0, (size_t)out->width * out->height * 3);
    if (!xin) return;
    for (int x = 0; x < x0 + out->width; x++, xo += a0)
        if (x >= x0) xin[x - x0] = xo < 0.0 ? -1 : (int)xo;
    for (int y = 0; y < y0 + out->height; y++, yo += a4) {
        int yi = yo < 0.0 ? -1 : (int)yo;
        if (y < y0 || yi < 0 || yi >= in->height) continue;
        const uint8_t *s = in->rgb + (size_t)yi * in->width * 3;
        uint8_t *d = out->rgb + (size_t)(y - y0) * out->width * 3;
        for (int x = 0; x < out->width; x++)
            if (xin[x] >= 0 && xin[x] < in->width) memcpy(d + 3 * x, s + 3 * (size_t)xin[x], 3);
    }
    vlm_free(xin);
}

int vlm_image_resize_window(const struct vlm_image *in, int W, int H, int resample, int x0, int y0,
                            int w, int h, struct vlm_image *out, struct vlm_error *err) {
    struct filter f;
    memset(out, 0, sizeof *out);
    if (!in || !in->rgb || in->width < 1 || in->height < 1)
        return vlm_error_set(err, VLM_E_INVALID, "resize: empty image");
    if (W < 1 || H < 1 || W > (1 << 24) || H > (1 << 24) || x0 < 0 || y0 < 0 || w < 1 || h < 1 ||
        x0 > W - w || y0 > H - h)
        return vlm_error_set(err, VLM_E_INVALID, "resize: bad size %d x %d", W, H);
    if (resample != VLM_RESAMPLE_NEAREST && pick(resample, &f))
        return vlm_error_set(err, VLM_E_INVALID, "resize: unknown resample filter %d", resample);
    if (W == in->width && H == in->height) return vlm_image_crop(in, x0, y0, w, h, out, err);
    int rc = vlm_image_alloc(out, w, h, err);
    if (rc) return rc;
    if (resample == VLM_RESAMPLE_NEAREST) {
        nearest(in, W, H, x0, y0, out);
        return VLM_OK;
    }
    struct img_coeffs cv, ch;
    memset(&ch, 0, sizeof ch);
    if (coeffs_make(in->height, H, y0, h, &f, &cv)) {
        vlm_image_free(out);
        return vlm_error_set(err, VLM_E_NOMEM, "resize: out of memory");
    }
    size_t in_stride = (size_t)in->width * 3;
    int need_h = W != in->width, need_v = H != in->height;
    int first = cv.start[0], last = cv.start[h - 1] + cv.n[h - 1];
    uint8_t *tmp = NULL;
    int bad = 0;
    /* Pillow >= 12.3 runs the vertical pass first when the height shrinks by more than
     * twice as many pixels as the width does (python-pillow/Pillow#9549); the order
     * changes the 8-bit rounding of the intermediate image, so it is followed here. */
    if (need_h && need_v && H < in->height && (long)in->height - H > 2L * ((long)in->width - W)) {
        tmp = vlm_malloc(in_stride * (size_t)h);
        vlm_image_advise_large(tmp, in_stride * (size_t)h);
        if (!tmp || coeffs_make(in->width, W, x0, w, &f, &ch) ||
            pass_v(in->rgb, in_stride, in_stride, 0, &cv, h, tmp))
            bad = 1;
        else {
            struct vlm_image t = {in->width, h, tmp};
            bad = pass_h(&t, 0, h, &ch, w, out->rgb);
        }
    } else if (need_h) {
        size_t tmp_bytes = (size_t)w * 3 * (size_t)(last - first);
        if (need_v) {
            tmp = vlm_malloc(tmp_bytes);
            vlm_image_advise_large(tmp, tmp_bytes);
        }
        if (coeffs_make(in->width, W, x0, w, &f, &ch)) bad = 1;
        else if (!need_v) bad = pass_h(in, y0, h, &ch, w, out->rgb);
        else if (!tmp) bad = 1;
        else bad = pass_h(in, first, last - first, &ch, w, tmp) ||
                   pass_v(tmp, (size_t)w * 3, (size_t)w * 3, first, &cv, h, out->rgb);
    } else {
        bad = pass_v(in->rgb + (size_t)x0 * 3, in_stride, (size_t)w * 3, 0, &cv, h, out->rgb);
    }
    vlm_free(tmp);
    coeffs_free(&cv);
    coeffs_free(&ch);
    if (bad) {
        vlm_image_free(out);
        return vlm_error_set(err, VLM_E_NOMEM, "resize: out of memory");
    }
    return VLM_OK;
}

int vlm_image_resize(const struct vlm_image *in, int width, int height, int resample,
                     struct vlm_image *out, struct vlm_error *err) {
    return vlm_image_resize_window(in, width, height, resample, 0, 0, width, height, out, err);
}

int vlm_image_crop(const struct vlm_image *in, int x, int y, int w, int h,
                   struct vlm_image *out, struct vlm_error *err) {
    memset(out, 0, sizeof *out);
    if (!in || x < 0 || y < 0 || w < 1 || h < 1 || x > in->width - w || y > in->height - h)
        return vlm_error_set(err, VLM_E_INVALID, "crop: rectangle outside the image");
    int rc = vlm_image_alloc(out, w, h, err);
    if (rc) return rc;
    for (int r = 0; r < h; r++)
        memcpy(out->rgb + (size_t)r * w * 3, in->rgb + ((size_t)(y + r) * in->width + x) * 3,
               (size_t)w * 3);
    return VLM_OK;
}

void vlm_image_rect_to_chw(const struct vlm_image *img, int x0, int y0, int w, int h,
                           double rescale, const float *mean, const float *std, float *dst,
                           int dst_h, int dst_w) {
    float lut[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float f = (float)((double)v * rescale);
            if (mean && std) f = (f - mean[c]) / std[c];
            lut[c][v] = f;
        }
    if (x0 < 0 || y0 < 0 || w < 0 || h < 0 || x0 > img->width - w || y0 > img->height - h) return;
    if (h > dst_h) h = dst_h;
    if (w > dst_w) w = dst_w;
    size_t plane = (size_t)dst_h * dst_w;
    for (int y = 0; y < h; y++) {
        const uint8_t *s = img->rgb + ((size_t)(y0 + y) * img->width + x0) * 3;
        float *d0 = dst + (size_t)y * dst_w, *d1 = d0 + plane, *d2 = d1 + plane;
        for (int x = 0; x < w; x++, s += 3) {
            d0[x] = lut[0][s[0]];
            d1[x] = lut[1][s[1]];
            d2[x] = lut[2][s[2]];
        }
    }
}

void vlm_image_to_chw(const struct vlm_image *img, double rescale, const float *mean,
                      const float *std, float *dst, int dst_h, int dst_w) {
    vlm_image_rect_to_chw(img, 0, 0, img->width, img->height, rescale, mean, std, dst, dst_h,
                          dst_w);
}
