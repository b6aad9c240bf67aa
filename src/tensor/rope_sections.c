/* rope_sections.c — RoPE whose rotation pairs are split into sections, each taking its angle
 * from its own position axis: Qwen2-VL's multimodal RoPE (t, h, w) and the 2-D (h, w) rotary of
 * its vision tower. The same rotate_half layout and f32 angle products as vlm_rope_apply. */
#include "tensor/tensor.h"

#include <math.h>
#include <stddef.h>

void vlm_rope_apply_sections(float *x, int n_tok, int n_head, int head_dim, const int32_t *pos, int n_sec,
                             const int *sections, const float *inv_freq) {
    int half = head_dim / 2;
    float cs[256], sn[256];
    unsigned char axis[256] = {0};
    if (half > 256) half = 256;
    for (int s = 0, i = 0; s < n_sec; s++)
        for (int j = 0; j < sections[s] && i < half; j++) axis[i++] = (unsigned char)s;
    for (int t = 0; t < n_tok; t++) {
        const int32_t *p = pos + (size_t)t * n_sec;
        for (int i = 0; i < half; i++) {
            float a = (float)p[axis[i]] * inv_freq[i];   /* f32 product, as torch's freqs */
            cs[i] = cosf(a);
            sn[i] = sinf(a);
        }
        for (int h = 0; h < n_head; h++) {
            float *v = x + ((size_t)t * n_head + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}
