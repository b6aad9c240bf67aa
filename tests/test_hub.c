/* test_hub.c — src/hub's parsers and names without a network: response headers, etags, URL
 * joins and origins, model info JSON, repo ids/revisions/paths, file selection, the cache
 * folder name, refs and relative snapshot links, and the environment's cache root and token. */
#include "hub/hub_internal.h"
#include "test.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void line(struct hub_head *h, const char *s) { hub_head_line(h, s, strlen(s)); }

static void test_headers(void) {
    struct hub_head h;
    hub_head_reset(&h);
    line(&h, "HTTP/1.1 302 Found\r\n");
    line(&h, "x-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\n");
    line(&h, "X-Linked-Etag: \"aa00000000000000000000000000000000000000000000000000000000000000\"\r\n");
    line(&h, "X-Linked-Size:  1234567890123\r\n");
    line(&h, "ETag: W/\"deadbeef\"\r\n");
    line(&h, "Location: https://cdn.example/x?sig=1\r\n");
    CHECK_EQ_INT(h.status, 302);
    CHECK_EQ_STR(h.commit, "0123456789abcdef0123456789abcdef01234567");
    CHECK_EQ_STR(h.linked_etag, "aa00000000000000000000000000000000000000000000000000000000000000");
    CHECK(h.has_linked_size && h.linked_size == 1234567890123ull);
    CHECK_EQ_STR(h.etag, "deadbeef");
    CHECK_EQ_STR(h.location, "https://cdn.example/x?sig=1");
    /* the next response of a redirect chain starts afresh */
    line(&h, "HTTP/2 206\r\n");
    CHECK_EQ_INT(h.status, 206);
    CHECK_EQ_STR(h.commit, "");
    line(&h, "Content-Range: bytes 100-199/1000\r\n");
    CHECK(h.has_range && h.range_start == 100 && h.range_end == 199 && h.range_total == 1000);
    /* malformed values are dropped, never half-used */
    hub_head_reset(&h);
    line(&h, "X-Repo-Commit: 0123\r\n");
    line(&h, "ETag: \"../../etc/passwd\"\r\n");
    line(&h, "X-Linked-Size: 99999999999999999999999\r\n");
    line(&h, "Content-Length: -5\r\n");
    line(&h, "Content-Range: bytes 5-2/10\r\n");
    line(&h, "X-Error-Code: Gated Repo\r\n");
    CHECK_EQ_STR(h.commit, "");
    CHECK_EQ_STR(h.etag, "");
    CHECK(!h.has_linked_size && !h.has_content_length && !h.has_range);
    CHECK_EQ_STR(h.error_code, "");
    line(&h, "X-Error-Code: GatedRepo\r\n");
    CHECK_EQ_STR(h.error_code, "GatedRepo");
    char e[HUB_ETAG_MAX + 1];
    CHECK(!hub_etag_normalize(".hidden", 7, e, sizeof e));
    CHECK(!hub_etag_normalize("\"\"", 2, e, sizeof e));
    CHECK(hub_etag_normalize("\"abc-1\"", 7, e, sizeof e) && !strcmp(e, "abc-1"));
}

static void test_urls(void) {
    char out[HUB_URL_MAX];
    const char *base = "https://huggingface.co/org/name/resolve/main/config.json";
    CHECK(hub_url_join(base, "/api/resolve-cache/x", out, sizeof out));
    CHECK_EQ_STR(out, "https://huggingface.co/api/resolve-cache/x");
    CHECK(hub_url_join(base, "https://cdn-lfs.hf.co/a?b=c", out, sizeof out));
    CHECK_EQ_STR(out, "https://cdn-lfs.hf.co/a?b=c");
    CHECK(hub_url_join(base, "//cdn.example/p", out, sizeof out));
    CHECK_EQ_STR(out, "https://cdn.example/p");
    CHECK(hub_url_join(base, "other.json", out, sizeof out));
    CHECK_EQ_STR(out, "https://huggingface.co/org/name/resolve/main/other.json");
    CHECK(!hub_url_join(base, "file:///etc/passwd", out, sizeof out));
    CHECK(!hub_url_join(base, "https://x/y", out, 8));
    CHECK(hub_same_origin("https://HuggingFace.co/a", "https://huggingface.co:443/b"));
    CHECK(!hub_same_origin("http://127.0.0.1:8000/a", "http://127.0.0.1:8001/a"));
    CHECK(!hub_same_origin("https://a.co/x", "http://a.co/x"));
    CHECK(!hub_same_origin("https://a.co@b.co/x", "https://a.co/x"));
    CHECK(hub_url_escape("refs/pr/1", false, out, sizeof out) && !strcmp(out, "refs%2Fpr%2F1"));
    CHECK(hub_url_escape("a b/c.json", true, out, sizeof out) && !strcmp(out, "a%20b/c.json"));
}

