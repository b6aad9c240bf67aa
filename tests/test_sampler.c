/* test_sampler.c — the sampler (greedy, temperature, top-k/top-p/min-p, penalties, seeds,
 * log-probabilities), stop conditions (EOS, max tokens, stop strings and their holdback), and
 * vlm_generate end to end on the bundled demo model when it is present. */
#include <math.h>
#include <stdint.h>

#include "test.h"

#include "engine/sampler.h"
#include "engine/stop.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "vlm.h"

#define NV 8

static int32_t sample_once(const struct vlm_sampling_params *p, const float *logits, struct vlm_token_info *ti) {
    struct vlm_sampler *s;
    struct vlm_error err;
    if (vlm_sampler_new(p, NV, NULL, 0, &s, &err) != VLM_OK) return -1;
    float x[NV];
    memcpy(x, logits, sizeof x);
    vlm_sampler_sample(s, x, ti);
    vlm_sampler_free(s);
    return ti->id;
}

static void test_greedy_and_logprobs(void) {
    const float lg[NV] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, -3.0f, 1.9f, 0.1f};
    struct vlm_sampling_params p = vlm_sampling_default_params();
    p.n_top_logprobs = 3;
    struct vlm_token_info ti;
    CHECK_EQ_INT(sample_once(&p, lg, &ti), 1);
    double z = 0;
    for (int i = 0; i < NV; i++) z += exp(lg[i]);
    CHECK_NEAR(ti.logprob, 2.0 - log(z), 1e-5);
    CHECK_EQ_INT(ti.n_top, 3);
    CHECK_EQ_INT(ti.top_id[0], 1);
    CHECK_EQ_INT(ti.top_id[1], 6);
    CHECK_EQ_INT(ti.top_id[2], 3);
    CHECK_NEAR(ti.top_logprob[1], 1.9 - log(z), 1e-5);
    CHECK_EQ_INT(vlm_argmax(lg, NV), 1);
}

static void test_sampling(void) {
    const float lg[NV] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, -3.0f, 1.9f, 0.1f};
    struct vlm_sampling_params p = vlm_sampling_default_params();
    struct vlm_token_info ti;
    p.temperature = 1.0f;
    p.top_k = 1;   /* top-k 1 is greedy whatever the seed */
    for (uint64_t s = 0; s < 20; s++) { p.seed = s; p.has_seed = 1; CHECK_EQ_INT(sample_once(&p, lg, &ti), 1); }
    p.top_k = 0;
    p.top_p = 0.3f;   /* the best token alone holds more than 30% */
    for (uint64_t s = 0; s < 20; s++) { p.seed = s; p.has_seed = 1; CHECK_EQ_INT(sample_once(&p, lg, &ti), 1); }
    p.top_p = 1.0f;
    p.min_p = 0.95f;  /* only tokens within 95% of the top probability: 1 and 6 (e^-0.1 = 0.905: no) */
    for (uint64_t s = 0; s < 20; s++) { p.seed = s; p.has_seed = 1; CHECK_EQ_INT(sample_once(&p, lg, &ti), 1); }
    /* plain temperature sampling: frequencies follow softmax, and a seed repeats its draws */
    p.min_p = 0;
    struct vlm_sampler *s1, *s2;
    struct vlm_error err;
    p.seed = 42;
    CHECK_EQ_INT(vlm_sampler_new(&p, NV, NULL, 0, &s1, &err), VLM_OK);
    CHECK_EQ_INT(vlm_sampler_new(&p, NV, NULL, 0, &s2, &err), VLM_OK);
    int count[NV] = {0}, same = 1, n = 4000;
    for (int i = 0; i < n; i++) {
        float a[NV], b[NV];
        memcpy(a, lg, sizeof a);
        memcpy(b, lg, sizeof b);
        struct vlm_token_info t1, t2;
        vlm_sampler_sample(s1, a, &t1);
        vlm_sampler_sample(s2, b, &t2);
        same &= t1.id == t2.id;
        count[t1.id]++;
    }
    CHECK(same);
    double z = 0;
    for (int i = 0; i < NV; i++) z += exp(lg[i]);
    for (int i = 0; i < NV; i++) CHECK_NEAR((double)count[i] / n, exp(lg[i]) / z, 0.03);
    vlm_sampler_free(s1);
    vlm_sampler_free(s2);
}

