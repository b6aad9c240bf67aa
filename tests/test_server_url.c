/* test_server_url.c — the URL parser (odd spellings refused), the public-address policy,
 * data: URLs, file:// containment (.., %2e%2e, symlinks, sibling prefix, FIFO, dir) and
 * http fetches against a tiny in-process server (pinning, redirect re-check, byte cap,
 * encoded bodies, timeouts). */
#include "test.h"
#include "server/media.h"
#include "server/url.h"
#include "util/alloc.h"
#include "util/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(const char *s, struct vlm_url *u) {
    struct vlm_error e;
    return vlm_url_parse(s, strlen(s), u, &e);
}

static void test_parse(void) {
    struct vlm_url u;
    CHECK_EQ_INT(parse("http://Example.COM/a/b.png?x=1#frag", &u), VLM_OK);
    CHECK_EQ_STR(u.scheme, "http");
    CHECK_EQ_STR(u.host, "example.com");
    CHECK_EQ_INT(u.port, 80);
    CHECK_EQ_STR(u.path, "/a/b.png?x=1");
    char *f = vlm_url_format(&u);
    CHECK_EQ_STR(f, "http://example.com:80/a/b.png?x=1");
    vlm_free(f);
    vlm_url_free(&u);
    CHECK_EQ_INT(parse("HTTPS://h:8443", &u), VLM_OK);
    CHECK_EQ_INT(u.port, 8443);
    CHECK_EQ_STR(u.path, "/");
    vlm_url_free(&u);
    CHECK_EQ_INT(parse("http://[2606:4700::1111]:81/x", &u), VLM_OK);
    CHECK_EQ_INT(u.ip_family, 6);
    CHECK_EQ_STR(u.host, "2606:4700::1111");
    f = vlm_url_format(&u);
    CHECK_EQ_STR(f, "http://[2606:4700::1111]:81/x");
    vlm_free(f);
    vlm_url_free(&u);
    CHECK_EQ_INT(parse("http://8.8.8.8/", &u), VLM_OK);
    CHECK_EQ_INT(u.ip_family, 4);
    vlm_url_free(&u);
    CHECK_EQ_INT(parse("file:///tmp/a%20b.png", &u), VLM_OK);
    CHECK_EQ_STR(u.path, "/tmp/a%20b.png");
    vlm_url_free(&u);
    CHECK_EQ_INT(parse("file://localhost/tmp/x", &u), VLM_OK);
    vlm_url_free(&u);
    /* refused spellings */
    static const char *bad[] = {
        "http://example.com\\@127.0.0.1/", "http://a@127.0.0.1/", "http://user:pw@h/",
        "http://2130706433/", "http://0x7f000001/", "http://0x7f.0.0.1/", "http://0177.0.0.1/",
        "http://127.1/", "http://127.0.0.1./", "http://1.2.3.256/", "http://[::1%25eth0]/",
        "http://h:0/", "http://h:65536/", "http://h:/", "http://h:8a/", "http:///x", "http://",
        "http:/h/x", "http://h x/", "http://h/\x01", "http://ex%61mple.com/", "http://a..b/",
        "http://[fe80::1/", "http://h\xc3\xa9.com/", "file://otherhost/etc/passwd", "noscheme",
        "http://-/", "http://a-.com/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct vlm_error e;
        int rc = vlm_url_parse(bad[i], strlen(bad[i]), &u, &e);
        CHECK_MSG(rc != VLM_OK, "accepted %s", bad[i]);
        if (rc == VLM_OK) vlm_url_free(&u);
    }
    CHECK_EQ_INT(parse("ftp://h/x", &u), VLM_E_UNSUPPORTED);
    CHECK_EQ_INT(parse("gopher://h/x", &u), VLM_E_UNSUPPORTED);
    CHECK_EQ_INT(parse("http://a@b/", &u), VLM_E_FORBIDDEN);
    /* resolving redirect targets */
    struct vlm_url base, r;
    CHECK_EQ_INT(parse("http://h:81/d/e.png?q", &base), VLM_OK);
    CHECK_EQ_INT(vlm_url_resolve(&base, "f.png", &r, NULL), VLM_OK);
    CHECK_EQ_STR(r.path, "/d/f.png");
    CHECK_EQ_INT(r.port, 81);
    vlm_url_free(&r);
    CHECK_EQ_INT(vlm_url_resolve(&base, "/g", &r, NULL), VLM_OK);
    CHECK_EQ_STR(r.path, "/g");
    vlm_url_free(&r);
    CHECK_EQ_INT(vlm_url_resolve(&base, "http://10.0.0.1/x", &r, NULL), VLM_OK);
    CHECK_EQ_STR(r.host, "10.0.0.1");
    vlm_url_free(&r);
    CHECK_EQ_INT(vlm_url_resolve(&base, "//other/x", &r, NULL), VLM_OK);
    CHECK_EQ_STR(r.host, "other");
    CHECK_EQ_INT(r.port, 80);
    vlm_url_free(&r);
    vlm_url_free(&base);
}

