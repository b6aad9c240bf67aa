/* jinja_value.c — template values: the arena they live in, constructors, Python-style
 * truthiness, equality, ordering, str()/repr(), json.dumps as transformers' tojson, and the
 * UTF-8 / Unicode helpers (whitespace, simple case mapping) the string code needs. */
#include "text/jinja.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */
struct jchunk { struct jchunk *next; size_t size, used; max_align_t data[]; };
#define JA_CHUNK (64 * 1024)

void *ja_alloc(struct jarena *a, size_t n) {
    if (a->failed) return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    struct jchunk *c = a->head;
    if (!c || c->size - c->used < n) {
        size_t sz = n > JA_CHUNK / 4 ? n : JA_CHUNK, tot;
        if (!vlm_add_ok(sz, sizeof *c, &tot) || (a->cap && a->used + tot > a->cap)) { a->failed = 1; return NULL; }
        c = vlm_malloc(tot);
        if (!c) { a->failed = 1; return NULL; }
        c->size = sz;
        c->used = 0;
        a->used += tot;
        if (sz == n && a->head) { c->next = a->head->next; a->head->next = c; }   /* big one-off */
        else { c->next = a->head; a->head = c; }
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strndup(struct jarena *a, const char *s, size_t n) {
    if (n + 1 == 0) { a->failed = 1; return NULL; }
    char *d = ja_alloc(a, n + 1);
    if (d) { if (n) memcpy(d, s, n); d[n] = 0; }
    return d;
}

void ja_free(struct jarena *a) {
    struct jchunk *c = a->head;
    while (c) { struct jchunk *nx = c->next; vlm_free(c); c = nx; }
    a->head = NULL;
    a->used = 0;
}

/* ---- UTF-8 and Unicode ---- */
int u8_decode(const char *s, size_t n, size_t *adv) {
    const unsigned char *p = (const unsigned char *)s;
    if (n == 0) { *adv = 0; return 0; }
    unsigned c = p[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 1) { *adv = 1; return (int)c; }
    if (len == 0 || (size_t)len > n) { *adv = 1; return 0xFFFD; }
    uint32_t cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) { *adv = 1; return 0xFFFD; }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    *adv = (size_t)len;
    return (int)cp;
}

size_t u8_encode(uint32_t cp, char *o) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t u8_count(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

int py_isspace(uint32_t c) {
    return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

/* Simple one-to-one case mapping for ASCII, Latin-1, Latin Extended-A, Greek and Cyrillic. */
uint32_t py_upper(uint32_t c) {
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c == 0xFF) return 0x178;
    if (c == 0xB5) return 0x39C;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
        int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (odd_upper ? (c % 2 == 0) : (c % 2 == 1)) return c - 1;
        return c;
    }
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

uint32_t py_lower(uint32_t c) {
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c == 0x178) return 0xFF;
    if (c >= 0x100 && c <= 0x17F && c != 0x130 && c != 0x131 && c != 0x138 && c != 0x149 && c != 0x17F) {
        int odd_upper = (c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E);
        if (odd_upper ? (c % 2 == 1) : (c % 2 == 0)) return c + 1;
        return c;
    }
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

int py_isalnum(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || ((c | 32) >= 'a' && (c | 32) <= 'z');
    return py_upper(c) != c || py_lower(c) != c || (c >= 0x4E00 && c <= 0x9FFF) || c == 0xDF;
}

/* ---- constructors ---- */
jv jv_none(void) { jv v = {.type = JV_NONE}; return v; }
jv jv_bool(int b) { jv v = {.type = JV_BOOL}; v.u.b = !!b; return v; }
jv jv_int(int64_t i) { jv v = {.type = JV_INT}; v.u.i = i; return v; }
jv jv_float(double f) { jv v = {.type = JV_FLOAT}; v.u.f = f; return v; }

static void oom(struct jstate *st) {
    if (!JSTOP(st)) {
        int lim = st->arena->cap && st->arena->used + JA_CHUNK > st->arena->cap;
        jfail(st, lim ? VLM_E_LIMIT : VLM_E_NOMEM, NULL, lim ? "template memory limit reached"
                                                           : "template: out of memory");
    }
}

jv jv_strn(struct jstate *st, const char *s, size_t n) {
    jv v = {.type = JV_STR};
    size_t tot;
    if (!vlm_add_ok(sizeof(struct jstr) + 1, n, &tot)) { oom(st); return jv_none(); }
    struct jstr *js = ja_alloc(st->arena, tot);
    if (!js) { oom(st); v.type = JV_UNDEF; v.u.s = NULL; return v; }
    js->len = n;
    if (n) memcpy(js->data, s, n);
    js->data[n] = 0;
    v.u.s = js;
    return v;
}

jv jv_str(struct jstate *st, const char *s) { return jv_strn(st, s, strlen(s)); }

jv jv_undef(const char *name, struct jstate *st) {
    jv v = {.type = JV_UNDEF};
    if (name && st) {
        jv s = jv_str(st, name);
        v.u.s = s.type == JV_STR ? s.u.s : NULL;
    }
    return v;
}

jv jv_list(struct jstate *st, size_t cap) {
    jv v = {.type = JV_LIST};
    struct jlist *l = ja_alloc(st->arena, sizeof *l);
    size_t bytes;
    if (cap < 4) cap = 4;
    if (l && vlm_mul_ok(cap, sizeof(jv), &bytes)) l->items = ja_alloc(st->arena, bytes);
    if (!l || !l->items) { oom(st); v.type = JV_UNDEF; v.u.s = NULL; return v; }
    l->cap = cap;
    v.u.l = l;
    return v;
}

int jv_list_push(struct jstate *st, jv list, jv item) {
    if (list.type != JV_LIST) return JSTOP(st) ? st->rc : jfail(st, VLM_E_INTERNAL, NULL, "push to non-list");
    struct jlist *l = list.u.l;
    if (l->len == l->cap) {
        size_t nc, bytes;
        if (!vlm_mul_ok(l->cap, 2, &nc) || !vlm_mul_ok(nc, sizeof(jv), &bytes)) { oom(st); return st->rc; }
        jv *ni = ja_alloc(st->arena, bytes);
        if (!ni) { oom(st); return st->rc; }
        memcpy(ni, l->items, l->len * sizeof(jv));
        l->items = ni;
        l->cap = nc;
    }
    l->items[l->len++] = item;
    return VLM_OK;
}

jv jv_dict(struct jstate *st, size_t cap) {
    jv v = {.type = JV_DICT};
    struct jdict *d = ja_alloc(st->arena, sizeof *d);
    size_t bytes;
    if (cap < 4) cap = 4;
    if (d && vlm_mul_ok(cap, sizeof(jv), &bytes)) {
        d->keys = ja_alloc(st->arena, bytes);
        d->vals = ja_alloc(st->arena, bytes);
    }
    if (!d || !d->keys || !d->vals) { oom(st); v.type = JV_UNDEF; v.u.s = NULL; return v; }
    d->cap = cap;
    v.u.d = d;
    return v;
}

jv *jv_dict_find(jv d, const char *key, size_t klen) {
    if (d.type != JV_DICT && d.type != JV_NS) return NULL;
    struct jdict *x = d.u.d;
    for (size_t i = 0; i < x->len; i++)
        if (x->keys[i].type == JV_STR && x->keys[i].u.s->len == klen && !memcmp(x->keys[i].u.s->data, key, klen))
            return &x->vals[i];
    return NULL;
}

jv *jv_dict_findv(jv d, jv key) {
    if (d.type != JV_DICT && d.type != JV_NS) return NULL;
    if (key.type == JV_STR) return jv_dict_find(d, key.u.s->data, key.u.s->len);
    struct jdict *x = d.u.d;
    for (size_t i = 0; i < x->len; i++)
        if (jv_equal(x->keys[i], key)) return &x->vals[i];
    return NULL;
}

int jv_dict_set(struct jstate *st, jv d, jv key, jv val) {
    jv *slot = jv_dict_findv(d, key);
    if (slot) { *slot = val; return VLM_OK; }
    struct jdict *x = d.u.d;
    if (x->len == x->cap) {
        size_t nc, bytes;
        if (!vlm_mul_ok(x->cap, 2, &nc) || !vlm_mul_ok(nc, sizeof(jv), &bytes)) { oom(st); return st->rc; }
        jv *nk = ja_alloc(st->arena, bytes), *nv = ja_alloc(st->arena, bytes);
        if (!nk || !nv) { oom(st); return st->rc; }
        memcpy(nk, x->keys, x->len * sizeof(jv));
        memcpy(nv, x->vals, x->len * sizeof(jv));
        x->keys = nk;
        x->vals = nv;
        x->cap = nc;
    }
    x->keys[x->len] = key;
    x->vals[x->len++] = val;
    return VLM_OK;
}

void jv_dict_del(jv d, const char *key) {
    jv *v = jv_dict_find(d, key, strlen(key));
    if (!v) return;
    struct jdict *x = d.u.d;
    size_t i = (size_t)(v - x->vals);
    memmove(x->keys + i, x->keys + i + 1, (x->len - i - 1) * sizeof(jv));
    memmove(x->vals + i, x->vals + i + 1, (x->len - i - 1) * sizeof(jv));
    x->len--;
}

int jv_dict_sets(struct jstate *st, jv d, const char *key, jv val) {
    jv k = jv_str(st, key);
    if (JSTOP(st)) return st->rc;
    return jv_dict_set(st, d, k, val);
}

/* ---- predicates ---- */
int jv_truthy(jv v) {
    switch (v.type) {
    case JV_UNDEF: case JV_NONE: return 0;
    case JV_BOOL: return v.u.b;
    case JV_INT: return v.u.i != 0;
    case JV_FLOAT: return v.u.f != 0.0;
    case JV_STR: return v.u.s->len != 0;
    case JV_LIST: return v.u.l->len != 0;
    case JV_DICT: return v.u.d->len != 0;
    default: return 1;
    }
}

int jv_is_num(jv v) { return v.type == JV_INT || v.type == JV_FLOAT || v.type == JV_BOOL; }

double jv_num(jv v) {
    return v.type == JV_FLOAT ? v.u.f : v.type == JV_INT ? (double)v.u.i : v.type == JV_BOOL ? v.u.b : 0;
}

int jv_f2i(double f, int64_t *out) {
    if (!(f > -9223372036854775808.0 - 1.0 && f < 9223372036854775808.0)) return 0;   /* NaN fails too */
    *out = (int64_t)f;
    return 1;
}

size_t jv_len(jv v) {
    switch (v.type) {
    case JV_STR: return u8_count(v.u.s->data, v.u.s->len);
    case JV_LIST: return v.u.l->len;
    case JV_DICT: case JV_NS: return v.u.d->len;
    default: return 0;
    }
}

int jv_equal(jv a, jv b) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.type != JV_FLOAT && b.type != JV_FLOAT)
            return (a.type == JV_INT ? a.u.i : a.u.b) == (b.type == JV_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.type != b.type) return 0;
    switch (a.type) {
    case JV_UNDEF: case JV_NONE: return 1;
    case JV_STR: return a.u.s->len == b.u.s->len && !memcmp(a.u.s->data, b.u.s->data, a.u.s->len);
    case JV_LIST:
        if (a.u.l->is_tuple != b.u.l->is_tuple || a.u.l->len != b.u.l->len) return 0;
        for (size_t i = 0; i < a.u.l->len; i++)
            if (!jv_equal(a.u.l->items[i], b.u.l->items[i])) return 0;
        return 1;
    case JV_DICT:
        if (a.u.d->len != b.u.d->len) return 0;
        for (size_t i = 0; i < a.u.d->len; i++) {
            jv *o = jv_dict_findv(b, a.u.d->keys[i]);
            if (!o || !jv_equal(a.u.d->vals[i], *o)) return 0;
        }
        return 1;
    default: return a.u.d == b.u.d;
    }
}