static void test_info(void) {
    const char *ok = "{\"id\":\"a/b\",\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"gated\":\"manual\","
                     "\"siblings\":[{\"rfilename\":\"config.json\"},{\"rfilename\":\"sub/model.safetensors\"}]}";
    struct hub_info info;
    struct vlm_error err = {0};
    CHECK_EQ_INT(hub_info_parse(ok, strlen(ok), &info, &err), VLM_OK);
    CHECK_EQ_STR(info.sha, "0123456789abcdef0123456789abcdef01234567");
    CHECK_EQ_INT(info.n_files, 2);
    CHECK(info.gated == 1);
    CHECK_EQ_STR(info.files[1], "sub/model.safetensors");
    hub_info_free(&info);
    const char *bad[] = {
        "[]", "{\"sha\":\"xyz\",\"siblings\":[]}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\"}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"../x\"}]}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"/etc/x\"}]}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"a\"},{\"rfilename\":\"a\"}]}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[]}",
        "{\"sha\":\"0123456789abcdef0123456789abcdef01234567\",\"siblings\":[{\"rfilename\":\"a\\u0000b\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_MSG(hub_info_parse(bad[i], strlen(bad[i]), &info, &err) != VLM_OK, "accepted %s", bad[i]);
        CHECK(info.files == NULL);
    }
}

static void test_names(void) {
    CHECK(hub_valid_repo_id("HuggingFaceTB/SmolVLM-256M-Instruct"));
    CHECK(!hub_valid_repo_id("gpt2"));   /* a hub id here is org/name; bare names are folders */
    CHECK(!hub_valid_repo_id("a/b/c"));
    CHECK(!hub_valid_repo_id("a--b/c"));
    CHECK(!hub_valid_repo_id("a/../b"));
    CHECK(!hub_valid_repo_id("-a/b"));
    CHECK(!hub_valid_repo_id("a/b.git"));
    CHECK(hub_valid_revision("main") && hub_valid_revision("refs/pr/1") && hub_valid_revision("v1.0"));
    CHECK(!hub_valid_revision("../x") && !hub_valid_revision("a/../b") && !hub_valid_revision("/abs") &&
          !hub_valid_revision("a b"));
    CHECK(hub_valid_relpath("onnx/model.onnx") && !hub_valid_relpath("a//b") && !hub_valid_relpath("a\\b"));
    CHECK(hub_is_commit("0123456789abcdef0123456789abcdef01234567") && !hub_is_commit("main"));
    char *f = hub_repo_folder("org/name");
    CHECK_EQ_STR(f, "models--org--name");
    vlm_free(f);
    struct vlm_hub_opts o = vlm_hub_default_opts();
    CHECK(hub_wanted("config.json", &o) && hub_wanted("model-00001-of-00002.safetensors", &o));
    CHECK(hub_wanted("model.safetensors.index.json", &o) && hub_wanted("chat_template.jinja", &o));
    CHECK(!hub_wanted("pytorch_model.bin", &o) && !hub_wanted("README.md", &o) && !hub_wanted("x.gguf", &o));
    CHECK(!hub_wanted("onnx/model.safetensors", &o));
    const char *pats[] = {"*Q4_K_M.gguf", "extra/"};
    o.allow_patterns = pats, o.n_allow = 2, o.want_gguf = true;
    CHECK(hub_wanted("m-Q4_K_M.gguf", &o) && hub_wanted("extra/a/b.txt", &o) && hub_wanted("x.gguf", &o));
    o.skip_weights = true;
    CHECK(!hub_wanted("model.safetensors", &o) && hub_wanted("tokenizer.json", &o));
}