static void test_penalties(void) {
    const float lg[NV] = {0.5f, 2.0f, -1.0f, 1.5f, 0.0f, -3.0f, 1.9f, 0.1f};
    struct vlm_sampling_params p = vlm_sampling_default_params();
    struct vlm_sampler *s;
    struct vlm_error err;
    struct vlm_token_info ti;
    /* repetition penalty on prompt tokens: 1 (2.0/1.5 = 1.33) falls below 6 (1.9) */
    int32_t prompt[] = {1};
    p.repetition_penalty = 1.5f;
    CHECK_EQ_INT(vlm_sampler_new(&p, NV, prompt, 1, &s, &err), VLM_OK);
    float x[NV];
    memcpy(x, lg, sizeof x);
    vlm_sampler_sample(s, x, &ti);
    CHECK_EQ_INT(ti.id, 6);
    double z = 0;
    for (int i = 0; i < NV; i++) z += exp(lg[i]);
    CHECK_NEAR(ti.logprob, 1.9 - log(z), 1e-5);   /* logprobs are of the raw logits */
    vlm_sampler_free(s);
    /* presence penalty on generated tokens: greedy alternates away from a repeated token */
    p = vlm_sampling_default_params();
    p.presence_penalty = 0.2f;
    CHECK_EQ_INT(vlm_sampler_new(&p, NV, NULL, 0, &s, &err), VLM_OK);
    int32_t seq[3];
    for (int i = 0; i < 3; i++) { memcpy(x, lg, sizeof x); vlm_sampler_sample(s, x, &ti); seq[i] = ti.id; }
    CHECK_EQ_INT(seq[0], 1);
    CHECK_EQ_INT(seq[1], 6);   /* 2.0 - 0.2 = 1.8 < 1.9 */
    CHECK_EQ_INT(seq[2], 1);   /* 1.8 vs 1.7 */
    vlm_sampler_free(s);
    /* frequency penalty grows with the count */
    p = vlm_sampling_default_params();
    p.frequency_penalty = 0.3f;
    CHECK_EQ_INT(vlm_sampler_new(&p, NV, NULL, 0, &s, &err), VLM_OK);
    for (int i = 0; i < 3; i++) { memcpy(x, lg, sizeof x); vlm_sampler_sample(s, x, &ti); seq[i] = ti.id; }
    CHECK_EQ_INT(seq[0], 1);
    CHECK_EQ_INT(seq[1], 6);
    CHECK_EQ_INT(seq[2], 1);   /* 1: 2.0 - 0.3 = 1.7 beats 6: 1.9 - 0.3 = 1.6 */
    vlm_sampler_free(s);
    /* bad parameters */
    p = vlm_sampling_default_params();
    p.temperature = NAN;
    CHECK_EQ_INT(vlm_sampling_params_check(&p, &err), VLM_E_INVALID);
    p = vlm_sampling_default_params();
    p.top_p = 0;
    CHECK_EQ_INT(vlm_sampling_params_check(&p, &err), VLM_E_INVALID);
    p = vlm_sampling_default_params();
    p.n_top_logprobs = 21;
    CHECK_EQ_INT(vlm_sampling_params_check(&p, &err), VLM_E_INVALID);
}

static void test_stop(void) {
    int32_t eos[] = {7, 9};
    const char *strs[] = {"END", "\n\n"};
    struct vlm_stop st = {eos, 2, strs, 2, 5, 0};
    CHECK_EQ_INT(vlm_stop_token(&st, 9, 1), VLM_FINISH_STOP);
    CHECK_EQ_INT(vlm_stop_token(&st, 3, 4), VLM_FINISH_NONE);
    CHECK_EQ_INT(vlm_stop_token(&st, 3, 5), VLM_FINISH_LENGTH);
    st.ignore_eos = 1;
    CHECK_EQ_INT(vlm_stop_token(&st, 9, 1), VLM_FINISH_NONE);
    const char *t = "abc\n\nxEND";
    CHECK_EQ_INT(vlm_stop_find(&st, t, strlen(t), 0), 3);
    CHECK_EQ_INT(vlm_stop_find(&st, t, strlen(t), 6), 6);   /* only matches ending after 6 */
    CHECK_EQ_INT(vlm_stop_find(&st, "abc", 3, 0), -1);
    CHECK_EQ_INT(vlm_stop_holdback(&st, "xyzEN", 5), 2);
    CHECK_EQ_INT(vlm_stop_holdback(&st, "xyz\n", 4), 1);
    CHECK_EQ_INT(vlm_stop_holdback(&st, "xyz", 3), 0);
    CHECK_EQ_STR(vlm_finish_reason(VLM_FINISH_LENGTH), "length");
}

struct stream { char buf[4096]; size_t len; };
static int collect(const char *text, size_t len, void *user) {
    struct stream *s = user;
    if (s->len + len < sizeof s->buf) { memcpy(s->buf + s->len, text, len); s->len += len; }
    return 0;
}