const char *jv_typename(jv v) {
    static const char *const names[] = {"Undefined", "NoneType", "bool", "int", "float", "str", "list",
                                        "dict", "Namespace", "Macro", "builtin_function_or_method", "LoopContext"};
    if (v.type == JV_LIST && v.u.l->is_tuple) return "tuple";
    return names[v.type];
}

int jv_compare(struct jstate *st, jv a, jv b, int *res, const struct jnode *at) {
    if (jv_is_num(a) && jv_is_num(b)) {
        if (a.type != JV_FLOAT && b.type != JV_FLOAT) {
            int64_t x = a.type == JV_INT ? a.u.i : a.u.b, y = b.type == JV_INT ? b.u.i : b.u.b;
            *res = (x > y) - (x < y);
        } else {
            double x = jv_num(a), y = jv_num(b);
            *res = (x > y) - (x < y);
        }
        return VLM_OK;
    }
    if (a.type == JV_STR && b.type == JV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        int c = memcmp(a.u.s->data, b.u.s->data, n);
        *res = c ? (c > 0) - (c < 0) : (a.u.s->len > b.u.s->len) - (a.u.s->len < b.u.s->len);
        return VLM_OK;
    }
    if (a.type == JV_LIST && b.type == JV_LIST && a.u.l->is_tuple == b.u.l->is_tuple) {
        size_t n = a.u.l->len < b.u.l->len ? a.u.l->len : b.u.l->len;
        for (size_t i = 0; i < n; i++) {
            if (jv_equal(a.u.l->items[i], b.u.l->items[i])) continue;
            return jv_compare(st, a.u.l->items[i], b.u.l->items[i], res, at);
        }
        *res = (a.u.l->len > b.u.l->len) - (a.u.l->len < b.u.l->len);
        return VLM_OK;
    }
    return jfail(st, VLM_E_INVALID, at, "'<' not supported between instances of '%s' and '%s'",
                 jv_typename(a), jv_typename(b));
}

