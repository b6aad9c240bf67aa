/* http_tls.c — HTTPS for the HTTP layer through OpenSSL (vLLM's --ssl-certfile / --ssl-keyfile /
 * --ssl-ca-certs / --ssl-cert-reqs): one SSL_CTX per server, a non-blocking handshake per
 * connection bounded by the head deadline, reads and writes that report "retry after poll". */
#include "server/http_internal.h"

#include "util/error.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <string.h>

int vlm_http_tls_init(struct vlm_http *s, struct vlm_error *err) {
    const struct vlm_http_config *c = &s->cfg;
    if (!c->tls_cert && !c->tls_key) return VLM_OK;
    if (!c->tls_cert || !c->tls_key)
        return vlm_error_set(err, VLM_E_INVALID, "HTTPS needs both --ssl-certfile and --ssl-keyfile");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return vlm_error_set(err, VLM_E_NOMEM, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    const char *what = NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) what = "--ssl-certfile: cannot read a PEM certificate chain from";
    else if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1) what = "--ssl-keyfile: cannot read a PEM private key from";
    else if (SSL_CTX_check_private_key(ctx) != 1) what = "--ssl-keyfile does not match the certificate in";
    else if (c->tls_ca && SSL_CTX_load_verify_locations(ctx, c->tls_ca, NULL) != 1) what = "--ssl-ca-certs: cannot read";
    if (what) {
        const char *file = !strncmp(what, "--ssl-certfile", 14) || !strncmp(what, "--ssl-keyfile does", 18) ? c->tls_cert
                         : !strncmp(what, "--ssl-keyfile", 13) ? c->tls_key : c->tls_ca;
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return vlm_error_set(err, VLM_E_FORMAT, "%s %s", what, file);
    }
    if (c->tls_verify) SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (c->tls_verify > 1 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    s->tls = ctx;
    return VLM_OK;
}

void vlm_http_tls_free(struct vlm_http *s) {
    if (s->tls) SSL_CTX_free(s->tls);
    s->tls = NULL;
}

int vlm_http_tls_accept(struct http_conn *c, int64_t deadline) {
    SSL *ssl = SSL_new(c->srv->tls);
    if (!ssl) return -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    SSL_set_fd(ssl, c->fd);
    c->ssl = ssl;
    for (;;) {
        int r = SSL_accept(ssl);
        if (r == 1) return 0;
        int e = SSL_get_error(ssl, r);
        int64_t left = deadline - vlm_http_now_ms();
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || left <= 0) {
            ERR_clear_error();
            return -1;
        }
        struct pollfd p = {.fd = c->fd, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
        poll(&p, 1, left > 1000 ? 1000 : (int)left);
    }
}

int vlm_http_tls_pending(struct http_conn *c) { return c->ssl && SSL_pending(c->ssl) > 0; }

static ssize_t io_result(struct http_conn *c, int r) {
    if (r > 0) return r;
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -3;
    return e == SSL_ERROR_ZERO_RETURN ? 0 : -1;
}

ssize_t vlm_http_tls_read(struct http_conn *c, char *buf, size_t n) {
    return io_result(c, SSL_read(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n));
}

ssize_t vlm_http_tls_write(struct http_conn *c, const char *buf, size_t n) {
    ssize_t r = io_result(c, SSL_write(c->ssl, buf, n > 1 << 30 ? 1 << 30 : (int)n));
    return r == 0 ? -1 : r;
}

void vlm_http_tls_close(struct http_conn *c) {
    if (!c->ssl) return;
    SSL_shutdown(c->ssl);
    SSL_free(c->ssl);
    ERR_clear_error();
    c->ssl = NULL;
}
