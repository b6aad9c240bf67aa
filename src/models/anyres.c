/* anyres.c — LLaVA-NeXT's any-resolution arithmetic (see anyres.h), in the same double
 * precision and integer truncations as transformers' Python. */
#include "models/anyres.h"

#include <math.h>

void vlm_anyres_best(int H, int W, const int (*pins)[2], int n, int *bh, int *bw) {
    long best_eff = 0, best_waste = -1;
    *bh = pins[0][0];
    *bw = pins[0][1];
    for (int i = 0; i < n; i++) {
        int h = pins[i][0], w = pins[i][1];
        double sw = (double)w / W, sh = (double)h / H, s = sw < sh ? sw : sh;
        long dw = (long)(W * s), dh = (long)(H * s), area = (long)W * H;
        long eff = dw * dh < area ? dw * dh : area, waste = (long)w * h - eff;
        if (eff > best_eff || (eff == best_eff && (best_waste < 0 || waste < best_waste))) {
            best_eff = eff;
            best_waste = waste;
            *bh = h;
            *bw = w;
        }
    }
}

void vlm_anyres_fit(int H, int W, int th, int tw, int *nh, int *nw) {
    double sw = (double)tw / W, sh = (double)th / H;
    if (sw < sh) {
        double v = ceil(H * sw);
        *nw = tw;
        *nh = v < th ? (int)v : th;
    } else {
        double v = ceil(W * sh);
        *nh = th;
        *nw = v < tw ? (int)v : tw;
    }
}

/* int(round(v, 7)): round to 7 decimals first so that 23.99999999 counts as 24 */
static int round7(double v) { return (int)(floor(v * 1e7 + 0.5) / 1e7); }

void vlm_anyres_unpad(int H, int W, int ch, int cw, int *y0, int *h, int *x0, int *w) {
    double orig = (double)W / H, cur = (double)cw / ch;
    *y0 = *x0 = 0;
    *h = ch;
    *w = cw;
    if (orig > cur) {
        int nh = round7(H * ((double)cw / W)), pad = (ch - nh) / 2;
        *y0 = pad;
        *h = ch - 2 * pad;
    } else {
        int nw = round7(W * ((double)ch / H)), pad = (cw - nw) / 2;
        *x0 = pad;
        *w = cw - 2 * pad;
    }
}