/* ---- str() and repr() ---- */
void jv_fmt_float(double f, char *buf, size_t n) {
    if (isnan(f)) { snprintf(buf, n, "nan"); return; }
    if (isinf(f)) { snprintf(buf, n, f < 0 ? "-inf" : "inf"); return; }
    char e[40];
    int p;
    for (p = 0; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, f);
        if (strtod(e, NULL) == f) break;
    }
    /* e = [-]d[.ddd]e[+-]XX: collect digits and the decimal exponent */
    char dig[24];
    int nd = 0, neg = e[0] == '-';
    const char *q = e + neg;
    for (; *q && *q != 'e'; q++)
        if (*q != '.' && nd < 20) dig[nd++] = *q;
    int ex = (int)strtol(q + 1, NULL, 10);
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    dig[nd] = 0;
    char tmp[420];
    size_t k = 0;
    if (neg) tmp[k++] = '-';
    if (ex >= -4 && ex < 16) {
        if (ex < 0) {
            tmp[k++] = '0'; tmp[k++] = '.';
            for (int i = -1; i > ex; i--) tmp[k++] = '0';
            for (int i = 0; i < nd; i++) tmp[k++] = dig[i];
        } else {
            for (int i = 0; i <= ex; i++) tmp[k++] = i < nd ? dig[i] : '0';
            tmp[k++] = '.';
            if (nd > ex + 1) for (int i = ex + 1; i < nd; i++) tmp[k++] = dig[i];
            else tmp[k++] = '0';
        }
        tmp[k] = 0;
        snprintf(buf, n, "%s", tmp);
        return;
    }
    tmp[k++] = dig[0];
    if (nd > 1) { tmp[k++] = '.'; for (int i = 1; i < nd; i++) tmp[k++] = dig[i]; }
    snprintf(tmp + k, sizeof tmp - k, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    snprintf(buf, n, "%s", tmp);
}

