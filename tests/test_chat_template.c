/* test_chat_template.c — the chat-template engine against transformers: every real template x
 * conversation in tests/fixtures/templates/cases.json byte for byte, each construct in
 * units.json, and hand-written checks of whitespace control, errors with line/column,
 * limits, the sandbox, raise_exception and strftime_now. */
#include "test.h"
#include "text/chat_template.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Renders src with ctx_json; returns the vlm_malloc'd output or NULL (err filled). */
static char *render_lim(const char *src, const char *ctx_json, const struct vlm_template_limits *lim,
                        struct vlm_error *err) {
    struct vlm_template *t;
    vlm_error_clear(err);
    if (vlm_template_parse(src, strlen(src), &t, err)) return NULL;
    json_t *ctx = json_loads(ctx_json ? ctx_json : "{}", 0, NULL);
    char *out = NULL;
    size_t len;
    if (vlm_template_render(t, ctx, lim, &out, &len, err)) out = NULL;
    else if (strlen(out) != len) { vlm_free(out); out = NULL; }
    json_decref(ctx);
    vlm_template_free(t);
    return out;
}

static char *render(const char *src, const char *ctx_json, struct vlm_error *err) {
    return render_lim(src, ctx_json, NULL, err);
}

#define CHECK_RENDER(src, ctx, want) do { \
    struct vlm_error e_; \
    char *o_ = render(src, ctx, &e_); \
    CHECK_MSG(o_ && !strcmp(o_, want), "%s -> [%s] (%s), want [%s]", src, o_ ? o_ : "(error)", e_.msg, want); \
    vlm_free(o_); \
} while (0)

static int render_case(json_t *c, int *was_error, struct vlm_error *err) {
    const char *name = json_string_value(json_object_get(c, "template"));
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", test_path("tests/fixtures/templates"), name);
    char *src = NULL, *out = NULL;
    size_t n, len;
    json_t *special = NULL, *ctx = NULL;
    struct vlm_template *t = NULL;
    int ok = 0;
    *was_error = 0;
    vlm_error_clear(err);
    if (vlm_chat_template_find(dir, &src, &n, err) || vlm_chat_template_special_tokens(dir, &special, err)) goto done;
    int flags = json_is_true(json_object_get(c, "processor")) ? VLM_CHAT_TEMPLATE_PROCESSOR : 0;
    CHECK_EQ_INT(flags != 0, vlm_chat_template_is_processor(dir));
    struct vlm_chat_template_opts o = {
        .add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt")),
        .continue_final_message = json_is_true(json_object_get(c, "continue_final_message")),
        .flags = flags,
        .kwargs = json_object_get(c, "kwargs"),
    };
    if (vlm_template_parse(src, n, &t, err)) goto done;
    if (vlm_chat_template_apply(t, special, json_object_get(c, "messages"), &o, &out, &len, err)) { *was_error = 1; goto done; }
    json_t *want = json_object_get(c, "expected");
    ok = json_is_string(want) && json_string_length(want) == len && !memcmp(json_string_value(want), out, len);
    if (!ok && json_is_string(want))
        fprintf(stderr, "--- %s / %s (gen=%d)\nwant: [%s]\ngot:  [%s]\n", name,
                json_string_value(json_object_get(c, "conversation")),
                json_is_true(json_object_get(c, "add_generation_prompt")), json_string_value(want), out);
done:
    if (json_is_true(json_object_get(c, "error"))) {
        ok = *was_error;
        if (!ok) fprintf(stderr, "--- %s / %s: expected an error (%s), got [%s]\n", name,
                         json_string_value(json_object_get(c, "conversation")),
                         json_string_value(json_object_get(c, "error_text")), out ? out : err->msg);
    } else if (!ok && !out) {
        fprintf(stderr, "--- %s / %s: error %s\n", name, json_string_value(json_object_get(c, "conversation")), err->msg);
    }
    vlm_free(out);
    vlm_free(src);
    vlm_template_free(t);
    json_decref(special);
    json_decref(ctx);
    return ok;
}

