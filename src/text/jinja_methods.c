/* jinja_methods.c — the Python methods templates call on strings, dicts and lists (the
 * sandbox's safe, non-mutating ones), loop.cycle, and the globals transformers provides:
 * range, namespace, dict, raise_exception, strftime_now. */
#include "text/jinja.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const str_methods[] = {
    "strip", "lstrip", "rstrip", "split", "rsplit", "startswith", "endswith", "upper", "lower", "title",
    "capitalize", "swapcase", "casefold", "replace", "find", "rfind", "index", "rindex", "count", "join",
    "format", "splitlines", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper", "isnumeric",
    "isdecimal", "zfill", "center", "ljust", "rjust", "removeprefix", "removesuffix", "partition",
    "rpartition", NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};

static int in_names(const char *const *names, const char *n) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(names[i], n)) return 1;
    return 0;
}

int jmethod_exists(jv self, const char *name) {
    switch (self.type) {
    case JV_STR: return in_names(str_methods, name);
    case JV_DICT: return in_names(dict_methods, name);
    case JV_LIST: return in_names(list_methods, name);
    default: return 0;
    }
}

static const char *const globals[] = {"range", "namespace", "dict", "raise_exception", "strftime_now", NULL};
int jglobal_exists(const char *name) { return in_names(globals, name); }

/* ---- string helpers ---- */
struct u32s { uint32_t *cp; size_t *off; size_t n; };   /* code points and their byte offsets */

static int decode(struct jstate *st, const struct jstr *s, struct u32s *u) {
    u->cp = ja_alloc(st->arena, (s->len + 1) * sizeof *u->cp);
    u->off = ja_alloc(st->arena, (s->len + 1) * sizeof *u->off);
    if (!u->cp || !u->off) return jfail(st, VLM_E_LIMIT, NULL, "template memory limit reached");
    u->n = 0;
    for (size_t i = 0; i < s->len;) {
        size_t w;
        u->off[u->n] = i;
        u->cp[u->n++] = (uint32_t)u8_decode(s->data + i, s->len - i, &w);
        i += w;
    }
    u->off[u->n] = s->len;
    return VLM_OK;
}

static jv sub(struct jstate *st, jv s, size_t a, size_t b) { return jv_strn(st, s.u.s->data + a, b - a); }

static int in_set(uint32_t c, const struct u32s *set) {
    if (!set) return py_isspace(c);
    for (size_t i = 0; i < set->n; i++)
        if (set->cp[i] == c) return 1;
    return 0;
}

static jv do_strip(struct jstate *st, jv s, jv chars, int left, int right) {
    struct u32s u, cs, *set = NULL;
    if (decode(st, s.u.s, &u)) return jv_none();
    if (chars.type == JV_STR) { if (decode(st, chars.u.s, &cs)) return jv_none(); set = &cs; }
    size_t a = 0, b = u.n;
    while (left && a < b && in_set(u.cp[a], set)) a++;
    while (right && b > a && in_set(u.cp[b - 1], set)) b--;
    return sub(st, s, u.off[a], u.off[b]);
}

static jv map_case(struct jstate *st, jv s, int mode) {   /* 0 lower, 1 upper, 2 capitalize, 3 title, 4 swap */
    struct vlm_buf b = {0};
    int prev_cased = 0, first = 1, rc = 0;
    for (size_t i = 0; i < s.u.s->len && !rc;) {
        size_t w;
        uint32_t c = (uint32_t)u8_decode(s.u.s->data + i, s.u.s->len - i, &w), o = c;
        int cased = py_upper(c) != c || py_lower(c) != c;
        switch (mode) {
        case 0: o = py_lower(c); break;
        case 1: o = py_upper(c); break;
        case 2: o = first ? py_upper(c) : py_lower(c); break;
        case 3: o = prev_cased ? py_lower(c) : py_upper(c); break;
        default: o = py_upper(c) != c ? py_upper(c) : py_lower(c); break;
        }
        if (mode == 3 && c == 0xDF) o = c;
        if (c == 0xDF && (mode == 1 || (mode == 2 && first))) {   /* German sharp s upper-cases to "SS" */
            rc = vlm_buf_append(&b, mode == 1 ? "SS" : "Ss", 2);
            prev_cased = 1;
            first = 0;
            i += w;
            continue;
        }
        prev_cased = cased || (c >= 0x300 && c <= 0x36F && prev_cased);
        first = 0;
        char tmp[4];
        rc = vlm_buf_append(&b, tmp, u8_encode(o, tmp));
        i += w;
    }
    jv r = rc ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    if (rc) jfail(st, VLM_E_NOMEM, NULL, "out of memory");
    vlm_buf_free(&b);
    return r;
}