static void test_cache(void) {
    char tmpl[] = "/tmp/vlm-test-hub-XXXXXX";
    char *root = mkdtemp(tmpl);
    CHECK(root != NULL);
    if (!root) return;
    struct vlm_error err = {0};
    const char *commit = "0123456789abcdef0123456789abcdef01234567";
    CHECK_EQ_INT(hub_cache_write_ref(root, "refs/pr/1", commit, &err), VLM_OK);
    char got[HUB_COMMIT_LEN + 1];
    CHECK(hub_cache_read_ref(root, "refs/pr/1", got) && !strcmp(got, commit));
    CHECK(!hub_cache_read_ref(root, "main", got));
    CHECK_EQ_INT(hub_cache_link(root, commit, "sub/dir/w.safetensors", "abc", &err), VLM_OK);
    char path[512], target[512];
    snprintf(path, sizeof path, "%s/snapshots/%s/sub/dir/w.safetensors", root, commit);
    ssize_t n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = 0;
    CHECK_EQ_STR(target, "../../../../blobs/abc");
    CHECK(!hub_cache_has(root, commit, "sub/dir/w.safetensors"));   /* dangling until the blob exists */
    snprintf(path, sizeof path, "%s/blobs", root);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/blobs/abc", root);
    FILE *fp = fopen(path, "w");
    if (fp) fclose(fp);
    CHECK(hub_cache_has(root, commit, "sub/dir/w.safetensors"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    CHECK(system(cmd) == 0);
}

static void test_env(void) {
    struct vlm_error err = {0};
    char *root = NULL;
    setenv("HF_HOME", "/tmp/hfh", 1);
    unsetenv("HF_HUB_CACHE");
    unsetenv("HUGGINGFACE_HUB_CACHE");
    CHECK_EQ_INT(vlm_hub_cache_root(NULL, &root, &err), VLM_OK);
    CHECK_EQ_STR(root, "/tmp/hfh/hub");
    vlm_free(root);
    setenv("HF_HUB_CACHE", "/tmp/c1", 1);
    CHECK_EQ_INT(vlm_hub_cache_root(NULL, &root, &err), VLM_OK);
    CHECK_EQ_STR(root, "/tmp/c1");
    vlm_free(root);
    CHECK_EQ_INT(vlm_hub_cache_root("/tmp/dd", &root, &err), VLM_OK);
    CHECK_EQ_STR(root, "/tmp/dd");
    vlm_free(root);
    struct vlm_hub_opts o = vlm_hub_default_opts();
    struct hub_env e;
    setenv("HF_ENDPOINT", "http://127.0.0.1:9/", 1);
    setenv("HF_TOKEN", "hf_x", 1);
    setenv("TRANSFORMERS_OFFLINE", "yes", 1);
    CHECK_EQ_INT(hub_env_load(&o, &e, &err), VLM_OK);
    CHECK_EQ_STR(e.endpoint, "http://127.0.0.1:9");
    CHECK_EQ_STR(e.token, "hf_x");
    CHECK(e.offline);
    hub_env_free(&e);
    setenv("HF_TOKEN", "bad token", 1);
    CHECK(hub_env_load(&o, &e, &err) == VLM_E_INVALID);
    setenv("HF_ENDPOINT", "ftp://x", 1);
    o.token = "hf_ok";
    CHECK(hub_env_load(&o, &e, &err) == VLM_E_INVALID);
}

int main(void) {
    test_headers();
    test_urls();
    test_info();
    test_names();
    test_cache();
    test_env();
    TEST_MAIN_END();
}
