/* test_openai_request.c — request validation with vLLM's messages: bounds on n, max_tokens,
 * top_logprobs, stop, logit_bias; NaN/Inf, huge ints, deep nesting, duplicate keys; image
 * limits; chat content conversion to the template's "openai" content format; error bodies. */
#include "test.h"
#include "server/openai.h"
#include "util/alloc.h"
#include <stdint.h>
#include "vlm.h"

static struct vlm_api_limits lim;

static int parse_as(enum vlm_api_kind k, const char *body, struct vlm_api_request *r, struct vlm_api_error *e) {
    memset(e, 0, sizeof *e);
    return vlm_api_parse(k, body, strlen(body), &lim, r, e);
}

/* Expects a 400 whose message contains want. */
static void bad(const char *body, const char *want) {
    struct vlm_api_request r;
    struct vlm_api_error e;
    int rc = parse_as(VLM_API_CHAT, body, &r, &e);
    CHECK_MSG(rc != 0, "accepted %s", body);
    if (rc == 0) { vlm_api_request_free(&r); return; }
    CHECK_EQ_INT(e.status, 400);
    CHECK_MSG(strstr(e.message, want) != NULL, "'%s' lacks '%s'", e.message, want);
}

#define MSG "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"

static void test_chat_ok(void) {
    struct vlm_api_request r;
    struct vlm_api_error e;
    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\",\"detail\":\"low\"},\"uuid\":\"u1\"},"
        "{\"type\":\"text\",\"text\":\"and\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x/y.png\"}}]}],"
        "\"temperature\":0,\"max_tokens\":7,\"stop\":[\"a\",\"b\"],\"seed\":-5,\"n\":2,\"top_k\":-1,"
        "\"logprobs\":true,\"top_logprobs\":3,\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"logit_bias\":{\"5\":200,\"7\":-1.5},\"unknown_field\":{\"x\":[1,2]},\"chat_template_kwargs\":{\"k\":1}}";
    CHECK_EQ_INT(parse_as(VLM_API_CHAT, body, &r, &e), 0);
    CHECK_EQ_STR(r.model, "m");
    CHECK_EQ_INT(r.n_images, 2);
    CHECK(r.n_images == 2 && r.images[0].url_len == 26 && !strcmp(r.images[0].uuid, "u1"));
    CHECK(r.n_images == 2 && !strcmp(r.images[1].url, "http://x/y.png") && r.images[1].uuid == NULL);
    char *m = json_dumps(r.messages, JSON_COMPACT);
    CHECK_EQ_STR(m, "[{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"be brief\"}]},"
                    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is this?\"},{\"type\":\"image\"},"
                    "{\"type\":\"text\",\"text\":\"and\"},{\"type\":\"image\"}]}]");
    free(m);
    CHECK(r.temperature == 0);
    CHECK_EQ_INT(r.max_tokens, 7);
    CHECK_EQ_INT(r.n_stop, 2);
    CHECK_EQ_INT(r.n, 2);
    CHECK_EQ_INT(r.seed, -5);
    CHECK(r.has_seed);
    CHECK(r.logprobs && r.top_logprobs == 3);
    CHECK(r.stream && r.include_usage);
    CHECK_EQ_INT(r.n_bias, 2);
    CHECK(r.n_bias == 2 && r.bias_values[0] == 100.0f);   /* clamped as vLLM does */
    CHECK(r.add_generation_prompt && r.skip_special_tokens);
    vlm_api_request_free(&r);

    CHECK_EQ_INT(parse_as(VLM_API_CHAT, "{" MSG ",\"max_completion_tokens\":3,\"max_tokens\":9}", &r, &e), 0);
    CHECK_EQ_INT(r.max_tokens, 3);
    CHECK(r.temperature < 0 && r.top_p < 0);  /* not given */
    vlm_api_request_free(&r);
    CHECK_EQ_INT(parse_as(VLM_API_CHAT, "{" MSG ",\"max_tokens\":null,\"temperature\":null}", &r, &e), 0);
    CHECK_EQ_INT(r.max_tokens, -1);
    vlm_api_request_free(&r);
    /* image_url as a plain string, assistant message with null content */
    CHECK_EQ_INT(parse_as(VLM_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
                          "\"image_url\":\"file:///x.png\"}]},{\"role\":\"assistant\",\"content\":null}]}", &r, &e), 0);
    CHECK_EQ_INT(r.n_images, 1);
    vlm_api_request_free(&r);
}

