/* idefics3_processor.c — Idefics3ImageProcessor / SmolVLMImageProcessor (identical in
 * transformers), following the Pillow backend step by step: longest-edge resize (even side,
 * 4096 cap), resize to multiples of max_image_size, max_image_size tiles + a global image (or
 * one square image without splitting), rescale, normalize, pad; and Idefics3Processor's
 * prompt expansion with <fake_token_around_image>, <row_R_col_C>, <global-img>, <image>. */
#include "image/image.h"
#include "models/processor.h"
#include "models/processor_internal.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <math.h>
#include <string.h>

#define MAX_IMAGE_SIDE 4096    /* transformers' MAX_IMAGE_SIZE for this family */
#define MAX_TILES      1024

struct idefics3 {
    struct proc_common c;
    int longest_edge;          /* size.longest_edge; 0 when size gives height and width */
    int size_h, size_w;
    int max_image_size;        /* max_image_size.longest_edge: tile side */
    int do_image_splitting;
    int image_seq_len;         /* <image> tokens per tile */
};

static int matches(const char *type, const char *cls) {
    return !strcmp(type, "Idefics3ImageProcessor") || !strcmp(type, "SmolVLMImageProcessor") ||
           (!*type && (!strcmp(cls, "Idefics3Processor") || !strcmp(cls, "SmolVLMProcessor")));
}

/* image_seq_len as Idefics3Processor computes it when processor_config.json lacks it:
 * int(((image_size // patch_size) ** 2) / (scale_factor ** 2)) from config.json. */
static int seq_len_from_config(const char *dir) {
    char *path = vlm_path_join(dir, "config.json"), *text = NULL;
    size_t len;
    int n = 169;   /* Idefics3Processor's default */
    struct vlm_error e = {0, ""};
    if (path && vlm_file_exists(path) && vlm_read_file(path, 1u << 22, &text, &len, &e) == VLM_OK) {
        json_t *j = json_loadb(text, len, 0, NULL);
        json_t *vc = json_object_get(j, "vision_config");
        int is = proc_json_int(vc, "image_size", 0), ps = proc_json_int(vc, "patch_size", 0);
        json_t *sf = json_object_get(j, "scale_factor");
        double s = json_is_number(sf) ? json_number_value(sf) : 0;
        if (is > 0 && ps > 0 && s > 0) {
            double v = (double)(is / ps) * (is / ps) / (s * s);
            if (v >= 1 && v < 1e6) n = (int)v;
        }
        json_decref(j);
    }
    vlm_free(text);
    vlm_free(path);
    return n;
}

static int parse_size(json_t *pre, struct idefics3 *s, struct vlm_error *err) {
    json_t *sz = json_object_get(pre, "size");
    if (sz && !json_is_null(sz)) {
        if (!json_is_object(sz)) return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: size must be an object");
        int le = proc_json_int(sz, "longest_edge", 0), h = proc_json_int(sz, "height", 0),
            w = proc_json_int(sz, "width", 0);
        if (le > 0) { s->longest_edge = le; s->size_h = s->size_w = 0; }
        else if (h > 0 && w > 0) { s->longest_edge = 0; s->size_h = h; s->size_w = w; }
        else return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: size needs longest_edge or height and width");
    }
    json_t *mx = json_object_get(pre, "max_image_size");
    if (mx && !json_is_null(mx)) {
        int le = json_is_object(mx) ? proc_json_int(mx, "longest_edge", 0) : 0;
        if (le <= 0) return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: max_image_size.longest_edge must be a positive integer");
        s->max_image_size = le;
    }
    if (s->longest_edge > 65536 || s->size_h > 65536 || s->size_w > 65536 || s->max_image_size > 65536)
        return vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: sizes out of range");
    return VLM_OK;
}

static int load(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err) {
    struct idefics3 *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    /* Class defaults of Idefics3ImageProcessor (IMAGENET_STANDARD mean/std = 0.5). */
    s->c = (struct proc_common){1, 1, 1, 1, 1, 1.0 / 255.0, {0.5f, 0.5f, 0.5f}, {0.5f, 0.5f, 0.5f},
                                VLM_RESAMPLE_LANCZOS};
    s->longest_edge = 4 * 364;
    s->max_image_size = 364;
    s->do_image_splitting = 1;
    int rc = proc_common_parse(pre, &s->c, err);
    if (rc == VLM_OK) rc = parse_size(pre, s, err);
    if (rc == VLM_OK) {
        s->do_image_splitting = proc_json_bool(pre, "do_image_splitting", 1);
        if (s->do_image_splitting < 0)
            rc = vlm_error_set(err, VLM_E_FORMAT, "preprocessor_config.json: do_image_splitting must be a boolean");
    }
    if (rc == VLM_OK) {
        int n = proc ? proc_json_int(proc, "image_seq_len", 0) : 0;
        s->image_seq_len = n > 0 ? n : seq_len_from_config(dir);
        if (n < 0 || s->image_seq_len > 100000)
            rc = vlm_error_set(err, VLM_E_FORMAT, "processor_config.json: bad image_seq_len");
    }
    if (rc) { vlm_free(s); return rc; }
    *state = s;
    return VLM_OK;
}