static void test_real_templates(void) {
    json_error_t je;
    json_t *cases = json_load_file(test_path("tests/fixtures/templates/cases.json"), 0, &je);
    CHECK_MSG(cases != NULL, "cases.json: %s", je.text);
    if (!cases) return;
    size_t i, pass = 0, errors = 0;
    json_t *c;
    json_array_foreach(cases, i, c) {
        int was_error;
        struct vlm_error err;
        int ok = render_case(c, &was_error, &err);
        CHECK(ok);
        pass += ok;
        errors += was_error && ok;
    }
    CHECK(json_array_size(cases) >= 400);
    printf("real templates: %zu/%zu cases byte-identical to transformers (%zu of them expected errors)\n", pass,
           json_array_size(cases), errors);
    json_decref(cases);
}

static void test_units(void) {
    json_t *u = json_load_file(test_path("tests/fixtures/templates/units.json"), 0, NULL);
    CHECK(u != NULL);
    if (!u) return;
    char *ctx = json_dumps(json_object_get(u, "context"), 0);
    size_t i, pass = 0;
    json_t *c, *cases = json_object_get(u, "cases");
    json_array_foreach(cases, i, c) {
        struct vlm_error err;
        const char *src = json_string_value(json_object_get(c, "template"));
        char *out = render(src, ctx, &err);
        int ok;
        if (json_is_true(json_object_get(c, "error"))) ok = out == NULL;
        else ok = out && !strcmp(out, json_string_value(json_object_get(c, "expected")));
        CHECK_MSG(ok, "%s -> [%s] (%s), want [%s]", src, out ? out : "(error)", out ? "" : err.msg,
                  json_is_true(json_object_get(c, "error")) ? "an error" : json_string_value(json_object_get(c, "expected")));
        pass += ok;
        vlm_free(out);
    }
    printf("constructs: %zu/%zu match transformers' Jinja environment\n", pass, json_array_size(cases));
    free(ctx);
    json_decref(u);
}

static void test_whitespace(void) {
    CHECK_RENDER("a\n{% if true %}\nb\n{% endif %}\nc", NULL, "a\nb\nc");          /* trim_blocks */
    CHECK_RENDER("a\n    {% if true %}\nb\n    {% endif %}\nc", NULL, "a\nb\nc");  /* lstrip_blocks */
    CHECK_RENDER("a  {%- if true -%}  b  {%- endif -%}  c", NULL, "abc");
    CHECK_RENDER("a  {{- 'x' -}}  b", NULL, "axb");
    CHECK_RENDER("a\n  {%+ if true %}b{% endif %}", NULL, "a\n  b");
    CHECK_RENDER("x {# note #}\n  {# c #}\ny", NULL, "x y");
    CHECK_RENDER("line\n", NULL, "line");                     /* one trailing newline dropped */
    CHECK_RENDER("a\r\nb", NULL, "a\nb");
    CHECK_RENDER("{% raw %}{{ x }}{% endraw %}", NULL, "{{ x }}");
}

static void check_error(const char *src, const char *ctx, int code, const char *needle) {
    struct vlm_error e;
    char *o = render(src, ctx, &e);
    CHECK_MSG(o == NULL && e.code == code && strstr(e.msg, needle), "%s: code %d msg [%s], want %d [%s]", src,
              e.code, e.msg, code, needle);
    vlm_free(o);
}

