/* url.h — the one URL parser the server uses both to check an image URL and to fetch it, so
 * the check and the fetch can never disagree (backslashes, userinfo, odd IPv4 spellings), and
 * the address policy that decides which resolved addresses a request may reach. */
#ifndef VLM_SERVER_URL_H
#define VLM_SERVER_URL_H

#include <stddef.h>

struct sockaddr;
struct vlm_error;

#define VLM_URL_MAX 16384   /* longest http(s)/file URL accepted (data: URLs are not parsed here) */

struct vlm_url {
    char  scheme[8];   /* "http", "https" or "file" (lower case) */
    char *host;        /* lower case; IPv6 literal without brackets; "" for file:// */
    int   port;        /* explicit or the scheme's default; 0 for file:// */
    int   ip_family;   /* 4 or 6 when host is an IP literal, else 0 */
    char *path;        /* path and query as given (percent-encoded), starting with '/';
                          the fragment is dropped */
};

/* Parses an absolute http://, https:// or file:// URL. Refused (VLM_E_FORMAT, or
 * VLM_E_FORBIDDEN for the credentials case): control characters, spaces, non-ASCII bytes,
 * backslashes, userinfo (`user@host`), empty hosts, ports outside 1..65535, percent signs or
 * odd characters in the host, IPv6 zone ids, and IPv4 addresses written other than as four
 * decimal octets without leading zeros (`2130706433`, `0x7f.1`, `0177.0.0.1`, `127.1`).
 * Other schemes: VLM_E_UNSUPPORTED. On success *u owns its strings (vlm_url_free). */
int  vlm_url_parse(const char *s, size_t len, struct vlm_url *u, struct vlm_error *err);
void vlm_url_free(struct vlm_url *u);

/* The canonical form handed to the HTTP client: scheme://host:port/path, IPv6 in brackets.
 * vlm_malloc'd; NULL on allocation failure. */
char *vlm_url_format(const struct vlm_url *u);

/* Resolves a relative or absolute redirect target against base into *out. */
int vlm_url_resolve(const struct vlm_url *base, const char *ref, struct vlm_url *out,
                    struct vlm_error *err);

/* 1 when the address is a public unicast address (what a request may reach by default);
 * 0 for unspecified, loopback, private (RFC 1918, ULA), carrier-grade NAT, link-local
 * (including 169.254.169.254 metadata), multicast, reserved, documentation, benchmark ranges,
 * IPv4-mapped / IPv4-compatible / NAT64 / 6to4 / Teredo IPv6, and any other family. */
int vlm_addr_is_public(const struct sockaddr *sa);

/* 1 for addresses refused even when private addresses are opened: IPv4 link-local
 * 169.254/16 (cloud metadata at 169.254.169.254), fd00:ec2::254, the unspecified address. */
int vlm_addr_is_metadata(const struct sockaddr *sa);

#endif