static void unload(void *state) { vlm_free(state); }

/* get_resize_output_image_size: longest edge to max_len (other side even), then under 4096. */
static void longest_edge_size(int h, int w, int max_len, int *oh, int *ow) {
    double aspect = (double)w / (double)h;
    if (w >= h) {
        w = max_len;
        h = (int)(w / aspect);
        if (h % 2 != 0) h += 1;
    } else {
        h = max_len;
        w = (int)(h * aspect);
        if (w % 2 != 0) w += 1;
    }
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    aspect = (double)w / (double)h;
    if (w >= h && w > MAX_IMAGE_SIDE) {
        w = MAX_IMAGE_SIDE;
        h = (int)(w / aspect);
    } else if (h > w && h > MAX_IMAGE_SIDE) {
        h = MAX_IMAGE_SIDE;
        w = (int)(h * aspect);
    }
    *oh = h < 1 ? 1 : h;
    *ow = w < 1 ? 1 : w;
}

static int ceil_to(int v, int m) { return (int)(((long)v + m - 1) / m) * m; }

/* resize_for_vision_encoder: both sides up to multiples of m, keeping the aspect ratio. */
static void encoder_size(int h, int w, int m, int *oh, int *ow) {
    double aspect = (double)w / (double)h;
    if (w >= h) {
        w = ceil_to(w, m);
        h = (int)(w / aspect);
        h = ceil_to(h, m);
    } else {
        h = ceil_to(h, m);
        w = (int)(h * aspect);
        w = ceil_to(w, m);
    }
    *oh = h;
    *ow = w;
}

/* The working image: borrowed from the caller until the first resize makes one of our own. */
struct work {
    const struct vlm_image *cur;
    struct vlm_image own;
};

/* cur = cur resized to w x h (PIL returns a copy when the size is unchanged: nothing to do). */
static int resize_to(struct work *wk, int w, int h, int resample, struct vlm_error *err) {
    if (w < 1 || h < 1) return vlm_error_set(err, VLM_E_INVALID, "processor: image too small to resize");
    if (wk->cur->width == w && wk->cur->height == h) return VLM_OK;
    struct vlm_image t;
    int rc = vlm_image_resize(wk->cur, w, h, resample, &t, err);
    if (rc) return rc;
    vlm_image_free(&wk->own);
    wk->own = t;
    wk->cur = &wk->own;
    return VLM_OK;
}

/* A tile: a rectangle of an image (the split image, or the global image). */
struct tile { const struct vlm_image *src; int x, y, w, h; };