static void test_errors(void) {
    check_error("ok\n{% if %}", NULL, VLM_E_FORMAT, "line 2, column 7");
    check_error("{{ 1 + }}", NULL, VLM_E_FORMAT, "line 1, column 8");
    check_error("a\nb\n  {% for x in y %}", NULL, VLM_E_FORMAT, "expected 'endfor'");
    check_error("{% endif %}", NULL, VLM_E_FORMAT, "line 1, column 4");
    check_error("{{ 'abc }}", NULL, VLM_E_FORMAT, "unterminated string");
    check_error("{% include 'x' %}", NULL, VLM_E_FORMAT, "unknown tag 'include'");
    check_error("{% break %}", NULL, VLM_E_FORMAT, "outside of a loop");
    check_error("{{ (1 }}", NULL, VLM_E_FORMAT, "line 1");
    check_error("{# open", NULL, VLM_E_FORMAT, "comment");
    check_error("\n\n   {{ raise_exception('Conversation roles must alternate') }}", NULL, VLM_E_INVALID,
                "line 3, column 22: Conversation roles must alternate");
    check_error("{{ x.y }}", NULL, VLM_E_INVALID, "'x' is undefined");
    check_error("{{ 1 / 0 }}", NULL, VLM_E_INVALID, "division by zero");
    check_error("{% set l = [1] %}{{ l.append(2) }}", NULL, VLM_E_FORBIDDEN, "unsafe");
    check_error("{% set ns = namespace(a=1) %}{% set ns._x = 1 %}", NULL, VLM_E_FORBIDDEN, "underscore");
    CHECK_RENDER("{{ m.__class__ }}|", "{\"m\": {}}", "|");
    check_error("{{ ''.__class__.__mro__ }}", NULL, VLM_E_INVALID, "");
    /* the sandbox hides private names: attributes that start with '_' are undefined */
    CHECK_RENDER("{{ ''.__class__ is defined }}|{{ {}._x is defined }}", NULL, "False|False");
}