/* Jinja's title filter: capitalise each piece between runs of [-\s({[<]. */
static jv jinja_title(struct jstate *st, jv s) {
    struct vlm_buf b = {0};
    int at_start = 1, rc = 0;
    for (size_t i = 0; i < s.u.s->len && !rc;) {
        size_t w;
        uint32_t c = (uint32_t)u8_decode(s.u.s->data + i, s.u.s->len - i, &w);
        int sep = py_isspace(c) || c == '-' || c == '(' || c == '{' || c == '[' || c == '<';
        uint32_t o = sep ? c : at_start ? py_upper(c) : py_lower(c);
        at_start = sep;
        char tmp[4];
        rc = vlm_buf_append(&b, tmp, u8_encode(o, tmp));
        i += w;
    }
    jv r = rc ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

static int word_char(uint32_t c) {
    if (c < 0x80) return py_isalnum(c) || c == '_';
    return !py_isspace(c) && !(c >= 0x2000 && c <= 0x206F) && !(c >= 0x3000 && c <= 0x303F) && c != 0xA0;
}

static const char *find_bytes(const struct jstr *h, const struct jstr *n, size_t from) {
    if (from > h->len) return NULL;
    return memmem(h->data + from, h->len - from, n->data, n->len);
}

static jv do_split(struct jstate *st, jv s, jv sep, jv maxs, int from_right, const struct jnode *at) {
    int64_t max = maxs.type == JV_INT ? maxs.u.i : -1;
    jv out = jv_list(st, 4);
    if (JSTOP(st)) return out;
    const char *d = s.u.s->data;
    size_t n = s.u.s->len;
    if (sep.type == JV_STR) {
        size_t k = sep.u.s->len;
        if (k == 0) { jfail(st, VLM_E_INVALID, at, "empty separator"); return jv_none(); }
        if (!from_right) {
            size_t pos = 0;
            const char *p;
            while ((max < 0 || (int64_t)out.u.l->len < max) && (p = find_bytes(s.u.s, sep.u.s, pos))) {
                if (jstep(st, 1, at)) return jv_none();
                jv_list_push(st, out, jv_strn(st, d + pos, (size_t)(p - d) - pos));
                pos = (size_t)(p - d) + k;
            }
            jv_list_push(st, out, jv_strn(st, d + pos, n - pos));
            return out;
        }
        /* rsplit: collect from the right, then reverse */
        size_t end = n;
        jv rev = jv_list(st, 4);
        while ((max < 0 || (int64_t)rev.u.l->len < max) && end >= k && !JSTOP(st)) {
            size_t i = end - k + 1, found = (size_t)-1;
            while (i-- > 0) if (!memcmp(d + i, sep.u.s->data, k)) { found = i; break; }
            if (found == (size_t)-1) break;
            if (jstep(st, 1, at)) return jv_none();
            jv_list_push(st, rev, jv_strn(st, d + found + k, end - found - k));
            end = found;
        }
        jv_list_push(st, out, jv_strn(st, d, end));
        for (size_t i = rev.u.l->len; i > 0 && !JSTOP(st); i--) jv_list_push(st, out, rev.u.l->items[i - 1]);
        return out;
    }
    /* whitespace split */
    struct u32s u;
    if (decode(st, s.u.s, &u)) return jv_none();
    if (!from_right) {
        size_t i = 0;
        while (i < u.n) {
            while (i < u.n && py_isspace(u.cp[i])) i++;
            if (i >= u.n) break;
            if (max >= 0 && (int64_t)out.u.l->len == max) {
                size_t e = u.n;
                while (e > i && py_isspace(u.cp[e - 1])) e--;
                jv_list_push(st, out, sub(st, s, u.off[i], u.off[e]));
                break;
            }
            size_t j = i;
            while (j < u.n && !py_isspace(u.cp[j])) j++;
            if (jstep(st, 1, at)) return jv_none();
            jv_list_push(st, out, sub(st, s, u.off[i], u.off[j]));
            i = j;
        }
        return out;
    }
    jv rev = jv_list(st, 4);
    size_t e = u.n;
    while (e > 0 && !JSTOP(st)) {
        while (e > 0 && py_isspace(u.cp[e - 1])) e--;
        if (e == 0) break;
        if (max >= 0 && (int64_t)rev.u.l->len == max) {
            size_t b = 0;
            while (b < e && py_isspace(u.cp[b])) b++;
            jv_list_push(st, rev, sub(st, s, u.off[b], u.off[e]));
            break;
        }
        size_t b = e;
        while (b > 0 && !py_isspace(u.cp[b - 1])) b--;
        if (jstep(st, 1, at)) return jv_none();
        jv_list_push(st, rev, sub(st, s, u.off[b], u.off[e]));
        e = b;
    }
    for (size_t i = rev.u.l->len; i > 0 && !JSTOP(st); i--) jv_list_push(st, out, rev.u.l->items[i - 1]);
    return out;
}

static int affix(jv s, jv p, int end) {
    if (p.type != JV_STR || p.u.s->len > s.u.s->len) return 0;
    size_t off = end ? s.u.s->len - p.u.s->len : 0;
    return !memcmp(s.u.s->data + off, p.u.s->data, p.u.s->len);
}

static jv do_replace(struct jstate *st, jv s, jv old, jv nw, jv cnt, const struct jnode *at) {
    if (old.type != JV_STR || nw.type != JV_STR) { jfail(st, VLM_E_INVALID, at, "replace() arguments must be str"); return jv_none(); }
    int64_t max = cnt.type == JV_INT ? cnt.u.i : -1, done = 0;
    struct vlm_buf b = {.max = st->lim.max_output};
    int rc = 0;
    const char *d = s.u.s->data;
    size_t n = s.u.s->len, pos = 0;
    if (old.u.s->len == 0) {   /* insert between characters */
        for (size_t i = 0; i <= n && !rc;) {
            if (max < 0 || done < max) { rc |= vlm_buf_append(&b, nw.u.s->data, nw.u.s->len); done++; }
            if (i == n) break;
            size_t w;
            u8_decode(d + i, n - i, &w);
            rc |= vlm_buf_append(&b, d + i, w);
            i += w;
        }
    } else {
        const char *p;
        while (!rc && (max < 0 || done < max) && (p = find_bytes(s.u.s, old.u.s, pos))) {
            if (jstep(st, 1, at)) break;
            rc |= vlm_buf_append(&b, d + pos, (size_t)(p - d) - pos);
            rc |= vlm_buf_append(&b, nw.u.s->data, nw.u.s->len);
            pos = (size_t)(p - d) + old.u.s->len;
            done++;
        }
        if (!rc) rc = vlm_buf_append(&b, d + pos, n - pos);
    }
    if (rc && !JSTOP(st)) jfail(st, VLM_E_LIMIT, at, "template output limit reached");
    jv r = JSTOP(st) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

static jv do_find(struct jstate *st, jv s, jv x, int rev, int must, const struct jnode *at) {
    if (x.type != JV_STR) { jfail(st, VLM_E_INVALID, at, "must be str, not %s", jv_typename(x)); return jv_none(); }
    const char *p = NULL;
    if (!rev) p = find_bytes(s.u.s, x.u.s, 0);
    else
        for (size_t i = s.u.s->len + 1; i-- > 0 && !p;)
            if (i + x.u.s->len <= s.u.s->len && !memcmp(s.u.s->data + i, x.u.s->data, x.u.s->len)) p = s.u.s->data + i;
    if (!p) {
        if (must) { jfail(st, VLM_E_INVALID, at, "substring not found"); return jv_none(); }
        return jv_int(-1);
    }
    return jv_int((int64_t)u8_count(s.u.s->data, (size_t)(p - s.u.s->data)));
}

static jv do_join(struct jstate *st, jv sep, jv items, const struct jnode *at) {
    jv l;
    if (jv_iter_list(st, items, &l, at)) return jv_none();
    struct vlm_buf b = {.max = st->lim.max_output};
    int rc = 0;
    for (size_t i = 0; i < l.u.l->len && !rc && !JSTOP(st); i++) {
        jv x = l.u.l->items[i];
        if (x.type != JV_STR) {
            jfail(st, VLM_E_INVALID, at, "sequence item %zu: expected str instance, %s found", i, jv_typename(x));
            break;
        }
        if (i) rc |= vlm_buf_append(&b, sep.u.s->data, sep.u.s->len);
        rc |= vlm_buf_append(&b, x.u.s->data, x.u.s->len);
    }
    if (rc && !JSTOP(st)) jfail(st, VLM_E_LIMIT, at, "template output limit reached");
    jv r = JSTOP(st) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

/* str.format with {} / {N} / {name} fields (format specs are not supported). */
static jv do_format(struct jstate *st, jv s, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, const struct jnode *at) {
    struct vlm_buf b = {.max = st->lim.max_output};
    const char *d = s.u.s->data;
    size_t n = s.u.s->len;
    int autoi = 0;
    for (size_t i = 0; i < n && !JSTOP(st);) {
        if (d[i] == '{' && i + 1 < n && d[i + 1] == '{') { vlm_buf_putc(&b, '{'); i += 2; continue; }
        if (d[i] == '}' && i + 1 < n && d[i + 1] == '}') { vlm_buf_putc(&b, '}'); i += 2; continue; }
        if (d[i] != '{') { vlm_buf_putc(&b, d[i++]); continue; }
        const char *close = memchr(d + i, '}', n - i);
        if (!close) { jfail(st, VLM_E_INVALID, at, "single '{' encountered in format string"); break; }
        size_t fl = (size_t)(close - d) - i - 1;
        const char *f = d + i + 1;
        int repr = fl >= 2 && f[fl - 2] == '!' && f[fl - 1] == 'r';
        if (repr) fl -= 2;
        if (memchr(f, ':', fl) || memchr(f, '!', fl)) { jfail(st, VLM_E_UNSUPPORTED, at, "format specs are not supported"); break; }
        jv v = jv_undef(NULL, NULL);
        if (fl == 0 || (f[0] >= '0' && f[0] <= '9')) {
            long idx = fl == 0 ? autoi++ : strtol(f, NULL, 10);
            if (idx < 0 || idx >= nargs) { jfail(st, VLM_E_INVALID, at, "Replacement index %ld out of range", idx); break; }
            v = args[idx];
        } else {
            int found = 0;
            for (int k = 0; k < nkw && !found; k++)
                if (strlen(kwn[k]) == fl && !memcmp(kwn[k], f, fl)) { v = kwv[k]; found = 1; }
            if (!found) { jfail(st, VLM_E_INVALID, at, "format: missing key '%.*s'", (int)fl, f); break; }
        }
        if (repr) jv_write_repr(st, &b, v); else jv_write_str(st, &b, v);
        i = (size_t)(close - d) + 1;
    }
    jv r = JSTOP(st) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

/* printf-style `'%s' % x`: %s %r %d %i %f %% and %(name)s. */
static jv do_percent(struct jstate *st, jv s, jv argv, const struct jnode *at) {
    struct vlm_buf b = {.max = st->lim.max_output};
    const char *d = s.u.s->data;
    size_t n = s.u.s->len, k = 0;
    int is_tuple = argv.type == JV_LIST && argv.u.l->is_tuple;
    for (size_t i = 0; i < n && !JSTOP(st); i++) {
        if (d[i] != '%') { vlm_buf_putc(&b, d[i]); continue; }
        if (++i >= n) { jfail(st, VLM_E_INVALID, at, "incomplete format"); break; }
        jv v;
        if (d[i] == '%') { vlm_buf_putc(&b, '%'); continue; }
        if (d[i] == '(') {
            const char *c = memchr(d + i, ')', n - i);
            if (!c || argv.type != JV_DICT) { jfail(st, VLM_E_INVALID, at, "format requires a mapping"); break; }
            jv *x = jv_dict_find(argv, d + i + 1, (size_t)(c - d) - i - 1);
            if (!x) { jfail(st, VLM_E_INVALID, at, "format: missing key"); break; }
            v = *x;
            i = (size_t)(c - d) + 1;
        } else if (is_tuple) {
            if (k >= argv.u.l->len) { jfail(st, VLM_E_INVALID, at, "not enough arguments for format string"); break; }
            v = argv.u.l->items[k++];
        } else {
            if (k++) { jfail(st, VLM_E_INVALID, at, "not enough arguments for format string"); break; }
            v = argv;
        }
        int prec = -1;
        if (i < n && d[i] == '.') { prec = (int)strtol(d + i + 1, NULL, 10); i++; while (i < n && d[i] >= '0' && d[i] <= '9') i++; }
        if (i >= n) { jfail(st, VLM_E_INVALID, at, "incomplete format"); break; }
        char c = d[i];
        if (c == 's') jv_write_str(st, &b, v);
        else if (c == 'r') jv_write_repr(st, &b, v);
        else if ((c == 'd' || c == 'i') && v.type != JV_FLOAT && jv_is_num(v))
            vlm_buf_appendf(&b, "%lld", (long long)(v.type == JV_INT ? v.u.i : v.u.b));
        else if ((c == 'd' || c == 'i') && v.type == JV_FLOAT) {
            int64_t iv;
            if (!jv_f2i(v.u.f, &iv)) { jfail(st, VLM_E_INVALID, at, "%%d format: number out of range"); break; }
            vlm_buf_appendf(&b, "%lld", (long long)iv);
        }
        else if (c == 'f' && jv_is_num(v)) vlm_buf_appendf(&b, "%.*f", prec < 0 ? 6 : prec > 50 ? 50 : prec, jv_num(v));
        else { jfail(st, VLM_E_INVALID, at, "unsupported format character '%c'", c); break; }
    }
    if (!JSTOP(st) && argv.type != JV_DICT && (is_tuple ? k < argv.u.l->len : k == 0))
        jfail(st, VLM_E_INVALID, at, "not all arguments converted during string formatting");
    jv r = JSTOP(st) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

static jv do_pad(struct jstate *st, jv s, jv width, jv fill, int mode) {   /* 0 center, 1 ljust, 2 rjust, 3 zfill */
    int64_t w = width.type == JV_INT ? width.u.i : 0, len = (int64_t)u8_count(s.u.s->data, s.u.s->len);
    if (w > 100000) w = 100000;
    if (w <= len) return s;
    const char *f = fill.type == JV_STR && fill.u.s->len ? fill.u.s->data : mode == 3 ? "0" : " ";
    size_t fw;
    u8_decode(f, strlen(f), &fw);
    int64_t total = w - len, left = mode == 0 ? total / 2 + (total & w & 1) : mode == 1 ? 0 : total;
    struct vlm_buf b = {0};
    const char *d = s.u.s->data;
    size_t dn = s.u.s->len;
    if (mode == 3 && dn && (d[0] == '-' || d[0] == '+')) { vlm_buf_putc(&b, d[0]); d++; dn--; }
    for (int64_t i = 0; i < left; i++) vlm_buf_append(&b, f, fw);
    vlm_buf_append(&b, d, dn);
    for (int64_t i = 0; i < total - left; i++) vlm_buf_append(&b, f, fw);
    jv r = jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

static jv str_pred(jv s, const char *name) {
    int any = 0, all = 1, cased = 0, upper = 0, lower = 0;
    for (size_t i = 0; i < s.u.s->len;) {
        size_t w;
        uint32_t c = (uint32_t)u8_decode(s.u.s->data + i, s.u.s->len - i, &w);
        i += w;
        any = 1;
        int digit = c >= '0' && c <= '9', alpha = py_isalnum(c) && !digit;
        if (py_upper(c) != c) { cased = 1; lower = 1; }
        if (py_lower(c) != c) { cased = 1; upper = 1; }
        if (!strcmp(name, "isdigit") || !strcmp(name, "isnumeric") || !strcmp(name, "isdecimal")) all &= digit;
        else if (!strcmp(name, "isalpha")) all &= alpha;
        else if (!strcmp(name, "isalnum")) all &= alpha || digit;
        else if (!strcmp(name, "isspace")) all &= py_isspace(c);
    }
    if (!strcmp(name, "islower")) return jv_bool(cased && lower && !upper);
    if (!strcmp(name, "isupper")) return jv_bool(cased && upper && !lower);
    return jv_bool(any && all);
}

static jv partition(struct jstate *st, jv s, jv sep, int rev, const struct jnode *at) {
    if (sep.type != JV_STR || !sep.u.s->len) { jfail(st, VLM_E_INVALID, at, "empty separator"); return jv_none(); }
    jv t = jv_list(st, 3);
    if (JSTOP(st)) return t;
    t.u.l->is_tuple = 1;
    jv idx = do_find(st, s, sep, rev, 0, at);
    if (idx.u.i < 0) {
        jv e = jv_strn(st, "", 0);
        jv_list_push(st, t, rev ? e : s); jv_list_push(st, t, e); jv_list_push(st, t, rev ? s : e);
        return t;
    }
    const char *p = s.u.s->data;
    size_t off = 0;
    for (int64_t k = 0; k < idx.u.i; k++) { size_t w; u8_decode(p + off, s.u.s->len - off, &w); off += w; }
    jv_list_push(st, t, jv_strn(st, p, off));
    jv_list_push(st, t, sep);
    jv_list_push(st, t, jv_strn(st, p + off + sep.u.s->len, s.u.s->len - off - sep.u.s->len));
    return t;
}

/* Python's str methods by name: one flat dispatch, each arm a call or a few lines. */
static jv str_method(struct jstate *st, jv s, const char *m, jv *args, int nargs, const char **kwn, jv *kwv,
                     int nkw, const struct jnode *at) {
    jv a0 = nargs > 0 ? args[0] : jv_none(), a1 = nargs > 1 ? args[1] : jv_none();
    if (!strcmp(m, "strip")) return do_strip(st, s, a0, 1, 1);
    if (!strcmp(m, "lstrip")) return do_strip(st, s, a0, 1, 0);
    if (!strcmp(m, "rstrip")) return do_strip(st, s, a0, 0, 1);
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        for (int k = 0; k < nkw; k++) {
            if (!strcmp(kwn[k], "sep")) a0 = kwv[k];
            else if (!strcmp(kwn[k], "maxsplit")) a1 = kwv[k];
        }
        return do_split(st, s, a0, a1, m[0] == 'r', at);
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        int end = m[0] == 'e';
        if (a0.type == JV_LIST && a0.u.l->is_tuple) {
            for (size_t i = 0; i < a0.u.l->len; i++)
                if (affix(s, a0.u.l->items[i], end)) return jv_bool(1);
            return jv_bool(0);
        }
        if (a0.type != JV_STR) { jfail(st, VLM_E_INVALID, at, "%s first arg must be str or a tuple of str", m); return jv_none(); }
        return jv_bool(affix(s, a0, end));
    }
    if (!strcmp(m, "lower") || !strcmp(m, "casefold")) return map_case(st, s, 0);
    if (!strcmp(m, "upper")) return map_case(st, s, 1);
    if (!strcmp(m, "capitalize")) return map_case(st, s, 2);
    if (!strcmp(m, "title")) return map_case(st, s, 3);
    if (!strcmp(m, "swapcase")) return map_case(st, s, 4);
    if (!strcmp(m, "__jinja_title__")) return jinja_title(st, s);
    if (!strcmp(m, "__wordcount__")) {
        int64_t n = 0;
        int inw = 0;
        for (size_t i = 0; i < s.u.s->len;) {
            size_t w;
            int wc = word_char((uint32_t)u8_decode(s.u.s->data + i, s.u.s->len - i, &w));
            if (wc && !inw) n++;
            inw = wc;
            i += w;
        }
        return jv_int(n);
    }
    if (!strcmp(m, "replace")) return do_replace(st, s, a0, a1, nargs > 2 ? args[2] : jv_none(), at);
    if (!strcmp(m, "find") || !strcmp(m, "index")) return do_find(st, s, a0, 0, m[0] == 'i', at);
    if (!strcmp(m, "rfind") || !strcmp(m, "rindex")) return do_find(st, s, a0, 1, m[1] == 'i', at);
    if (!strcmp(m, "count")) {
        if (a0.type != JV_STR) { jfail(st, VLM_E_INVALID, at, "must be str"); return jv_none(); }
        if (!a0.u.s->len) return jv_int((int64_t)u8_count(s.u.s->data, s.u.s->len) + 1);
        int64_t c = 0;
        size_t pos = 0;
        const char *p;
        while ((p = find_bytes(s.u.s, a0.u.s, pos))) { c++; pos = (size_t)(p - s.u.s->data) + a0.u.s->len; }
        return jv_int(c);
    }
    if (!strcmp(m, "join")) return do_join(st, s, a0, at);
    if (!strcmp(m, "format")) return do_format(st, s, args, nargs, kwn, kwv, nkw, at);
    if (!strcmp(m, "__mod__")) return do_percent(st, s, a0, at);
    if (!strcmp(m, "splitlines")) {
        jv out = jv_list(st, 4);
        const char *d = s.u.s->data, *end = d + s.u.s->len;
        while (d < end && !JSTOP(st)) {
            const char *q = d;
            while (q < end && *q != '\n' && *q != '\r') q++;
            size_t eol = q < end ? (*q == '\r' && q + 1 < end && q[1] == '\n' ? 2 : 1) : 0;
            jv_list_push(st, out, jv_strn(st, d, (size_t)(q - d) + (jv_truthy(a0) ? eol : 0)));
            d = q + eol;
            if (!eol) break;
        }
        return out;
    }
    if (!strncmp(m, "is", 2)) return str_pred(s, m);
    if (!strcmp(m, "zfill")) return do_pad(st, s, a0, jv_none(), 3);
    if (!strcmp(m, "center")) return do_pad(st, s, a0, a1, 0);
    if (!strcmp(m, "ljust")) return do_pad(st, s, a0, a1, 1);
    if (!strcmp(m, "rjust")) return do_pad(st, s, a0, a1, 2);
    if (!strcmp(m, "removeprefix")) return affix(s, a0, 0) ? sub(st, s, a0.u.s->len, s.u.s->len) : s;
    if (!strcmp(m, "removesuffix")) return affix(s, a0, 1) && a0.u.s->len ? sub(st, s, 0, s.u.s->len - a0.u.s->len) : s;
    if (!strcmp(m, "partition") || !strcmp(m, "rpartition")) return partition(st, s, a0, m[0] == 'r', at);
    jfail(st, VLM_E_INVALID, at, "'str' object has no attribute '%s'", m);
    return jv_none();
}

jv jmethod(struct jstate *st, jv self, const char *m, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
           const struct jnode *at) {
    if (JSTOP(st)) return jv_none();
    jv a0 = nargs > 0 ? args[0] : jv_none();
    if (self.type == JV_STR) return str_method(st, self, m, args, nargs, kwn, kwv, nkw, at);
    if (self.type == JV_DICT) {
        if (!strcmp(m, "get")) {
            jv *v = jv_dict_findv(self, a0);
            return v ? *v : nargs > 1 ? args[1] : jv_none();
        }
        if (!strcmp(m, "keys") || !strcmp(m, "values") || !strcmp(m, "items") || !strcmp(m, "copy")) {
            if (!strcmp(m, "copy")) {
                jv d = jv_dict(st, self.u.d->len);
                for (size_t i = 0; i < self.u.d->len && !JSTOP(st); i++) jv_dict_set(st, d, self.u.d->keys[i], self.u.d->vals[i]);
                return d;
            }
            jv out = jv_list(st, self.u.d->len);
            if (!JSTOP(st)) out.u.l->view = m[0] == 'k' ? 1 : m[0] == 'v' ? 2 : 3;   /* prints as dict_keys([...]) */
            for (size_t i = 0; i < self.u.d->len && !JSTOP(st); i++) {
                jv x = m[0] == 'k' ? self.u.d->keys[i] : self.u.d->vals[i];
                if (m[0] == 'i') {
                    x = jv_list(st, 2);
                    if (JSTOP(st)) break;
                    x.u.l->is_tuple = 1;
                    jv_list_push(st, x, self.u.d->keys[i]);
                    jv_list_push(st, x, self.u.d->vals[i]);
                }
                jv_list_push(st, out, x);
            }
            return out;
        }
    }
    if (self.type == JV_LIST) {
        if (!strcmp(m, "count") || !strcmp(m, "index")) {
            int64_t c = 0;
            for (size_t i = 0; i < self.u.l->len; i++)
                if (jv_equal(self.u.l->items[i], a0)) { if (m[0] == 'i') return jv_int((int64_t)i); c++; }
            if (m[0] == 'i') { jfail(st, VLM_E_INVALID, at, "value is not in list"); return jv_none(); }
            return jv_int(c);
        }
        if (!strcmp(m, "copy")) {
            jv l = jv_list(st, self.u.l->len);
            for (size_t i = 0; i < self.u.l->len && !JSTOP(st); i++) jv_list_push(st, l, self.u.l->items[i]);
            return l;
        }
    }
    if (self.type == JV_LOOP && !strcmp(m, "cycle")) {
        if (nargs == 0) { jfail(st, VLM_E_INVALID, at, "no items for cycling given"); return jv_none(); }
        return args[self.u.loop->index0 % nargs];
    }
    jfail(st, VLM_E_INVALID, at, "'%s' object has no method '%s'", jv_typename(self), m);
    return jv_none();
}

/* ---- globals ---- */
#define MAX_RANGE 100000   /* as Jinja's sandbox */

static jv do_range(struct jstate *st, jv *args, int nargs, const struct jnode *at) {
    int64_t a = 0, b = 0, c = 1;
    for (int i = 0; i < nargs; i++)
        if (args[i].type != JV_INT && args[i].type != JV_BOOL) {
            jfail(st, VLM_E_INVALID, at, "'%s' object cannot be interpreted as an integer", jv_typename(args[i]));
            return jv_none();
        }
#define IV(x) ((x).type == JV_INT ? (x).u.i : (int64_t)(x).u.b)
    if (nargs == 1) b = IV(args[0]);
    else if (nargs >= 2) { a = IV(args[0]); b = IV(args[1]); }
    if (nargs >= 3) c = IV(args[2]);
#undef IV
    if (nargs < 1 || nargs > 3) { jfail(st, VLM_E_INVALID, at, "range expected 1 to 3 arguments"); return jv_none(); }
    if (c == 0) { jfail(st, VLM_E_INVALID, at, "range() arg 3 must not be zero"); return jv_none(); }
    double count = c > 0 ? ((double)b - (double)a) / (double)c : ((double)a - (double)b) / -(double)c;
    if (count > MAX_RANGE) {
        jfail(st, VLM_E_LIMIT, at, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
        return jv_none();
    }
    jv l = jv_list(st, count > 0 ? (size_t)count + 1 : 0);
    for (int64_t i = a; (c > 0 ? i < b : i > b) && !JSTOP(st);) {
        jv_list_push(st, l, jv_int(i));
        if (__builtin_add_overflow(i, c, &i)) break;
    }
    return l;
}

jv jglobal_call(struct jstate *st, const char *name, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
                const struct jnode *at) {
    if (!strcmp(name, "range")) return do_range(st, args, nargs, at);
    if (!strcmp(name, "raise_exception")) {
        jv msg = nargs > 0 ? jv_to_str(st, args[0]) : jv_strn(st, "", 0);
        if (!JSTOP(st)) jfail(st, VLM_E_INVALID, at, "%s", msg.type == JV_STR ? msg.u.s->data : "");
        return jv_none();
    }
    if (!strcmp(name, "strftime_now")) {
        if (nargs < 1 || args[0].type != JV_STR) { jfail(st, VLM_E_INVALID, at, "strftime_now needs a format string"); return jv_none(); }
        time_t t = time(NULL);
        struct tm tmv;
        localtime_r(&t, &tmv);
        char buf[512];
        size_t n = args[0].u.s->len > 200 ? 0 : strftime(buf, sizeof buf, args[0].u.s->data, &tmv);
        return jv_strn(st, buf, n);
    }
    if (!strcmp(name, "namespace") || !strcmp(name, "dict")) {
        jv d = jv_dict(st, 4);
        if (JSTOP(st)) return d;
        if (name[0] == 'n') d.type = JV_NS;
        for (int i = 0; i < nargs && !JSTOP(st); i++) {
            if (args[i].type != JV_DICT) { jfail(st, VLM_E_INVALID, at, "%s() positional argument must be a dict", name); return jv_none(); }
            for (size_t k = 0; k < args[i].u.d->len; k++) jv_dict_set(st, d, args[i].u.d->keys[k], args[i].u.d->vals[k]);
        }
        for (int k = 0; k < nkw && !JSTOP(st); k++) jv_dict_sets(st, d, kwn[k], kwv[k]);
        for (size_t k = 0; name[0] == 'n' && k < d.u.d->len; k++)
            if (d.u.d->keys[k].type == JV_STR && d.u.d->keys[k].u.s->data[0] == '_') {
                jfail(st, VLM_E_FORBIDDEN, at, "chat templates cannot store underscore-prefixed attributes on a namespace");
                return jv_none();
            }
        return d;
    }
    jfail(st, VLM_E_INVALID, at, "'%s' is undefined", name);
    return jv_none();
}