static int build_prompt(const struct idefics3 *s, int rows, int cols, struct vlm_image_input *out,
                        struct vlm_error *err) {
    struct vlm_buf b = {0};
    int rc = VLM_OK;
    for (int r = 0; r < rows && !rc; r++) {
        for (int c = 0; c < cols && !rc; c++) {
            rc = vlm_buf_appendf(&b, "<fake_token_around_image><row_%d_col_%d>", r + 1, c + 1);
            for (int i = 0; i < s->image_seq_len && !rc; i++) rc = vlm_buf_append(&b, "<image>", 7);
        }
        if (!rc) rc = vlm_buf_putc(&b, '\n');
    }
    if (!rc && rows > 0) rc = vlm_buf_putc(&b, '\n');
    if (!rc) rc = vlm_buf_append(&b, "<fake_token_around_image><global-img>", 37);
    for (int i = 0; i < s->image_seq_len && !rc; i++) rc = vlm_buf_append(&b, "<image>", 7);
    if (!rc) rc = vlm_buf_append(&b, "<fake_token_around_image>", 25);
    if (rc) { vlm_buf_free(&b); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
    out->prompt = vlm_buf_take(&b);
    out->n_image_tokens = s->image_seq_len * (rows * cols + 1);
    return VLM_OK;
}

/* Rescale + normalize each tile into out->pixels, padding to the largest tile with 0 and
 * marking real pixels in pixel_mask (1) as HF's pad() does. */
static int pack_tiles(const struct idefics3 *s, const struct tile *tiles, int n,
                      struct vlm_image_input *out, struct vlm_error *err) {
    int H = 0, W = 0;
    for (int i = 0; i < n; i++) {
        if (tiles[i].h > H) H = tiles[i].h;
        if (tiles[i].w > W) W = tiles[i].w;
    }
    size_t plane = (size_t)H * W, total;
    if (!vlm_mul3_ok(plane, 3, (size_t)n, &total)) return vlm_error_set(err, VLM_E_TOO_LARGE, "processor: too large");
    out->pixels = vlm_malloc(total * sizeof(float));
    out->pixel_mask = vlm_malloc(plane * (size_t)n);
    if (!out->pixels || !out->pixel_mask) return vlm_error_set(err, VLM_E_NOMEM, "processor: out of memory");
    vlm_image_advise_large(out->pixels, total * sizeof(float));
    double scale = s->c.do_rescale ? s->c.rescale_factor : 1.0;
    for (int i = 0; i < n; i++) {
        const struct tile *t = &tiles[i];
        float *px = out->pixels + (size_t)i * 3 * plane;
        if (t->h != H || t->w != W) memset(px, 0, 3 * plane * sizeof(float));   /* padding */
        vlm_image_rect_to_chw(t->src, t->x, t->y, t->w, t->h, scale,
                              s->c.do_normalize ? s->c.mean : NULL, s->c.do_normalize ? s->c.std : NULL,
                              px, H, W);
        uint8_t *m = out->pixel_mask + (size_t)i * plane;
        memset(m, 0, plane);
        for (int y = 0; y < t->h; y++) memset(m + (size_t)y * W, 1, (size_t)t->w);
    }
    out->n_tiles = n;
    out->channels = 3;
    out->height = H;
    out->width = W;
    return VLM_OK;
}

/* split_images: m x m crops of img row by row, then img resized to m x m (into *global). */
static int split(const struct idefics3 *s, int m, const struct vlm_image *img, struct vlm_image *global,
                 struct tile *tiles, int *n, int *rows, int *cols, struct vlm_error *err) {
    int h = img->height, w = img->width;
    *rows = *cols = 0;
    if (h <= m && w <= m) {
        tiles[(*n)++] = (struct tile){img, 0, 0, w, h};
        return VLM_OK;
    }
    int nh = (h - m) / m + 1, nw = (w - m) / m + 1;
    if ((long)nh * nw + 1 > MAX_TILES) return vlm_error_set(err, VLM_E_TOO_LARGE, "processor: too many tiles");
    for (int r = 0; r < nh; r++)
        for (int c = 0; c < nw; c++) {
            int cw = w - c * m < m ? w - c * m : m, ch = h - r * m < m ? h - r * m : m;
            tiles[(*n)++] = (struct tile){img, c * m, r * m, cw, ch};
        }
    int rc = vlm_image_resize(img, m, m, s->c.resample, global, err);
    if (rc) return rc;
    tiles[(*n)++] = (struct tile){global, 0, 0, m, m};
    *rows = nh;
    *cols = nw;
    return VLM_OK;
}

static int run(const void *state, const struct vlm_image *in,
               const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
               struct vlm_error *err) {
    const struct idefics3 *s = state;
    int splitting = s->do_image_splitting, longest = s->longest_edge, m = s->max_image_size;
    if (ov) {
        if (ov->do_image_splitting == 0 || ov->do_image_splitting == 1) splitting = ov->do_image_splitting;
        if (ov->longest_edge < 0 || ov->longest_edge > MAX_IMAGE_SIDE || ov->max_image_size < 0 ||
            ov->max_image_size > MAX_IMAGE_SIDE)
            return vlm_error_set(err, VLM_E_INVALID, "processor: size override out of range");
        if (ov->longest_edge > 0) longest = ov->longest_edge;
        if (ov->max_image_size > 0) m = ov->max_image_size;
    }
    struct work wk = {in, {0, 0, NULL}};
    struct vlm_image global = {0, 0, NULL};
    int rc = VLM_OK;
    if (s->c.do_resize) {
        int h = s->size_h, w = s->size_w;
        if (longest > 0) longest_edge_size(in->height, in->width, longest, &h, &w);
        rc = resize_to(&wk, w, h, s->c.resample, err);
    }
    struct tile *tiles = NULL;
    int n = 0, rows = 0, cols = 0;
    if (!rc && !(tiles = vlm_malloc(MAX_TILES * sizeof *tiles)))
        rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (!rc && splitting) {
        int h, w;
        encoder_size(wk.cur->height, wk.cur->width, m, &h, &w);
        rc = resize_to(&wk, w, h, s->c.resample, err);
        if (!rc) rc = split(s, m, wk.cur, &global, tiles, &n, &rows, &cols, err);
    } else if (!rc) {
        rc = resize_to(&wk, m, m, s->c.resample, err);
        if (!rc) tiles[n++] = (struct tile){wk.cur, 0, 0, m, m};
    }
    if (!rc) rc = pack_tiles(s, tiles, n, out, err);
    if (!rc) {
        out->n_rows = rows;
        out->n_cols = cols;
        rc = build_prompt(s, rows, cols, out, err);
    }
    vlm_free(tiles);
    vlm_image_free(&global);
    vlm_image_free(&wk.own);
    if (rc) vlm_image_input_free(out);
    return rc;
}

const struct vlm_processor_ops vlm_idefics3_processor_ops = {
    "Idefics3ImageProcessor", matches, load, run, unload, "<image>",
};