static void test_limits(void) {
    struct vlm_template_limits lim = vlm_template_default_limits();
    struct vlm_error e;
    lim.max_steps = 1000;
    char *o = render_lim("{% for i in range(100000) %}x{% endfor %}", NULL, &lim, &e);
    CHECK(o == NULL && e.code == VLM_E_LIMIT && strstr(e.msg, "step limit"));
    vlm_free(o);
    lim = vlm_template_default_limits();
    lim.max_depth = 10;
    o = render_lim("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, &lim, &e);
    CHECK(o == NULL && e.code == VLM_E_LIMIT && strstr(e.msg, "recursion limit"));
    vlm_free(o);
    lim = vlm_template_default_limits();
    lim.max_output = 100;
    o = render_lim("{% for i in range(50) %}abc{% endfor %}", NULL, &lim, &e);
    CHECK(o == NULL && e.code == VLM_E_LIMIT && strstr(e.msg, "output limit"));
    vlm_free(o);
    o = render_lim("{% for i in range(30) %}abc{% endfor %}", NULL, &lim, &e);
    CHECK(o != NULL && strlen(o) == 90);
    vlm_free(o);
    lim = vlm_template_default_limits();
    lim.max_memory = 1 << 20;
    o = render_lim("{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                   NULL, &lim, &e);
    CHECK(o == NULL && e.code == VLM_E_LIMIT);
    vlm_free(o);
    o = render("{{ range(1000000) | length }}", NULL, &e);
    CHECK(o == NULL && strstr(e.msg, "MAX_RANGE"));
    vlm_free(o);
    /* deep nesting in the source is a syntax error, not a stack overflow */
    char deep[4000];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1500; i++) deep[k++] = '(';
    deep[k++] = '1';
    for (int i = 0; i < 1500; i++) deep[k++] = ')';
    snprintf(deep + k, sizeof deep - k, " }}");
    struct vlm_template *t;
    CHECK(vlm_template_parse(deep, strlen(deep), &t, &e) != VLM_OK);
}

static void test_strftime_and_misc(void) {
    struct vlm_error e;
    char *o = render("{{ strftime_now('%Y') }}", NULL, &e);
    char want[16];
    time_t now = time(NULL);
    struct tm tmv;
    localtime_r(&now, &tmv);
    strftime(want, sizeof want, "%Y", &tmv);
    CHECK(o && !strcmp(o, want));
    vlm_free(o);
    CHECK_RENDER("{{ bos_token }}{{ messages | length }}", "{\"bos_token\": \"<s>\", \"messages\": [1, 2]}", "<s>2");
    CHECK_RENDER("{% generation %}gen{% endgeneration %}", NULL, "gen");
    CHECK_RENDER("{{ x | tojson }}", "{\"x\": {\"b\": 1, \"a\": [true, null, 1.5, \"\\u00e9\"]}}",
                 "{\"b\": 1, \"a\": [true, null, 1.5, \"\xc3\xa9\"]}");
    /* a template is immutable: rendering twice gives the same text */
    struct vlm_template *t;
    const char *src = "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.n }}";
    CHECK(vlm_template_parse(src, strlen(src), &t, &e) == VLM_OK);
    json_t *ctx = json_loads("{\"messages\": [1, 2, 3]}", 0, NULL);
    for (int i = 0; i < 2; i++) {
        char *out;
        size_t len;
        CHECK(vlm_template_render(t, ctx, NULL, &out, &len, &e) == VLM_OK && !strcmp(out, "3"));
        vlm_free(out);
    }
    json_decref(ctx);
    vlm_template_free(t);
}

static void test_find_and_context(void) {
    char *src;
    size_t n;
    struct vlm_error e;
    CHECK(vlm_chat_template_find(test_path("tests/fixtures"), &src, &n, &e) == VLM_E_NOT_FOUND);
    /* tokenizer_config.json with a list of named templates: "default" is the one */
    char dir[] = "/tmp/vlm_ctdir_XXXXXX";
    if (mkdtemp(dir)) {
        char path[600];
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        FILE *f = fopen(path, "w");
        if (f) {
            fputs("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
                  " {\"name\": \"default\", \"template\": \"D{{ x }}\"}], \"bos_token\": {\"content\": \"<b>\"}}", f);
            fclose(f);
        }
        CHECK(vlm_chat_template_find(dir, &src, &n, &e) == VLM_OK && n == 8 && !strcmp(src, "D{{ x }}"));
        vlm_free(src);
        CHECK(vlm_chat_template_is_processor(dir) == 0);
        json_t *bt;
        CHECK(vlm_chat_template_special_tokens(dir, &bt, &e) == VLM_OK &&
              !strcmp(json_string_value(json_object_get(bt, "bos_token")), "<b>"));
        json_decref(bt);
        f = fopen(path, "w");
        if (f) { fputs("{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}]}", f); fclose(f); }
        CHECK(vlm_chat_template_find(dir, &src, &n, &e) == VLM_E_NOT_FOUND && strstr(e.msg, "default"));
        remove(path);
        rmdir(dir);
    }
    json_t *sp;
    CHECK(vlm_chat_template_special_tokens(test_path("tests/fixtures/templates/llava_1_5"), &sp, &e) == VLM_OK);
    CHECK_EQ_STR(json_string_value(json_object_get(sp, "bos_token")), "<s>");
    CHECK_EQ_STR(json_string_value(json_object_get(sp, "image_token")), "<image>");
    CHECK_EQ_STR(json_string_value(json_object_get(sp, "pad_token")), "<pad>");
    json_t *msgs = json_loads("[{\"role\": \"user\", \"content\": [{\"type\": \"image_url\", \"image_url\": {\"url\": \"u\"}}],"
                              " \"name\": null, \"thinking\": \"t\"}]", 0, NULL), *ctx;
    CHECK(vlm_chat_template_context(sp, msgs, 1, VLM_CHAT_TEMPLATE_PROCESSOR, &ctx, &e) == VLM_OK);
    json_t *m0 = json_array_get(json_object_get(ctx, "messages"), 0);
    CHECK(json_object_get(m0, "name") == NULL);
    CHECK_EQ_STR(json_string_value(json_object_get(json_array_get(json_object_get(m0, "content"), 0), "type")), "image");
    CHECK_EQ_STR(json_string_value(json_object_get(m0, "reasoning_content")), "t");
    CHECK(json_is_null(json_object_get(ctx, "tools")) && json_is_true(json_object_get(ctx, "add_generation_prompt")));
    json_decref(ctx);
    json_t *empty = json_array();
    CHECK(vlm_chat_template_context(sp, empty, 0, 0, &ctx, &e) == VLM_E_INVALID);
    json_decref(empty);
    json_decref(msgs);
    json_decref(sp);
}

/* Allocation failure at every point of a parse and render returns an error, never a crash. */
static void test_alloc_failures(void) {
    const char *src = "{% for m in messages %}{{ m.role | upper }}:{{ m.content | trim }}{% endfor %}";
    json_t *ctx = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \" hi \"}]}", 0, NULL);
    int failures = 0, n;
    for (n = 1; n < 400; n++) {
        struct vlm_template *t = NULL;
        struct vlm_error e;
        char *out = NULL;
        size_t len;
        vlm_alloc_fail_after((uint64_t)n);
        int rc = vlm_template_parse(src, strlen(src), &t, &e);
        if (!rc) rc = vlm_template_render(t, ctx, NULL, &out, &len, &e);
        vlm_alloc_fail_after(0);
        if (rc) failures++;
        else { CHECK_EQ_STR(out, "USER:hi"); vlm_free(out); vlm_template_free(t); break; }
        vlm_template_free(t);
    }
    CHECK(failures > 0 && n < 400);
    json_decref(ctx);
}