/* vlm_generate on the demo model: greedy is deterministic, streaming equals the result, a stop
 * string cuts the text before it with finish_reason "stop", max tokens gives "length". */
static void test_generate(void) {
    const char *dir = test_path("models/vlm-demo");
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/model.safetensors", dir);
    if (!vlm_file_exists(cfg)) { printf("SKIP: generate: %s has no model\n", dir); return; }
    char model_dir[4096];
    snprintf(model_dir, sizeof model_dir, "%s", dir);
    struct vlm_model *m;
    struct vlm_model_params mp = vlm_model_default_params();
    mp.n_threads = 2;
    if (vlm_model_load(model_dir, &mp, &m) != VLM_OK) { CHECK_MSG(0, "demo: %s", vlm_last_error()); return; }
    char *png = NULL;
    size_t len = 0;
    struct vlm_error err;
    snprintf(cfg, sizeof cfg, "%s/example.png", model_dir);
    CHECK_EQ_INT(vlm_read_file(cfg, 1 << 20, &png, &len, &err), VLM_OK);
    struct vlm_image_bytes img = {(const uint8_t *)png, len};
    const char *msgs = "[{\"role\":\"user\",\"content\":[{\"type\":\"image\"},{\"type\":\"text\",\"text\":\"What is in the image?\"}]}]";
    struct vlm_generate_params gp = vlm_generate_default_params();
    gp.max_tokens = 24;
    gp.temperature = 0;
    struct stream st1 = {{0}, 0};
    gp.on_text = collect;
    gp.user = &st1;
    struct vlm_generate_result r1, r2;
    CHECK_EQ_INT(vlm_generate(m, msgs, &img, 1, &gp, &r1), VLM_OK);
    gp.on_text = NULL;
    CHECK_EQ_INT(vlm_generate(m, msgs, &img, 1, &gp, &r2), VLM_OK);
    if (r1.text && r2.text) {
        printf("  demo: \"%s\" (%d tokens, %s)\n", r1.text, r1.n_tokens, r1.finish_reason);
        CHECK(strlen(r1.text) > 0);
        CHECK_EQ_STR(r1.text, r2.text);
        CHECK(st1.len == strlen(r1.text) && !memcmp(st1.buf, r1.text, st1.len));
        CHECK(r1.n_prompt_tokens > 0 && r1.n_tokens > 0);
        for (int i = 0; i < r1.n_tokens; i++) CHECK(r1.logprobs[i] <= 0 && isfinite(r1.logprobs[i]));
        size_t tl = strlen(r1.text);
        if (tl >= 4) {   /* stop at a piece of the middle of the greedy answer */
            char stop[8] = {0};
            size_t at = tl / 2;
            memcpy(stop, r1.text + at, 3);
            const char *stops[] = {stop};
            gp.stop = stops;
            gp.n_stop = 1;
            struct stream st2 = {{0}, 0};
            gp.on_text = collect;
            gp.user = &st2;
            struct vlm_generate_result r3;
            CHECK_EQ_INT(vlm_generate(m, msgs, &img, 1, &gp, &r3), VLM_OK);
            const char *first = strstr(r1.text, stop);
            size_t cut = first ? (size_t)(first - r1.text) : 0;
            CHECK(r3.text && strlen(r3.text) == cut && !strncmp(r3.text, r1.text, cut));
            CHECK_EQ_STR(r3.finish_reason, "stop");
            CHECK(st2.len == cut);
            vlm_generate_result_free(&r3);
            gp.stop = NULL;
            gp.n_stop = 0;
            gp.on_text = NULL;
        }
    }
    gp.max_tokens = 2;
    struct vlm_generate_result r4;
    CHECK_EQ_INT(vlm_generate(m, msgs, &img, 1, &gp, &r4), VLM_OK);
    CHECK_EQ_INT(r4.n_tokens, 2);
    CHECK_EQ_STR(r4.finish_reason, "length");
    vlm_generate_result_free(&r4);
    /* mismatched image count and bad JSON are errors, not crashes */
    CHECK_EQ_INT(vlm_generate(m, msgs, NULL, 0, &gp, &r4), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_generate(m, "[{", &img, 1, &gp, &r4), VLM_E_INVALID);
    vlm_generate_result_free(&r1);
    vlm_generate_result_free(&r2);
    vlm_free(png);
    vlm_model_free(m);
}

int main(void) {
    test_greedy_and_logprobs();
    test_sampling();
    test_penalties();
    test_stop();
    test_generate();
    TEST_MAIN_END();
}