static void test_chat_bad(void) {
    bad("", "invalid JSON");
    bad("[1]", "expected a JSON object");
    bad("{\"messages\":[], \"messages\":[]}", "duplicate");
    bad("{" MSG ",\"temperature\":NaN}", "invalid JSON");
    bad("{" MSG ",\"temperature\":Infinity}", "invalid JSON");
    bad("{" MSG ",\"temperature\":1e999}", "Invalid request body");
    bad("{" MSG ",\"max_tokens\":99999999999999999999999}", "number out of range");
    bad("{" MSG ",\"max_tokens\":0}", "max_tokens must be at least 1, got 0.");
    bad("{" MSG ",\"max_tokens\":-5}", "max_tokens must be at least 1");
    bad("{" MSG ",\"max_tokens\":\"5\"}", "valid integer");
    bad("{" MSG ",\"max_tokens\":1.5}", "valid integer");
    bad("{" MSG ",\"n\":0}", "n must be at least 1");
    bad("{" MSG ",\"n\":100000}", "n must be at most 16");
    bad("{" MSG ",\"temperature\":-1}", "temperature must be non-negative");
    bad("{" MSG ",\"temperature\":\"hot\"}", "valid number");
    bad("{" MSG ",\"top_p\":0}", "top_p must be in (0, 1]");
    bad("{" MSG ",\"top_p\":1.5}", "top_p must be in (0, 1]");
    bad("{" MSG ",\"top_k\":-7}", "top_k must be 0 (disable)");
    bad("{" MSG ",\"min_p\":2}", "min_p must be in [0, 1]");
    bad("{" MSG ",\"presence_penalty\":3}", "presence_penalty must be in [-2, 2]");
    bad("{" MSG ",\"frequency_penalty\":-3}", "frequency_penalty must be in [-2, 2]");
    bad("{" MSG ",\"repetition_penalty\":0}", "repetition_penalty");
    bad("{" MSG ",\"logprobs\":true,\"top_logprobs\":21}", "greater than max allowed: 20");
    bad("{" MSG ",\"logprobs\":true,\"top_logprobs\":-1}", "positive value");
    bad("{" MSG ",\"top_logprobs\":2}", "`logprobs` must be set to true");
    bad("{" MSG ",\"logprobs\":1}", "valid boolean");
    bad("{" MSG ",\"stop\":\"\"}", "empty string");
    bad("{" MSG ",\"stop\":[1]}", "valid string");
    bad("{" MSG ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\","
        "\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\",\"j\",\"k\",\"l\",\"m\",\"n\",\"o\",\"p\",\"q\"]}", "at most 32");
    bad("{" MSG ",\"logit_bias\":{\"x\":1}}", "keys must be token ids");
    bad("{" MSG ",\"logit_bias\":{\"-1\":1}}", "keys must be token ids");
    bad("{" MSG ",\"logit_bias\":{\"100\":1}}", "out-of-vocab");
    bad("{" MSG ",\"logit_bias\":[1]}", "valid dictionary");
    bad("{" MSG ",\"stream_options\":{\"include_usage\":true}}", "Stream options can only be defined when `stream=True`.");
    bad("{" MSG ",\"chat_template\":\"{{ 7*7 }}\"}", "--trust-request-chat-template");
    bad("{" MSG ",\"chat_template_kwargs\":{\"chat_template\":\"x\"}}", "--trust-request-chat-template");
    bad("{" MSG ",\"continue_final_message\":true,\"add_generation_prompt\":true}", "Cannot set both");
    bad("{" MSG ",\"seed\":\"1\"}", "valid integer");
    bad("{\"model\":\"m\"}", "messages: Field required");
    bad("{\"messages\":{}}", "valid list");
    bad("{\"messages\":[]}", "at least 1 item");
    bad("{\"messages\":[{\"content\":\"x\"}]}", "role");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"audio_url\",\"audio_url\":{}}]}]}", "not supported");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"wat\"}]}]}", "Unknown part type: wat");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}", "'text'");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{}}]}]}", "'url'");
    bad("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content");
    /* deep nesting is refused before parsing */
    char deep[600];
    size_t o = 0;
    o += (size_t)snprintf(deep, sizeof deep, "{" MSG ",\"x\":");
    for (int i = 0; i < 200 && o < sizeof deep - 2; i++) deep[o++] = '[';
    deep[o] = 0;
    bad(deep, "nested too deeply");
    /* image limit */
    lim.max_images = 1;
    const char *two = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"a\"}},"
                      "{\"type\":\"image_url\",\"image_url\":{\"url\":\"b\"}}]}]}";
    bad(two, "At most 1 image(s) may be provided in one prompt.");
    lim.max_images = 0;
    bad(two, "At most 0 image(s) may be provided in one prompt.");
    lim.max_images = 999;
    /* prompt length cap before tokenizing */
    lim.max_prompt_bytes = 10;
    bad("{\"messages\":[{\"role\":\"user\",\"content\":\"0123456789abc\"}]}", "too long");
    lim.max_prompt_bytes = 1 << 20;
}