/* `vlm chat-template --content-format string` prints exactly transformers' apply_chat_template
 * (content passed as given, no added newline) for a few cases. (Without the flag it prints the
 * server's prompt, where string content reaches a parts-looping template as one text part.) */
static void test_cli(void) {
    const char *bin = getenv("VLM_BIN");
    if (!bin || !*bin) { printf("cli: VLM_BIN not set, skipped\n"); return; }
    json_t *cases = json_load_file(test_path("tests/fixtures/templates/cases.json"), 0, NULL);
    size_t i, checked = 0;
    json_t *c;
    json_array_foreach(cases, i, c) {
        if (i % 37 != 0 || json_is_true(json_object_get(c, "error")) || json_object_size(json_object_get(c, "kwargs")))
            continue;
        char path[] = "/tmp/vlm_ct_XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) continue;
        FILE *f = fdopen(fd, "w");
        json_dumpf(json_object_get(c, "messages"), f, 0);
        fclose(f);
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "'%s' chat-template '%s/%s' --content-format string --messages '%s' %s %s", bin,
                 test_path("tests/fixtures/templates"), json_string_value(json_object_get(c, "template")), path,
                 json_is_true(json_object_get(c, "add_generation_prompt")) ? "" : "--no-generation-prompt",
                 json_is_true(json_object_get(c, "continue_final_message")) ? "--continue-final-message" : "");
        FILE *p = popen(cmd, "r");
        char buf[65536];
        size_t n = p ? fread(buf, 1, sizeof buf, p) : 0;
        int st = p ? pclose(p) : -1;
        remove(path);
        json_t *want = json_object_get(c, "expected");
        CHECK_MSG(st == 0 && n == json_string_length(want) && !memcmp(buf, json_string_value(want), n),
                  "%s: status %d, %zu bytes, want %zu", cmd, st, n, json_string_length(want));
        checked++;
    }
    CHECK(checked >= 5);
    printf("cli: %zu cases printed byte-identically by vlm chat-template\n", checked);
    json_decref(cases);
}

int main(void) {
    test_real_templates();
    test_units();
    test_whitespace();
    test_errors();
    test_limits();
    test_strftime_and_misc();
    test_find_and_context();
    test_alloc_failures();
    test_cli();
    TEST_MAIN_END();
}