static int printable(uint32_t c) {
    if (c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0xA0) || c == 0xAD) return 0;
    if (c == 0x1680 || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x2064) || c == 0x3000 || c == 0xFEFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return 1;
}

static int write_str_repr(struct vlm_buf *b, const char *s, size_t n) {
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    int rc = vlm_buf_putc(b, q);
    for (size_t i = 0; i < n && !rc;) {
        size_t w;
        uint32_t c = (uint32_t)u8_decode(s + i, n - i, &w);
        if (c == '\\' || c == (uint32_t)q) { rc = vlm_buf_putc(b, '\\'); if (!rc) rc = vlm_buf_putc(b, (char)c); }
        else if (c == '\n') rc = vlm_buf_append(b, "\\n", 2);
        else if (c == '\r') rc = vlm_buf_append(b, "\\r", 2);
        else if (c == '\t') rc = vlm_buf_append(b, "\\t", 2);
        else if (!printable(c)) {
            if (c < 0x100) rc = vlm_buf_appendf(b, "\\x%02x", c);
            else if (c < 0x10000) rc = vlm_buf_appendf(b, "\\u%04x", c);
            else rc = vlm_buf_appendf(b, "\\U%08x", c);
        } else rc = vlm_buf_append(b, s + i, w);
        i += w;
    }
    return rc ? rc : vlm_buf_putc(b, q);
}