static int pub4(const char *s) {
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    inet_pton(AF_INET, s, &a.sin_addr);
    return vlm_addr_is_public((struct sockaddr *)&a);
}
static int pub6(const char *s) {
    struct sockaddr_in6 a = {0};
    a.sin6_family = AF_INET6;
    CHECK(inet_pton(AF_INET6, s, &a.sin6_addr) == 1);
    return vlm_addr_is_public((struct sockaddr *)&a);
}

static void test_policy(void) {
    CHECK(pub4("8.8.8.8"));
    CHECK(pub4("1.1.1.1"));
    CHECK(pub4("172.32.0.1"));
    static const char *deny4[] = {"127.0.0.1", "127.255.255.254", "10.1.2.3", "172.16.0.1",
        "172.31.255.255", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1",
        "255.255.255.255", "192.0.2.5", "198.18.0.1", "240.0.0.1"};
    for (size_t i = 0; i < sizeof deny4 / sizeof deny4[0]; i++) CHECK_MSG(!pub4(deny4[i]), "%s", deny4[i]);
    CHECK(pub6("2606:4700:4700::1111"));
    static const char *deny6[] = {"::1", "::", "::ffff:127.0.0.1", "::ffff:8.8.8.8", "::127.0.0.1",
        "fe80::1", "fc00::1", "fd12::1", "ff02::1", "64:ff9b::7f00:1", "2002:7f00:1::1",
        "2001:db8::1", "2001:0:4136:e378::1", "fec0::1"};
    for (size_t i = 0; i < sizeof deny6 / sizeof deny6[0]; i++) CHECK_MSG(!pub6(deny6[i]), "%s", deny6[i]);
    CHECK(!vlm_addr_is_public(NULL));
    struct sockaddr_in m = {0};
    m.sin_family = AF_INET;
    inet_pton(AF_INET, "169.254.169.254", &m.sin_addr);
    CHECK(vlm_addr_is_metadata((struct sockaddr *)&m));
    inet_pton(AF_INET, "127.0.0.1", &m.sin_addr);
    CHECK(!vlm_addr_is_metadata((struct sockaddr *)&m));
}

static int load_data(const char *s, size_t cap, size_t *n) {
    uint8_t *d = NULL;
    struct vlm_error e;
    int rc = vlm_media_load_data_url(s, strlen(s), cap, &d, n, &e);
    vlm_free(d);
    return rc;
}

static void test_data_url(void) {
    size_t n = 0;
    CHECK_EQ_INT(load_data("data:image/png;base64,iVBORw0K", 100, &n), VLM_OK);
    CHECK_EQ_INT(n, 6);
    CHECK_EQ_INT(load_data("DATA:image/jpeg;BASE64,Zm9v", 100, &n), VLM_OK);
    CHECK_EQ_INT(load_data("data:image/png;base64", 100, &n), VLM_E_FORMAT);      /* no comma */
    CHECK_EQ_INT(load_data("data:image/png;base64,", 100, &n), VLM_E_FORMAT);     /* empty */
    CHECK_EQ_INT(load_data("data:text/plain;base64,Zm9v", 100, &n), VLM_E_FORMAT);/* media type */
    CHECK_EQ_INT(load_data("data:;base64,Zm9v", 100, &n), VLM_E_FORMAT);
    CHECK_EQ_INT(load_data("data:image/png,Zm9v", 100, &n), VLM_E_FORMAT);        /* not base64 */
    CHECK_EQ_INT(load_data("data:image/png;base64,Zm9v!", 100, &n), VLM_E_FORMAT);
    CHECK_EQ_INT(load_data("data:image/png;base64,Zm9vZm9vZm9v", 6, &n), VLM_E_TOO_LARGE);
    CHECK_EQ_INT(load_data("data:image/p\"ng;base64,Zm9v", 100, &n), VLM_E_FORMAT);
    struct vlm_media_policy p;
    vlm_media_policy_default(&p);
    uint8_t *d;
    CHECK_EQ_INT(vlm_media_load(&p, "ftp://x/y", 9, &d, &n, NULL), VLM_E_FORMAT);
    CHECK_EQ_INT(vlm_media_load(&p, "file:///etc/passwd", 18, &d, &n, NULL), VLM_E_FORBIDDEN);
}

