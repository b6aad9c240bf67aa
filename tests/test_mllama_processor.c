/* test_mllama_processor.c — Llama 3.2 Vision's processor against transformers: the
 * cross-attention spans of <|image|> tokens turned into the dense cross_attention_mask must
 * equal transformers' for synthetic ids and real Llama 3 prompts (fixtures written by
 * scripts/make_mllama_fixtures.py). */
#include "image_fixture.h"
#include "models/mllama_processor.h"
#include "test.h"

#define MAX_IMAGES 64

static json_t *load_xz_json(const char *name) {
    char rel[256];
    size_t n;
    snprintf(rel, sizeof rel, "../mllama/%s", name);   /* fx_read is rooted at fixtures/image */
    uint8_t *t = fx_read_xz(rel, &n);
    if (!t) return NULL;
    json_t *j = json_loadb((const char *)t, n, 0, NULL);
    free(t);
    return j;
}

/* The dense mask (n, n_images, max_tiles) as transformers lays it out, from our spans. */
static char *dense_from_spans(const struct vlm_mllama_span *sp, int n_img, const json_t *tiles,
                              int n, int max_tiles) {
    size_t len = (size_t)n * n_img * max_tiles;
    char *m = malloc(len + 1);
    memset(m, '0', len);
    m[len] = 0;
    for (int i = 0; i < n_img; i++) {
        int nt = (int)json_integer_value(json_array_get(tiles, (size_t)i));
        for (int t = sp[i].start; t < sp[i].end; t++)
            for (int k = 0; k < nt && k < max_tiles; k++) m[((size_t)t * n_img + i) * max_tiles + k] = '1';
    }
    return m;
}

static void test_cross_attention(void) {
    json_t *fx = load_xz_json("cross_attention.json.xz");
    CHECK(fx != NULL);
    if (!fx) return;
    int32_t image_id = (int32_t)json_integer_value(json_object_get(fx, "image_token_id"));
    json_t *cases = json_object_get(fx, "cases"), *c;
    size_t ci;
    int n_proc = 0, n_consecutive = 0, n_text_first = 0;
    CHECK(json_array_size(cases) >= 50);
    json_array_foreach(cases, ci, c) {
        json_t *ja = json_object_get(c, "ids");
        int n = (int)json_array_size(ja);
        int32_t *ids = malloc(sizeof *ids * (size_t)(n ? n : 1));
        for (int i = 0; i < n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(ja, (size_t)i));
        struct vlm_mllama_span sp[MAX_IMAGES];
        int want = fx_int(c, "n_images");
        int got = vlm_mllama_cross_attention_spans(ids, n, image_id, sp, MAX_IMAGES);
        CHECK_MSG(got == want, "case %zu: %d images, transformers %d", ci, got, want);
        CHECK_EQ_INT(vlm_mllama_cross_attention_spans(ids, n, image_id, NULL, 0), want);
        if (got == want && want <= MAX_IMAGES) {
            char *m = dense_from_spans(sp, got, json_object_get(c, "num_tiles"), n, fx_int(c, "max_tiles"));
            CHECK_MSG(!strcmp(m, fx_str(c, "mask")), "case %zu (%s): dense mask differs", ci, fx_str(c, "source"));
            free(m);
            for (int i = 0; i < got; i++)
                CHECK(sp[i].start >= 0 && sp[i].start < sp[i].end && sp[i].end <= n && ids[sp[i].start] == image_id);
            for (int i = 1; i < got; i++) n_consecutive += sp[i].start == sp[i - 1].start + 1;
            n_text_first += got > 0 && sp[0].start > 0;
            if (got > 1) {   /* a short spans array gets the same first spans */
                struct vlm_mllama_span one[1];
                CHECK_EQ_INT(vlm_mllama_cross_attention_spans(ids, n, image_id, one, 1), got);
                CHECK(one[0].start == sp[0].start && one[0].end == sp[0].end);
            }
        }
        n_proc += !strcmp(fx_str(c, "source"), "processor");
        free(ids);
    }
    CHECK(n_proc >= 5 && n_consecutive >= 5 && n_text_first >= 5);   /* the cases the fixture must hold */
    CHECK_EQ_INT(vlm_mllama_cross_attention_spans(NULL, 0, image_id, NULL, 0), 0);
    json_decref(fx);
}

int main(void) {
    test_cross_attention();
    TEST_MAIN_END();
}