static int write_value(struct jstate *st, struct vlm_buf *b, jv v, int repr, int depth) {
    char num[64];
    int rc = VLM_OK;
    if (depth > 256) return jfail(st, VLM_E_LIMIT, NULL, "value nested too deeply to print");
    switch (v.type) {
    case JV_UNDEF: return repr ? vlm_buf_append(b, "Undefined", 9) : VLM_OK;
    case JV_NONE: return vlm_buf_append(b, "None", 4);
    case JV_BOOL: return v.u.b ? vlm_buf_append(b, "True", 4) : vlm_buf_append(b, "False", 5);
    case JV_INT: return vlm_buf_appendf(b, "%lld", (long long)v.u.i);
    case JV_FLOAT: jv_fmt_float(v.u.f, num, sizeof num); return vlm_buf_append(b, num, strlen(num));
    case JV_STR:
        return repr ? write_str_repr(b, v.u.s->data, v.u.s->len) : vlm_buf_append(b, v.u.s->data, v.u.s->len);
    case JV_LIST: {
        static const char *const views[] = {"", "dict_keys(", "dict_values(", "dict_items("};
        int t = v.u.l->is_tuple, view = v.u.l->view > 0 && v.u.l->view < 4 ? v.u.l->view : 0;
        if (view) rc = vlm_buf_append(b, views[view], strlen(views[view]));
        if (!rc) rc = vlm_buf_putc(b, t ? '(' : '[');
        for (size_t i = 0; i < v.u.l->len && !rc; i++) {
            if (i) rc = vlm_buf_append(b, ", ", 2);
            if (!rc) rc = write_value(st, b, v.u.l->items[i], 1, depth + 1);
        }
        if (!rc && t && v.u.l->len == 1) rc = vlm_buf_putc(b, ',');
        if (!rc) rc = vlm_buf_putc(b, t ? ')' : ']');
        return rc || !view ? rc : vlm_buf_putc(b, ')');
    }
    case JV_NS: rc = vlm_buf_append(b, "<Namespace ", 11); /* fall through */
    case JV_DICT:
        if (!rc) rc = vlm_buf_putc(b, '{');
        for (size_t i = 0; i < v.u.d->len && !rc; i++) {
            if (i) rc = vlm_buf_append(b, ", ", 2);
            if (!rc) rc = write_value(st, b, v.u.d->keys[i], 1, depth + 1);
            if (!rc) rc = vlm_buf_append(b, ": ", 2);
            if (!rc) rc = write_value(st, b, v.u.d->vals[i], 1, depth + 1);
        }
        if (!rc) rc = vlm_buf_putc(b, '}');
        return rc || v.type != JV_NS ? rc : vlm_buf_putc(b, '>');
    case JV_MACRO: return vlm_buf_append(b, "<Macro>", 7);
    case JV_FUNC: return vlm_buf_appendf(b, "<built-in method %s>", v.u.fn->name);
    case JV_LOOP: return vlm_buf_appendf(b, "<LoopContext %lld/%lld>", (long long)v.u.loop->index0 + 1,
                                         (long long)v.u.loop->length);
    }
    return VLM_OK;
}

static int buf_rc(struct jstate *st, int rc) {
    if (rc == VLM_OK || JSTOP(st)) return JSTOP(st) ? st->rc : rc;
    return jfail(st, rc == VLM_E_TOO_LARGE ? VLM_E_LIMIT : rc, NULL,
                 rc == VLM_E_TOO_LARGE ? "template output limit reached" : "template: out of memory");
}

int jv_write_str(struct jstate *st, struct vlm_buf *b, jv v) { return buf_rc(st, write_value(st, b, v, 0, 0)); }
int jv_write_repr(struct jstate *st, struct vlm_buf *b, jv v) { return buf_rc(st, write_value(st, b, v, 1, 0)); }