static char tmpdir[256];

static void write_file(const char *rel, const char *content) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, rel);
    FILE *f = fopen(p, "wb");
    if (f) { fputs(content, f); fclose(f); }
}

static int load_file_url(const struct vlm_media_policy *p, const char *fmt, const char *arg) {
    char url[1024];
    snprintf(url, sizeof url, fmt, tmpdir, arg);
    uint8_t *d = NULL;
    size_t n = 0;
    struct vlm_error e;
    int rc = vlm_media_load(p, url, strlen(url), &d, &n, &e);
    if (rc != VLM_OK) CHECK(strstr(e.msg, tmpdir) == NULL);   /* no path echoed */
    vlm_free(d);
    return rc;
}

static void test_file(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlm_test_url_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    char p[512], root[600];
    snprintf(p, sizeof p, "%s/allowed", tmpdir); mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/allowed2", tmpdir); mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/allowed/sub", tmpdir); mkdir(p, 0700);
    write_file("allowed/a.png", "PNGDATA");
    write_file("allowed/sub/b.png", "B");
    write_file("allowed2/c.png", "C");
    write_file("secret.png", "S");
    write_file("allowed/empty.png", "");
    char target[512];
    snprintf(target, sizeof target, "%s/secret.png", tmpdir);
    snprintf(p, sizeof p, "%s/allowed/link.png", tmpdir);
    CHECK(symlink(target, p) == 0);
    snprintf(p, sizeof p, "%s/allowed/fifo", tmpdir);
    CHECK(mkfifo(p, 0600) == 0);
    struct vlm_media_policy pol;
    vlm_media_policy_default(&pol);
    CHECK(realpath(tmpdir, root) != NULL);
    strncat(root, "/allowed", sizeof root - strlen(root) - 1);
    pol.local_root = root;
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "a.png"), VLM_OK);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "sub/b.png"), VLM_OK);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "sub/../a.png"), VLM_OK);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "../secret.png"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "%2e%2e/secret.png"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "%2E%2E%2Fsecret.png"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed%s", "2/c.png"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "link.png"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "fifo"), VLM_E_FORBIDDEN); /* no hang */
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "sub"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed%s", ""), VLM_E_FORBIDDEN);      /* the dir */
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "missing.png"), VLM_E_NOT_FOUND);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "empty.png"), VLM_E_FORMAT);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "a%00.png"), VLM_E_FORMAT);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "a%2"), VLM_E_FORMAT);
    /* outside the folder: refused before the file system is asked (same answer, exists or not) */
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/%s", "dev/zero"), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/%s", "secret.png"), VLM_E_FORBIDDEN);
    {
        uint8_t *d = NULL; size_t n;
        CHECK_EQ_INT(vlm_media_load(&pol, "file:///dev/zero", 16, &d, &n, NULL), VLM_E_FORBIDDEN);
        pol.max_bytes = 3;
        CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "a.png"), VLM_E_TOO_LARGE);
        pol.max_bytes = 1 << 20;
    }
    pol.local_root = NULL;
    CHECK_EQ_INT(load_file_url(&pol, "file://%s/allowed/%s", "a.png"), VLM_E_FORBIDDEN);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
}

/* ---- a tiny HTTP server on 127.0.0.1 answering by path ---- */
static int srv_fd, srv_port;
static volatile int srv_stop;

