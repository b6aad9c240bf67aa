/* test_server_misc.c — the image cache (one decode and one encode per distinct image even when
 * requests race, failed decodes not kept, LRU eviction under the byte cap) and the Prometheus
 * text of /metrics (histogram buckets cumulative, counters by label). */
#include "test.h"
#include "server/image_cache.h"
#include "server/metrics.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <pthread.h>
#include <unistd.h>

static char *img_a, *img_b;
static size_t len_a, len_b;
static int encodes;
static pthread_mutex_t enc_mu = PTHREAD_MUTEX_INITIALIZER;

static int fake_encode(void *user, float *out, struct vlm_error *err) {
    (void)err;
    pthread_mutex_lock(&enc_mu);
    encodes++;
    pthread_mutex_unlock(&enc_mu);
    usleep(20000);                       /* long enough for the racers to pile up */
    for (int i = 0; i < 8; i++) out[i] = (float)(intptr_t)user + (float)i;
    return VLM_OK;
}

struct racer { struct vlm_image_cache *c; int ok; float first; };

static void *race(void *arg) {
    struct racer *r = arg;
    int hit;
    struct vlm_cache_entry *e = vlm_image_cache_acquire(r->c, (const uint8_t *)img_a, len_a, "v", &hit);
    const struct vlm_image *img;
    const float *embd;
    int computed;
    struct vlm_error err;
    r->ok = e && vlm_image_cache_image(r->c, e, (const uint8_t *)img_a, len_a, NULL, &img, &err) == VLM_OK &&
            img->width > 0 &&
            vlm_image_cache_embd(r->c, e, 2, 4, fake_encode, (void *)(intptr_t)7, &embd, &computed, &err) == VLM_OK;
    if (r->ok) r->first = embd[0];
    vlm_image_cache_release(r->c, e);
    return NULL;
}

static void test_cache(void) {
    CHECK_EQ_INT(vlm_read_file(test_path("tests/fixtures/image/coffee.jpg"), 1 << 24, &img_a, &len_a, NULL), VLM_OK);
    CHECK_EQ_INT(vlm_read_file(test_path("tests/fixtures/image/astronaut.jpg"), 1 << 24, &img_b, &len_b, NULL), VLM_OK);
    if (!img_a || !img_b) return;
    struct vlm_image_cache *c = vlm_image_cache_new(64u << 20);
    struct racer r[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) { r[i].c = c; pthread_create(&th[i], NULL, race, &r[i]); }
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 8; i++) CHECK(r[i].ok && r[i].first == 7.0f);
    CHECK_EQ_INT(encodes, 1);             /* eight racing requests, one encode */
    size_t n, bytes;
    vlm_image_cache_stats(c, &n, &bytes);
    CHECK_EQ_INT(n, 1);
    CHECK(bytes > 0);
    /* another variant (processor settings) is another entry */
    int hit;
    struct vlm_cache_entry *e = vlm_image_cache_acquire(c, (const uint8_t *)img_a, len_a, "other", &hit);
    CHECK(e && !hit);
    vlm_image_cache_release(c, e);
    e = vlm_image_cache_acquire(c, (const uint8_t *)img_a, len_a, "v", &hit);
    CHECK(e && hit);
    vlm_image_cache_release(c, e);
    /* bytes that do not decode leave no entry behind */
    const struct vlm_image *img;
    struct vlm_error err;
    e = vlm_image_cache_acquire(c, (const uint8_t *)"notanimage", 10, "v", &hit);
    CHECK(vlm_image_cache_image(c, e, (const uint8_t *)"notanimage", 10, NULL, &img, &err) != VLM_OK);
    vlm_image_cache_release(c, e);
    vlm_image_cache_stats(c, &n, &bytes);
    CHECK_EQ_INT(n, 1);
    vlm_image_cache_free(c);

    /* a cap smaller than two images: the least recently used unreferenced one goes */
    c = vlm_image_cache_new(1);
    struct vlm_cache_entry *ea = vlm_image_cache_acquire(c, (const uint8_t *)img_a, len_a, "v", &hit);
    CHECK_EQ_INT(vlm_image_cache_image(c, ea, (const uint8_t *)img_a, len_a, NULL, &img, &err), VLM_OK);
    struct vlm_cache_entry *eb = vlm_image_cache_acquire(c, (const uint8_t *)img_b, len_b, "v", &hit);
    CHECK_EQ_INT(vlm_image_cache_image(c, eb, (const uint8_t *)img_b, len_b, NULL, &img, &err), VLM_OK);
    vlm_image_cache_stats(c, &n, &bytes);
    CHECK_EQ_INT(n, 2);                   /* both referenced: nothing evicted */
    vlm_image_cache_release(c, ea);
    vlm_image_cache_stats(c, &n, &bytes);
    CHECK_EQ_INT(n, 1);
    vlm_image_cache_release(c, eb);
    vlm_image_cache_stats(c, &n, &bytes);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(bytes, 0);
    vlm_image_cache_free(c);
    vlm_free(img_a);
    vlm_free(img_b);
}

static void test_metrics(void) {
    struct vlm_metrics *m = vlm_metrics_new("my\"model");
    vlm_metrics_observe(m, VLM_M_TTFT, 0.003);
    vlm_metrics_observe(m, VLM_M_TTFT, 0.07);
    vlm_metrics_observe(m, VLM_M_TTFT, 100.0);
    vlm_metrics_http(m, 200);
    vlm_metrics_http(m, 413);
    vlm_metrics_http(m, 418);
    vlm_metrics_tokens(m, 10, 5);
    vlm_metrics_finished(m, "length");
    vlm_metrics_image_cache(m, 1);
    struct vlm_metrics_gauges g = {3, 2, 0.25, 1000};
    struct vlm_buf b = {0};
    CHECK_EQ_INT(vlm_metrics_render(m, &g, &b), VLM_OK);
    const char *t = vlm_buf_cstr(&b);
    CHECK(strstr(t, "vllm:num_requests_running{model_name=\"my_model\"} 3\n") != NULL);
    CHECK(strstr(t, "vllm:num_requests_waiting{model_name=\"my_model\"} 2\n") != NULL);
    CHECK(strstr(t, "vllm:kv_cache_usage_perc{model_name=\"my_model\"} 0.250000\n") != NULL);
    CHECK(strstr(t, "vllm:time_to_first_token_seconds_bucket{le=\"0.005\",model_name=\"my_model\"} 1\n") != NULL);
    CHECK(strstr(t, "vllm:time_to_first_token_seconds_bucket{le=\"0.08\",model_name=\"my_model\"} 2\n") != NULL);
    CHECK(strstr(t, "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"my_model\"} 3\n") != NULL);
    CHECK(strstr(t, "vllm:time_to_first_token_seconds_count{model_name=\"my_model\"} 3\n") != NULL);
    CHECK(strstr(t, "vlm:http_requests_total{code=\"413\",model_name=\"my_model\"} 1\n") != NULL);
    CHECK(strstr(t, "vlm:http_requests_total{code=\"other\",model_name=\"my_model\"} 1\n") != NULL);
    CHECK(strstr(t, "vllm:prompt_tokens_total{model_name=\"my_model\"} 10\n") != NULL);
    CHECK(strstr(t, "vllm:request_success_total{finished_reason=\"length\",model_name=\"my_model\"} 1\n") != NULL);
    CHECK(strstr(t, "# TYPE vllm:inter_token_latency_seconds histogram\n") != NULL);
    vlm_buf_free(&b);
    vlm_metrics_free(m);
}

int main(void) {
    test_cache();
    test_metrics();
    TEST_MAIN_END();
}