static void test_completion_and_tokenize(void) {
    struct vlm_api_request r;
    struct vlm_api_error e;
    CHECK_EQ_INT(parse_as(VLM_API_COMPLETION, "{\"prompt\":\"Once\",\"logprobs\":2,\"echo\":true}", &r, &e), 0);
    CHECK(r.prompt && !strcmp(r.prompt, "Once"));
    CHECK(r.logprobs == 2 && r.echo && r.add_special_tokens);
    vlm_api_request_free(&r);
    CHECK_EQ_INT(parse_as(VLM_API_COMPLETION, "{\"prompt\":[1,2,3]}", &r, &e), 0);
    CHECK_EQ_INT(r.n_prompt_ids, 3);
    vlm_api_request_free(&r);
    CHECK_EQ_INT(parse_as(VLM_API_COMPLETION, "{\"prompt\":[\"x\"]}", &r, &e), 0);
    vlm_api_request_free(&r);
    CHECK(parse_as(VLM_API_COMPLETION, "{\"prompt\":[1,200]}", &r, &e) != 0);
    CHECK(strstr(e.message, "out of vocabulary") != NULL);
    CHECK(parse_as(VLM_API_COMPLETION, "{\"prompt\":\"\"}", &r, &e) != 0);
    CHECK(parse_as(VLM_API_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":30}", &r, &e) != 0);
    CHECK(parse_as(VLM_API_COMPLETION, "{}", &r, &e) != 0);
    CHECK(parse_as(VLM_API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", &r, &e) != 0);
    CHECK_EQ_INT(parse_as(VLM_API_TOKENIZE, "{\"prompt\":\"hi\"}", &r, &e), 0);
    CHECK(r.add_special_tokens && r.prompt);
    vlm_api_request_free(&r);
    CHECK_EQ_INT(parse_as(VLM_API_TOKENIZE, "{" MSG "}", &r, &e), 0);
    CHECK(!r.add_special_tokens && r.messages && r.add_generation_prompt);
    vlm_api_request_free(&r);
    CHECK_EQ_INT(parse_as(VLM_API_DETOKENIZE, "{\"tokens\":[1,2]}", &r, &e), 0);
    CHECK_EQ_INT(r.n_prompt_ids, 2);
    vlm_api_request_free(&r);
    CHECK(parse_as(VLM_API_DETOKENIZE, "{\"tokens\":[\"a\"]}", &r, &e) != 0);
}

static void test_error_body(void) {
    struct vlm_api_error e;
    vlm_api_fail(&e, 404, "model", "The model `%s` does not exist.", "x");
    char *b = vlm_api_error_body(&e);
    CHECK_EQ_STR(b, "{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\","
                    "\"param\":\"model\",\"code\":404}}");
    vlm_free(b);
    vlm_api_fail(&e, 400, NULL, "bad \"q\"");
    b = vlm_api_error_body(&e);
    CHECK_EQ_STR(b, "{\"error\":{\"message\":\"bad \\\"q\\\"\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}}");
    vlm_free(b);
    CHECK_EQ_INT(vlm_api_status_for(VLM_E_TOO_LARGE), 413);
    CHECK_EQ_INT(vlm_api_status_for(VLM_E_FETCH), 400);
    CHECK_EQ_INT(vlm_api_status_for(VLM_E_FORBIDDEN), 400);
}

/* Allocation failure at every point of parsing is an error, never a crash or a leak. */
static void test_alloc_failures(void) {
    const char *body = "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"hi\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"http://x/y\"}}]}],"
        "\"stop\":[\"a\",\"b\"],\"logit_bias\":{\"1\":1},\"stop_token_ids\":[3]}";
    int ok_seen = 0, fail_seen = 0;
    for (uint64_t n = 1; n < 200; n++) {
        struct vlm_api_request r;
        struct vlm_api_error e;
        vlm_alloc_fail_after(n);
        int rc = vlm_api_parse(VLM_API_CHAT, body, strlen(body), &lim, &r, &e);
        vlm_alloc_fail_after(0);
        if (rc == 0) { ok_seen++; CHECK_EQ_INT(r.n_images, 2); vlm_api_request_free(&r); }
        else { fail_seen++; CHECK_EQ_INT(e.status, 500); }
    }
    CHECK(ok_seen > 0 && fail_seen > 0);
}

int main(void) {
    vlm_api_limits_default(&lim);
    lim.vocab_size = 100;
    test_chat_ok();
    test_chat_bad();
    test_completion_and_tokenize();
    test_error_body();
    test_alloc_failures();
    TEST_MAIN_END();
}