static void *serve(void *arg) {
    (void)arg;
    while (!srv_stop) {
        int c = accept(srv_fd, NULL, NULL);
        if (c < 0) continue;
        char req[2048];
        ssize_t r = recv(c, req, sizeof req - 1, 0);
        req[r > 0 ? r : 0] = 0;
        char resp[4096];
        const char *body = "IMGBYTES";
        int len = 0;
        if (strstr(req, "GET /img "))
            len = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n%s", body);
        else if (strstr(req, "GET /redir-local "))
            len = snprintf(resp, sizeof resp, "HTTP/1.1 302 Found\r\nLocation: /img\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        else if (strstr(req, "GET /redir-meta "))
            len = snprintf(resp, sizeof resp, "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/latest\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        else if (strstr(req, "GET /loop "))
            len = snprintf(resp, sizeof resp, "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        else if (strstr(req, "GET /gzip "))
            len = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 8\r\nConnection: close\r\n\r\n%s", body);
        else if (strstr(req, "GET /big ")) {   /* lies about its length: no Content-Length */
            len = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            send(c, resp, (size_t)len, MSG_NOSIGNAL);
            memset(resp, 'x', sizeof resp);
            for (int i = 0; i < 64 && send(c, resp, sizeof resp, MSG_NOSIGNAL) > 0; i++) {}
            len = 0;
        } else if (strstr(req, "GET /slow ")) {
            len = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nx");
            send(c, resp, (size_t)len, MSG_NOSIGNAL);
            usleep(1500 * 1000);
            len = 0;
        } else
            len = snprintf(resp, sizeof resp, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        if (len) send(c, resp, (size_t)len, MSG_NOSIGNAL);
        close(c);
    }
    return NULL;
}

static int fetch(const struct vlm_media_policy *p, const char *path, size_t *n) {
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", srv_port, path);
    uint8_t *d = NULL;
    struct vlm_error e;
    int rc = vlm_media_load(p, url, strlen(url), &d, n, &e);
    if (rc == VLM_OK) CHECK(*n == 8 && memcmp(d, "IMGBYTES", 8) == 0);
    else CHECK(strstr(e.msg, "127.0.0.1") == NULL && strstr(e.msg, "169.254") == NULL);
    vlm_free(d);
    return rc;
}

static void test_http(void) {
    CHECK_EQ_INT(vlm_media_global_init(NULL), VLM_OK);
    srv_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(srv_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    CHECK(bind(srv_fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    getsockname(srv_fd, (struct sockaddr *)&a, &al);
    srv_port = ntohs(a.sin_port);
    CHECK(listen(srv_fd, 16) == 0);
    pthread_t th;
    pthread_create(&th, NULL, serve, NULL);

    struct vlm_media_policy p;
    vlm_media_policy_default(&p);
    size_t n;
    CHECK_EQ_INT(fetch(&p, "/img", &n), VLM_E_FORBIDDEN);       /* loopback refused by default */
    {
        uint8_t *d; char url[128];
        snprintf(url, sizeof url, "http://localhost:%d/img", srv_port);   /* a name for loopback */
        CHECK_EQ_INT(vlm_media_load(&p, url, strlen(url), &d, &n, NULL), VLM_E_FORBIDDEN);
        snprintf(url, sizeof url, "http://[::ffff:127.0.0.1]:%d/img", srv_port);
        CHECK_EQ_INT(vlm_media_load(&p, url, strlen(url), &d, &n, NULL), VLM_E_FORBIDDEN);
    }
    p.allow_private = 1;
    CHECK_EQ_INT(fetch(&p, "/img", &n), VLM_OK);
    CHECK_EQ_INT(fetch(&p, "/redir-local", &n), VLM_OK);
    CHECK_EQ_INT(fetch(&p, "/loop", &n), VLM_E_FETCH);           /* hops capped */
    CHECK_EQ_INT(fetch(&p, "/missing", &n), VLM_E_FETCH);
    CHECK_EQ_INT(fetch(&p, "/gzip", &n), VLM_E_FETCH);
    p.max_bytes = 100000;
    CHECK_EQ_INT(fetch(&p, "/big", &n), VLM_E_TOO_LARGE);
    p.timeout_ms = 500;
    CHECK_EQ_INT(fetch(&p, "/slow", &n), VLM_E_FETCH);
    p.timeout_ms = 5000;
    p.max_redirects = 0;
    CHECK_EQ_INT(fetch(&p, "/redir-local", &n), VLM_E_FETCH);
    p.max_redirects = 5;
    const char *doms[] = {"example.com"};
    p.domains = doms;
    p.n_domains = 1;
    CHECK_EQ_INT(fetch(&p, "/img", &n), VLM_E_FORBIDDEN);
    p.n_domains = 0;
    /* every redirect hop is checked again: the metadata address stays refused even with
       private addresses opened */
    CHECK_EQ_INT(fetch(&p, "/redir-meta", &n), VLM_E_FORBIDDEN);
    CHECK_EQ_INT(fetch(&p, "/redir-local", &n), VLM_OK);
    srv_stop = 1;
    shutdown(srv_fd, SHUT_RDWR);
    close(srv_fd);
    pthread_join(th, NULL);
}

int main(void) {
    test_parse();
    test_policy();
    test_data_url();
    test_file();
    test_http();
    TEST_MAIN_END();
}