jv jv_to_str(struct jstate *st, jv v) {
    if (v.type == JV_STR) return v;
    struct vlm_buf b = {.max = st->lim.max_output};
    jv r = jv_none();
    if (jv_write_str(st, &b, v) == VLM_OK) r = jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

/* ---- json.dumps(ensure_ascii=False) ---- */
static int json_str(struct vlm_buf *b, const char *s, size_t n, int ascii) {
    int rc = vlm_buf_putc(b, '"');
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        if (ascii && c >= 0x80) {   /* ensure_ascii=True: \uXXXX, surrogate pairs past the BMP */
            size_t w;
            uint32_t cp = (uint32_t)u8_decode(s + i, n - i, &w);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                rc = vlm_buf_appendf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
            } else {
                rc = vlm_buf_appendf(b, "\\u%04x", cp);
            }
            i += w - 1;
            continue;
        }
        switch (c) {
        case '"': rc = vlm_buf_append(b, "\\\"", 2); break;
        case '\\': rc = vlm_buf_append(b, "\\\\", 2); break;
        case '\n': rc = vlm_buf_append(b, "\\n", 2); break;
        case '\r': rc = vlm_buf_append(b, "\\r", 2); break;
        case '\t': rc = vlm_buf_append(b, "\\t", 2); break;
        case '\b': rc = vlm_buf_append(b, "\\b", 2); break;
        case '\f': rc = vlm_buf_append(b, "\\f", 2); break;
        default: rc = c < 0x20 ? vlm_buf_appendf(b, "\\u%04x", c) : vlm_buf_putc(b, (char)c);
        }
    }
    return rc ? rc : vlm_buf_putc(b, '"');
}

static int json_nl(struct vlm_buf *b, const char *indent, int level) {
    int rc = vlm_buf_putc(b, '\n');
    for (int i = 0; i < level && !rc; i++) rc = vlm_buf_append(b, indent, strlen(indent));
    return rc;
}

static int json_key(struct jstate *st, struct vlm_buf *b, jv k, int ascii, const struct jnode *at) {
    char num[64];
    switch (k.type) {
    case JV_STR: return json_str(b, k.u.s->data, k.u.s->len, ascii);
    case JV_INT: return vlm_buf_appendf(b, "\"%lld\"", (long long)k.u.i);
    case JV_BOOL: return vlm_buf_appendf(b, "\"%s\"", k.u.b ? "true" : "false");
    case JV_NONE: return vlm_buf_append(b, "\"null\"", 6);
    case JV_FLOAT: jv_fmt_float(k.u.f, num, sizeof num); return vlm_buf_appendf(b, "\"%s\"", num);
    default:
        return jfail(st, VLM_E_INVALID, at, "keys must be str, int, float, bool or None, not %s", jv_typename(k));
    }
}

static int key_cmp(const void *x, const void *y) {
    const jv *a = *(const jv *const *)x, *c = *(const jv *const *)y;
    if (a->type != JV_STR || c->type != JV_STR) return 0;
    size_t n = a->u.s->len < c->u.s->len ? a->u.s->len : c->u.s->len;
    int r = memcmp(a->u.s->data, c->u.s->data, n);
    return r ? r : (a->u.s->len > c->u.s->len) - (a->u.s->len < c->u.s->len);
}

int jv_write_json(struct jstate *st, struct vlm_buf *b, jv v, const char *indent, int level,
                  const char *isep, const char *ksep, int flags, const struct jnode *at) {
    char num[64];
    int sort_keys = flags & JV_JSON_SORT_KEYS, ascii = flags & JV_JSON_ASCII;
    int rc = VLM_OK;
    if (level > 256) return jfail(st, VLM_E_LIMIT, at, "value nested too deeply for tojson");
    switch (v.type) {
    case JV_NONE: return buf_rc(st, vlm_buf_append(b, "null", 4));
    case JV_BOOL: return buf_rc(st, vlm_buf_appendf(b, "%s", v.u.b ? "true" : "false"));
    case JV_INT: return buf_rc(st, vlm_buf_appendf(b, "%lld", (long long)v.u.i));
    case JV_FLOAT:
        if (isnan(v.u.f)) snprintf(num, sizeof num, "NaN");
        else if (isinf(v.u.f)) snprintf(num, sizeof num, v.u.f < 0 ? "-Infinity" : "Infinity");
        else jv_fmt_float(v.u.f, num, sizeof num);
        return buf_rc(st, vlm_buf_append(b, num, strlen(num)));
    case JV_STR: return buf_rc(st, json_str(b, v.u.s->data, v.u.s->len, ascii));
    case JV_LIST:
        if (v.u.l->len == 0) return buf_rc(st, vlm_buf_append(b, "[]", 2));
        rc = vlm_buf_putc(b, '[');
        for (size_t i = 0; i < v.u.l->len && !rc; i++) {
            if (i) rc = vlm_buf_append(b, isep, strlen(isep));
            if (!rc && indent) rc = json_nl(b, indent, level + 1);
            if (!rc) rc = jv_write_json(st, b, v.u.l->items[i], indent, level + 1, isep, ksep, flags, at);
        }
        if (!rc && indent) rc = json_nl(b, indent, level);
        if (!rc) rc = vlm_buf_putc(b, ']');
        return buf_rc(st, rc);
    case JV_DICT: {
        size_t n = v.u.d->len, bytes;
        if (n == 0) return buf_rc(st, vlm_buf_append(b, "{}", 2));
        if (!vlm_mul_ok(n, sizeof(jv *), &bytes)) return jfail(st, VLM_E_NOMEM, at, "out of memory");
        jv **ord = ja_alloc(st->arena, bytes);
        if (!ord) return jfail(st, VLM_E_LIMIT, at, "template memory limit reached");
        for (size_t i = 0; i < n; i++) ord[i] = &v.u.d->keys[i];
        if (sort_keys) qsort(ord, n, sizeof *ord, key_cmp);
        rc = vlm_buf_putc(b, '{');
        for (size_t i = 0; i < n && !rc; i++) {
            size_t k = (size_t)(ord[i] - v.u.d->keys);
            if (i) rc = vlm_buf_append(b, isep, strlen(isep));
            if (!rc && indent) rc = json_nl(b, indent, level + 1);
            if (!rc) rc = json_key(st, b, v.u.d->keys[k], ascii, at);
            if (!rc) rc = vlm_buf_append(b, ksep, strlen(ksep));
            if (!rc) rc = jv_write_json(st, b, v.u.d->vals[k], indent, level + 1, isep, ksep, flags, at);
        }
        if (!rc && indent) rc = json_nl(b, indent, level);
        if (!rc) rc = vlm_buf_putc(b, '}');
        return buf_rc(st, rc);
    }
    default:
        return jfail(st, VLM_E_INVALID, at, "Object of type %s is not JSON serializable", jv_typename(v));
    }
}

/* ---- context conversion ---- */
jv jv_from_json(struct jstate *st, json_t *j, int depth) {
    if (depth > 512) { jfail(st, VLM_E_LIMIT, NULL, "context nested too deeply"); return jv_none(); }
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        jv d = jv_dict(st, json_object_size(j));
        const char *k;
        json_t *x;
        json_object_foreach(j, k, x) {
            if (JSTOP(st)) break;
            jv val = jv_from_json(st, x, depth + 1);
            if (!JSTOP(st)) jv_dict_sets(st, d, k, val);
        }
        return d;
    }
    case JSON_ARRAY: {
        jv l = jv_list(st, json_array_size(j));
        size_t i;
        json_t *x;
        json_array_foreach(j, i, x) {
            if (JSTOP(st)) break;
            jv val = jv_from_json(st, x, depth + 1);
            if (!JSTOP(st)) jv_list_push(st, l, val);
        }
        return l;
    }
    case JSON_STRING: return jv_strn(st, json_string_value(j), json_string_length(j));
    case JSON_INTEGER: return jv_int(json_integer_value(j));
    case JSON_REAL: return jv_float(json_real_value(j));
    case JSON_TRUE: return jv_bool(1);
    case JSON_FALSE: return jv_bool(0);
    default: return jv_none();
    }
}

int jv_iter_list(struct jstate *st, jv v, jv *out, const struct jnode *at) {
    switch (v.type) {
    case JV_LIST:
        if (v.u.l->view) {   /* list(d.keys()) is a plain list */
            jv l = jv_list(st, v.u.l->len);
            for (size_t i = 0; i < v.u.l->len && !JSTOP(st); i++) jv_list_push(st, l, v.u.l->items[i]);
            *out = l;
            return st->rc;
        }
        *out = v;
        return VLM_OK;
    case JV_UNDEF: *out = jv_list(st, 0); return st->rc;
    case JV_DICT: case JV_NS: {
        jv l = jv_list(st, v.u.d->len);
        for (size_t i = 0; i < v.u.d->len && !JSTOP(st); i++) jv_list_push(st, l, v.u.d->keys[i]);
        *out = l;
        return st->rc;
    }
    case JV_STR: {
        jv l = jv_list(st, v.u.s->len);
        for (size_t i = 0; i < v.u.s->len && !JSTOP(st);) {
            size_t w;
            u8_decode(v.u.s->data + i, v.u.s->len - i, &w);
            jv_list_push(st, l, jv_strn(st, v.u.s->data + i, w));
            i += w;
        }
        *out = l;
        return st->rc;
    }
    default:
        return jfail(st, VLM_E_INVALID, at, "'%s' object is not iterable", jv_typename(v));
    }
}
