/* jinja_filters.c — Jinja's built-in filters and tests as templates use them, with
 * transformers' own tojson (json.dumps, ensure_ascii=False, key order kept). */
#include "text/jinja.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Argument `name` at position pos (after the filtered value) or by keyword; dflt if absent. */
static jv arg(const char *name, int pos, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, jv dflt) {
    if (pos >= 0 && pos < nargs) return args[pos];
    for (int i = 0; i < nkw; i++)
        if (!strcmp(kwn[i], name)) return kwv[i];
    return dflt;
}
#define ARG(name, pos, dflt) arg(name, pos, args, nargs, kwn, kwv, nkw, dflt)

static jv need_str(struct jstate *st, jv v) {
    if (v.type == JV_UNDEF) return jv_strn(st, "", 0);
    return jv_to_str(st, v);
}

static jv oom_none(struct jstate *st, const struct jnode *at) {
    jfail(st, VLM_E_LIMIT, at, "template memory limit reached");
    return jv_none();
}

/* Jinja's attribute getter: "a.b.0" -> item lookups, integers as indexes. */
static jv get_path(struct jstate *st, jv item, jv attr, const struct jnode *at) {
    if (attr.type == JV_INT) return jgetitem(st, item, attr, at);
    if (attr.type != JV_STR) return jv_undef("bad attribute", st);
    const char *p = attr.u.s->data, *end = p + attr.u.s->len;
    jv v = item;
    while (p <= end && !JSTOP(st)) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        char *e;
        long long idx = n ? strtoll(p, &e, 10) : 0;
        jv key = (n && e == p + n) ? jv_int(idx) : jv_strn(st, p, n);
        if (v.type == JV_UNDEF) return v;
        v = jgetitem(st, v, key, at);
        if (!dot) break;
        p = dot + 1;
    }
    return v;
}

/* Sort key: strings lowered unless case-sensitive. */
static jv sort_key(struct jstate *st, jv v, int case_sensitive) {
    if (case_sensitive || v.type != JV_STR) return v;
    return jmethod(st, v, "lower", NULL, 0, NULL, NULL, 0, NULL);
}

struct sort_ctx { struct jstate *st; const struct jnode *at; int reverse; };

/* Stable merge sort of (key, value) pairs. */
static void merge_sort(struct sort_ctx *c, jv *keys, jv *vals, jv *tk, jv *tv, size_t n) {
    if (n < 2 || JSTOP(c->st)) return;
    size_t h = n / 2;
    merge_sort(c, keys, vals, tk, tv, h);
    merge_sort(c, keys + h, vals + h, tk, tv, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        int r = 0;
        if (jv_compare(c->st, keys[j], keys[i], &r, c->at)) return;
        int take_right = c->reverse ? r > 0 : r < 0;
        if (take_right) { tk[k] = keys[j]; tv[k++] = vals[j++]; }
        else { tk[k] = keys[i]; tv[k++] = vals[i++]; }
    }
    while (i < h) { tk[k] = keys[i]; tv[k++] = vals[i++]; }
    while (j < n) { tk[k] = keys[j]; tv[k++] = vals[j++]; }
    memcpy(keys, tk, n * sizeof(jv));
    memcpy(vals, tv, n * sizeof(jv));
}

static jv sorted(struct jstate *st, jv list, jv *keys, int reverse, const struct jnode *at) {
    size_t n = list.u.l->len;
    jv out = jv_list(st, n);
    jv *tk = ja_alloc(st->arena, (n + 1) * sizeof(jv)), *tv = ja_alloc(st->arena, (n + 1) * sizeof(jv));
    if (JSTOP(st) || !tk || !tv) return oom_none(st, at);
    if (jstep(st, (long)n, at)) return jv_none();
    memcpy(out.u.l->items, list.u.l->items, n * sizeof(jv));
    out.u.l->len = n;
    struct sort_ctx c = {st, at, reverse};
    merge_sort(&c, keys, out.u.l->items, tk, tv, n);
    return out;
}

static jv pair(struct jstate *st, jv a, jv b) {
    jv t = jv_list(st, 2);
    if (JSTOP(st)) return t;
    t.u.l->is_tuple = 1;
    jv_list_push(st, t, a);
    jv_list_push(st, t, b);
    return t;
}

static jv to_list(struct jstate *st, jv v, const struct jnode *at) {
    jv l;
    if (jv_iter_list(st, v, &l, at)) return jv_none();
    return l;
}

/* select/reject/selectattr/rejectattr */
static jv select_items(struct jstate *st, jv v, jv *args, int nargs, int by_attr, int reject, const struct jnode *at) {
    jv l = to_list(st, v, at), out = jv_list(st, 4);
    if (JSTOP(st)) return jv_none();
    int a0 = by_attr ? 1 : 0;
    if (by_attr && nargs < 1) { jfail(st, VLM_E_INVALID, at, "missing attribute name"); return jv_none(); }
    const char *test = nargs > a0 && args[a0].type == JV_STR ? args[a0].u.s->data : NULL;
    if (test && !jtest_exists(test)) { jfail(st, VLM_E_INVALID, at, "no test named '%s'", test); return jv_none(); }
    for (size_t i = 0; i < l.u.l->len && !JSTOP(st); i++) {
        if (jstep(st, 1, at)) break;
        jv x = by_attr ? get_path(st, l.u.l->items[i], args[0], at) : l.u.l->items[i];
        int r = test ? jtest(st, test, x, args + a0 + 1, nargs - a0 - 1, at) : jv_truthy(x);
        if (JSTOP(st)) break;
        if (r != reject) jv_list_push(st, out, l.u.l->items[i]);
    }
    return out;
}

static jv do_map(struct jstate *st, jv v, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, const struct jnode *at) {
    jv l = to_list(st, v, at), out = jv_list(st, 4);
    if (JSTOP(st)) return jv_none();
    jv attr = ARG("attribute", -1, jv_undef(NULL, NULL));
    jv dflt = ARG("default", -1, jv_undef(NULL, NULL));
    for (size_t i = 0; i < l.u.l->len && !JSTOP(st); i++) {
        if (jstep(st, 1, at)) break;
        jv x;
        if (attr.type != JV_UNDEF) {
            x = get_path(st, l.u.l->items[i], attr, at);
            if (x.type == JV_UNDEF && dflt.type != JV_UNDEF) x = dflt;
        } else if (nargs >= 1 && args[0].type == JV_STR) {
            x = jfilter(st, args[0].u.s->data, l.u.l->items[i], args + 1, nargs - 1, NULL, NULL, 0, at);
        } else {
            jfail(st, VLM_E_INVALID, at, "map requires a filter name or attribute=");
            break;
        }
        jv_list_push(st, out, x);
    }
    return out;
}

static jv do_round(struct jstate *st, jv v, jv prec, jv method, const struct jnode *at) {
    if (!jv_is_num(v)) { jfail(st, VLM_E_INVALID, at, "round needs a number, got %s", jv_typename(v)); return jv_none(); }
    double x = jv_num(v), p = pow(10.0, prec.type == JV_INT ? (double)prec.u.i : 0.0);
    const char *m = method.type == JV_STR ? method.u.s->data : "common";
    double y = x * p;
    if (!strcmp(m, "ceil")) y = ceil(y);
    else if (!strcmp(m, "floor")) y = floor(y);
    else if (!strcmp(m, "common")) {
        if (v.type != JV_FLOAT) return jv_int(v.type == JV_INT ? v.u.i : v.u.b);   /* round(int, n) is the int */
        int64_t pr = prec.type == JV_INT ? prec.u.i : 0;
        if (pr >= 0 && pr <= 60 && isfinite(x)) {
            /* Python rounds the exact binary value, ties to even: so does printf */
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)pr, x);
            return jv_float(strtod(buf, NULL));
        }
        y = nearbyint(y);
    }
    else { jfail(st, VLM_E_INVALID, at, "method must be common, ceil or floor"); return jv_none(); }
    return jv_float(y / p);
}

static jv to_int(struct jstate *st, jv v, jv dflt, jv base) {
    if (v.type == JV_INT) return v;
    if (v.type == JV_BOOL) return jv_int(v.u.b);
    int64_t i64;
    if (v.type == JV_FLOAT) return jv_f2i(v.u.f, &i64) ? jv_int(i64) : dflt;
    if (v.type == JV_STR) {
        char buf[64];
        const char *s = v.u.s->data;
        size_t k = 0;
        for (size_t i = 0; s[i] && k + 1 < sizeof buf; i++) if (s[i] != '_') buf[k++] = s[i];
        buf[k] = 0;
        char *e = buf;
        int64_t bs = base.type == JV_INT ? base.u.i : 10;
        if (bs == 0 || (bs >= 2 && bs <= 36)) {   /* else int(x, base) raises and Jinja tries int(float(x)) */
            errno = 0;
            long long r = strtoll(buf, &e, (int)bs);
            while (*e == ' ' || *e == '\n' || *e == '\t') e++;
            if (!errno && e != buf && !*e) return jv_int(r);
        }
        double f = strtod(buf, &e);
        while (*e == ' ' || *e == '\n' || *e == '\t') e++;
        if (e != buf && !*e && jv_f2i(f, &i64)) return jv_int(i64);
    }
    (void)st;
    return dflt;
}

static jv do_indent(struct jstate *st, jv v, jv width, jv first, jv blank) {
    if (v.type != JV_STR) {   /* Jinja appends "\n" to the value: only strings work */
        jfail(st, VLM_E_INVALID, NULL, "indent needs a string, got %s", jv_typename(v));
        return jv_none();
    }
    jv s = v;
    if (JSTOP(st)) return s;
    struct vlm_buf ind = {0}, out = {.max = st->lim.max_output};
    if (width.type == JV_STR) vlm_buf_append(&ind, width.u.s->data, width.u.s->len);
    else for (int64_t i = 0; i < (width.type == JV_INT ? width.u.i : 4) && i < 1000; i++) vlm_buf_putc(&ind, ' ');
    const char *p = s.u.s->data, *end = p + s.u.s->len;
    int line = 0, rc = 0;
    if (jv_truthy(first)) rc |= vlm_buf_append(&out, ind.data, ind.len);
    /* s + "\n" split into lines (\n, \r\n, \r) */
    while (p < end && !rc) {
        const char *q = p;
        while (q < end && *q != '\n' && *q != '\r') q++;
        if (line++) {
            rc |= vlm_buf_putc(&out, '\n');
            if (q > p || jv_truthy(blank)) rc |= vlm_buf_append(&out, ind.data, ind.len);
        }
        rc |= vlm_buf_append(&out, p, (size_t)(q - p));
        if (q < end && *q == '\r' && q + 1 < end && q[1] == '\n') q++;
        p = q + 1;
    }
    jv r = rc ? jv_none() : jv_strn(st, out.data ? out.data : "", out.len);
    if (rc) jfail(st, VLM_E_LIMIT, NULL, "template output limit reached");
    vlm_buf_free(&ind);
    vlm_buf_free(&out);
    return r;
}

static jv html_escape(struct jstate *st, jv v) {
    jv s = need_str(st, v);
    struct vlm_buf b = {0};
    int rc = 0;
    for (size_t i = 0; i < s.u.s->len && !rc; i++) {
        char c = s.u.s->data[i];
        rc = c == '&' ? vlm_buf_append(&b, "&amp;", 5) : c == '<' ? vlm_buf_append(&b, "&lt;", 4)
           : c == '>' ? vlm_buf_append(&b, "&gt;", 4) : c == '"' ? vlm_buf_append(&b, "&#34;", 5)
           : c == '\'' ? vlm_buf_append(&b, "&#39;", 5) : vlm_buf_putc(&b, c);
    }
    jv r = rc ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

static jv do_tojson(struct jstate *st, jv v, jv *args, int nargs, const char **kwn, jv *kwv, int nkw, const struct jnode *at) {
    jv indent = ARG("indent", 0, jv_none()), seps = ARG("separators", -1, jv_none());
    jv sort = ARG("sort_keys", -1, jv_bool(0));
    char ind[64];
    const char *indp = NULL, *isep = ", ", *ksep = ": ";
    if (indent.type == JV_INT) {
        int64_t k = indent.u.i < 0 ? 0 : indent.u.i > 32 ? 32 : indent.u.i;
        memset(ind, ' ', (size_t)k);
        ind[k] = 0;
        indp = ind;
        isep = ",";
    } else if (indent.type == JV_STR) {
        snprintf(ind, sizeof ind, "%s", indent.u.s->data);
        indp = ind;
        isep = ",";
    }
    if (seps.type == JV_LIST && seps.u.l->len == 2 && seps.u.l->items[0].type == JV_STR && seps.u.l->items[1].type == JV_STR) {
        isep = seps.u.l->items[0].u.s->data;
        ksep = seps.u.l->items[1].u.s->data;
    }
    struct vlm_buf b = {.max = st->lim.max_output};
    jv r = jv_none();
    int flags = (jv_truthy(sort) ? JV_JSON_SORT_KEYS : 0) | (jv_truthy(ARG("ensure_ascii", -1, jv_bool(0))) ? JV_JSON_ASCII : 0);
    if (jv_write_json(st, &b, v, indp, 0, isep, ksep, flags, at) == VLM_OK)
        r = jv_strn(st, b.data ? b.data : "", b.len);
    vlm_buf_free(&b);
    return r;
}

static jv minmax(struct jstate *st, jv v, int want_max, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
                 const struct jnode *at) {
    jv l = to_list(st, v, at);
    int cs = jv_truthy(ARG("case_sensitive", 0, jv_bool(0)));
    jv attr = ARG("attribute", 1, jv_none());
    if (JSTOP(st)) return jv_none();
    if (l.u.l->len == 0) return jv_undef("no items in sequence", st);
    jv best = l.u.l->items[0], bk = sort_key(st, attr.type != JV_NONE ? get_path(st, best, attr, at) : best, cs);
    for (size_t i = 1; i < l.u.l->len && !JSTOP(st); i++) {
        jv x = l.u.l->items[i], xk = sort_key(st, attr.type != JV_NONE ? get_path(st, x, attr, at) : x, cs);
        int r = 0;
        if (jv_compare(st, xk, bk, &r, at)) break;
        if (want_max ? r > 0 : r < 0) { best = x; bk = xk; }
    }
    return best;
}

/* One flat dispatch on the filter's name (Jinja's filter table); long because the table is,
 * each arm short. Arguments come by position or keyword as in Jinja's signatures. */
jv jfilter(struct jstate *st, const char *name, jv v, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
           const struct jnode *at) {
    if (JSTOP(st)) return jv_none();
    if (!strcmp(name, "default") || !strcmp(name, "d")) {
        jv dv = ARG("default_value", 0, jv_strn(st, "", 0));
        int boolean = jv_truthy(ARG("boolean", 1, jv_bool(0)));
        return (v.type == JV_UNDEF || (boolean && !jv_truthy(v))) ? dv : v;
    }
    if (!strcmp(name, "length") || !strcmp(name, "count")) {
        if (v.type == JV_UNDEF || v.type == JV_STR || v.type == JV_LIST || v.type == JV_DICT || v.type == JV_NS)
            return jv_int((int64_t)jv_len(v));
        jfail(st, VLM_E_INVALID, at, "object of type '%s' has no len()", jv_typename(v));
        return jv_none();
    }
    if (!strcmp(name, "tojson")) return do_tojson(st, v, args, nargs, kwn, kwv, nkw, at);
    if (!strcmp(name, "safe")) return v;
    if (!strcmp(name, "string")) return need_str(st, v);
    if (!strcmp(name, "escape") || !strcmp(name, "e") || !strcmp(name, "forceescape")) return html_escape(st, v);
    if (!strcmp(name, "trim")) {
        jv s = need_str(st, v);
        jv chars = ARG("chars", 0, jv_none());
        return jmethod(st, s, "strip", &chars, chars.type == JV_NONE ? 0 : 1, NULL, NULL, 0, at);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "capitalize"))
        return jmethod(st, need_str(st, v), name, NULL, 0, NULL, NULL, 0, at);
    if (!strcmp(name, "title")) return jmethod(st, need_str(st, v), "__jinja_title__", NULL, 0, NULL, NULL, 0, at);
    if (!strcmp(name, "replace")) {
        jv a3[3] = {ARG("old", 0, jv_strn(st, "", 0)), ARG("new", 1, jv_strn(st, "", 0)), ARG("count", 2, jv_none())};
        return jmethod(st, need_str(st, v), "replace", a3, a3[2].type == JV_NONE ? 2 : 3, NULL, NULL, 0, at);
    }
    if (!strcmp(name, "wordcount")) return jmethod(st, need_str(st, v), "__wordcount__", NULL, 0, NULL, NULL, 0, at);
    if (!strcmp(name, "center")) {
        jv w = ARG("width", 0, jv_int(80));
        return jmethod(st, need_str(st, v), "center", &w, 1, NULL, NULL, 0, at);
    }
    if (!strcmp(name, "format")) {
        jv t = jv_list(st, (size_t)nargs);
        if (JSTOP(st)) return t;
        t.u.l->is_tuple = 1;
        for (int i = 0; i < nargs; i++) jv_list_push(st, t, args[i]);
        return jmethod(st, need_str(st, v), "__mod__", &t, 1, NULL, NULL, 0, at);
    }
    if (!strcmp(name, "indent"))
        return do_indent(st, v, ARG("width", 0, jv_int(4)), ARG("first", 1, jv_bool(0)), ARG("blank", 2, jv_bool(0)));
    if (!strcmp(name, "int")) return to_int(st, v, ARG("default", 0, jv_int(0)), ARG("base", 1, jv_int(10)));
    if (!strcmp(name, "float")) {
        jv dflt = ARG("default", 0, jv_float(0));
        if (jv_is_num(v)) return jv_float(jv_num(v));
        if (v.type == JV_STR) {
            char *e;
            double f = strtod(v.u.s->data, &e);
            while (*e == ' ' || *e == '\n' || *e == '\t') e++;
            if (e != v.u.s->data && !*e) return jv_float(f);
        }
        return dflt;
    }
    if (!strcmp(name, "abs")) {
        if (v.type == JV_INT) return v.u.i == INT64_MIN ? jv_float(9223372036854775808.0) : jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        if (v.type == JV_BOOL) return jv_int(v.u.b);
        if (v.type == JV_FLOAT) return jv_float(fabs(v.u.f));
        jfail(st, VLM_E_INVALID, at, "bad operand type for abs(): '%s'", jv_typename(v));
        return jv_none();
    }
    if (!strcmp(name, "round")) return do_round(st, v, ARG("precision", 0, jv_int(0)), ARG("method", 1, jv_none()), at);
    if (!strcmp(name, "list")) return to_list(st, v, at);
    if (!strcmp(name, "first") || !strcmp(name, "last")) {
        jv l = to_list(st, v, at);
        if (JSTOP(st)) return jv_none();
        if (l.u.l->len == 0) return jv_undef(name[0] == 'f' ? "No first item, sequence was empty." : "No last item, sequence was empty.", st);
        return l.u.l->items[name[0] == 'f' ? 0 : l.u.l->len - 1];
    }
    if (!strcmp(name, "reverse")) {
        if (v.type == JV_STR) {
            jv l = to_list(st, v, at);
            struct vlm_buf b = {0};
            for (size_t i = l.u.l->len; i > 0 && !JSTOP(st); i--)
                vlm_buf_append(&b, l.u.l->items[i - 1].u.s->data, l.u.l->items[i - 1].u.s->len);
            jv r = JSTOP(st) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
            vlm_buf_free(&b);
            return r;
        }
        jv l = to_list(st, v, at), out = jv_list(st, 4);
        for (size_t i = JSTOP(st) ? 0 : l.u.l->len; i > 0 && !JSTOP(st); i--) jv_list_push(st, out, l.u.l->items[i - 1]);
        return out;
    }
    if (!strcmp(name, "join")) {
        jv l = to_list(st, v, at);
        jv sep = ARG("d", 0, jv_strn(st, "", 0)), attr = ARG("attribute", 1, jv_none());
        if (JSTOP(st)) return jv_none();
        struct vlm_buf b = {.max = st->lim.max_output};
        for (size_t i = 0; i < l.u.l->len && !JSTOP(st); i++) {
            if (jstep(st, 1, at)) break;
            if (i && sep.type != JV_UNDEF) jv_write_str(st, &b, sep);
            jv x = attr.type != JV_NONE ? get_path(st, l.u.l->items[i], attr, at) : l.u.l->items[i];
            if (!JSTOP(st)) jv_write_str(st, &b, x);
        }
        jv r = JSTOP(st) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
        vlm_buf_free(&b);
        return r;
    }
    if (!strcmp(name, "items")) {
        if (v.type == JV_UNDEF) return jv_list(st, 0);
        if (v.type != JV_DICT && v.type != JV_NS) { jfail(st, VLM_E_INVALID, at, "can only get item pairs from a mapping"); return jv_none(); }
        jv out = jv_list(st, v.u.d->len);
        for (size_t i = 0; i < v.u.d->len && !JSTOP(st); i++) jv_list_push(st, out, pair(st, v.u.d->keys[i], v.u.d->vals[i]));
        return out;
    }
    if (!strcmp(name, "selectattr") || !strcmp(name, "rejectattr"))
        return select_items(st, v, args, nargs, 1, name[0] == 'r', at);
    if (!strcmp(name, "select") || !strcmp(name, "reject")) return select_items(st, v, args, nargs, 0, name[0] == 'r', at);
    if (!strcmp(name, "map")) return do_map(st, v, args, nargs, kwn, kwv, nkw, at);
    if (!strcmp(name, "attr")) {
        jv a = ARG("name", 0, jv_none());
        return a.type == JV_STR ? jgetattr(st, v, a.u.s->data, at) : jv_undef(NULL, NULL);
    }
    if (!strcmp(name, "sort") || !strcmp(name, "dictsort") || !strcmp(name, "unique")) {
        int dictsort = name[0] == 'd', uniq = name[0] == 'u';
        int reverse = jv_truthy(ARG("reverse", uniq ? -1 : dictsort ? 2 : 0, jv_bool(0)));
        int cs = jv_truthy(ARG("case_sensitive", uniq ? 0 : dictsort ? 0 : 1, jv_bool(0)));
        jv attr = ARG("attribute", uniq ? 1 : dictsort ? -1 : 2, jv_none());
        int by_value = dictsort && ARG("by", 1, jv_none()).type == JV_STR && !strcmp(ARG("by", 1, jv_none()).u.s->data, "value");
        jv l;
        if (dictsort) {
            if (v.type != JV_DICT && v.type != JV_NS) { jfail(st, VLM_E_INVALID, at, "you can only sort by either \"key\" or \"value\" of a dict"); return jv_none(); }
            l = jfilter(st, "items", v, NULL, 0, NULL, NULL, 0, at);
        } else {
            l = to_list(st, v, at);
        }
        if (JSTOP(st)) return jv_none();
        size_t n = l.u.l->len;
        jv *keys = ja_alloc(st->arena, (n + 1) * sizeof(jv));
        if (!keys) return oom_none(st, at);
        for (size_t i = 0; i < n && !JSTOP(st); i++) {
            jv x = l.u.l->items[i];
            if (dictsort) x = x.u.l->items[by_value ? 1 : 0];
            else if (attr.type != JV_NONE) x = get_path(st, x, attr, at);
            keys[i] = sort_key(st, x, cs);
        }
        if (JSTOP(st)) return jv_none();
        if (!uniq) return sorted(st, l, keys, reverse, at);
        jv out = jv_list(st, 4);
        for (size_t i = 0; i < n && !JSTOP(st); i++) {
            int seen = 0;
            if (jstep(st, (long)i + 1, at)) break;
            for (size_t k = 0; k < i && !seen; k++) seen = jv_equal(keys[k], keys[i]);
            if (!seen) jv_list_push(st, out, l.u.l->items[i]);
        }
        return out;
    }
    if (!strcmp(name, "batch")) {
        jv l = to_list(st, v, at), cnt = ARG("linecount", 0, jv_int(1)), fill = ARG("fill_with", 1, jv_none());
        if (JSTOP(st)) return jv_none();
        if (cnt.type != JV_INT || cnt.u.i <= 0) { jfail(st, VLM_E_INVALID, at, "batch size must be a positive integer"); return jv_none(); }
        jv out = jv_list(st, 4), row = jv_list(st, 4);
        for (size_t i = 0; i < l.u.l->len && !JSTOP(st); i++) {
            jv_list_push(st, row, l.u.l->items[i]);
            if ((int64_t)row.u.l->len == cnt.u.i) { jv_list_push(st, out, row); row = jv_list(st, 4); }
        }
        if (!JSTOP(st) && row.u.l->len) {
            if (nargs > 1 || nkw)
                while ((int64_t)row.u.l->len < cnt.u.i && !JSTOP(st) && !jstep(st, 1, at)) jv_list_push(st, row, fill);
            jv_list_push(st, out, row);
        }
        return out;
    }
    if (!strcmp(name, "sum")) {
        jv l = to_list(st, v, at), attr = ARG("attribute", 0, jv_none()), acc = ARG("start", 1, jv_int(0));
        for (size_t i = 0; !JSTOP(st) && i < l.u.l->len; i++) {
            jv x = attr.type != JV_NONE ? get_path(st, l.u.l->items[i], attr, at) : l.u.l->items[i];
            if (!jv_is_num(x) || !jv_is_num(acc)) { jfail(st, VLM_E_INVALID, at, "sum needs numbers"); break; }
            int64_t r;
            if (acc.type == JV_FLOAT || x.type == JV_FLOAT) acc = jv_float(jv_num(acc) + jv_num(x));
            else if (__builtin_add_overflow(acc.type == JV_INT ? acc.u.i : acc.u.b, x.type == JV_INT ? x.u.i : x.u.b, &r)) {
                jfail(st, VLM_E_INVALID, at, "integer overflow in sum");
                break;
            } else acc = jv_int(r);
        }
        return acc;
    }
    if (!strcmp(name, "min") || !strcmp(name, "max")) return minmax(st, v, name[1] == 'a', args, nargs, kwn, kwv, nkw, at);
    if (!strcmp(name, "pprint")) {
        struct vlm_buf b = {.max = st->lim.max_output};
        jv r = jv_write_repr(st, &b, v) ? jv_none() : jv_strn(st, b.data ? b.data : "", b.len);
        vlm_buf_free(&b);
        return r;
    }
    jfail(st, VLM_E_INVALID, at, "no filter named '%s'", name);
    return jv_none();
}

/* ---- tests ---- */
static const char *const test_names[] = {
    "defined", "undefined", "none", "string", "mapping", "iterable", "number", "sequence", "boolean",
    "integer", "float", "true", "false", "eq", "equalto", "==", "ne", "!=", "in", "lt", "lessthan", "<",
    "le", "<=", "gt", "greaterthan", ">", "ge", ">=", "divisibleby", "odd", "even", "sameas", "callable",
    "lower", "upper", "escaped", "filter", "test", NULL};

int jtest_exists(const char *name) {
    for (int i = 0; test_names[i]; i++)
        if (!strcmp(name, test_names[i])) return 1;
    return 0;
}

static int cmp_test(struct jstate *st, jv v, jv other, int want, const struct jnode *at) {
    int r = 0;
    if (jv_compare(st, v, other, &r, at)) return 0;
    switch (want) {
    case 0: return r < 0;
    case 1: return r <= 0;
    case 2: return r > 0;
    default: return r >= 0;
    }
}

/* Jinja's tests, dispatched by name like jfilter. */
int jtest(struct jstate *st, const char *name, jv v, jv *args, int nargs, const struct jnode *at) {
    jv a = nargs > 0 ? args[0] : jv_undef(NULL, NULL);
    if (!strcmp(name, "defined")) return v.type != JV_UNDEF;
    if (!strcmp(name, "undefined")) return v.type == JV_UNDEF;
    if (!strcmp(name, "none")) return v.type == JV_NONE;
    if (!strcmp(name, "string")) return v.type == JV_STR;
    if (!strcmp(name, "mapping")) return v.type == JV_DICT;
    if (!strcmp(name, "iterable")) return v.type == JV_STR || v.type == JV_LIST || v.type == JV_DICT || v.type == JV_UNDEF;
    if (!strcmp(name, "sequence")) return v.type == JV_STR || v.type == JV_LIST || v.type == JV_DICT || v.type == JV_UNDEF;
    if (!strcmp(name, "number")) return jv_is_num(v);
    if (!strcmp(name, "boolean")) return v.type == JV_BOOL;
    if (!strcmp(name, "integer")) return v.type == JV_INT;
    if (!strcmp(name, "float")) return v.type == JV_FLOAT;
    if (!strcmp(name, "true")) return v.type == JV_BOOL && v.u.b;
    if (!strcmp(name, "false")) return v.type == JV_BOOL && !v.u.b;
    if (!strcmp(name, "callable")) return v.type == JV_MACRO || v.type == JV_FUNC;
    if (!strcmp(name, "escaped")) return 0;
    if (!strcmp(name, "eq") || !strcmp(name, "equalto") || !strcmp(name, "==")) return jv_equal(v, a);
    if (!strcmp(name, "ne") || !strcmp(name, "!=")) return !jv_equal(v, a);
    if (!strcmp(name, "sameas")) {
        if (v.type != a.type) return 0;
        if (v.type == JV_NONE || v.type == JV_UNDEF) return 1;
        if (v.type == JV_BOOL || v.type == JV_INT || v.type == JV_FLOAT) return jv_equal(v, a);
        return v.u.l == a.u.l;
    }
    if (!strcmp(name, "lt") || !strcmp(name, "lessthan") || !strcmp(name, "<")) return cmp_test(st, v, a, 0, at);
    if (!strcmp(name, "le") || !strcmp(name, "<=")) return cmp_test(st, v, a, 1, at);
    if (!strcmp(name, "gt") || !strcmp(name, "greaterthan") || !strcmp(name, ">")) return cmp_test(st, v, a, 2, at);
    if (!strcmp(name, "ge") || !strcmp(name, ">=")) return cmp_test(st, v, a, 3, at);
    if (!strcmp(name, "in")) {
        jv l;
        if (a.type == JV_STR) {
            if (v.type != JV_STR) { jfail(st, VLM_E_INVALID, at, "'in <string>' requires string as left operand"); return 0; }
            return v.u.s->len == 0 || memmem(a.u.s->data, a.u.s->len, v.u.s->data, v.u.s->len) != NULL;
        }
        if (a.type == JV_DICT) return jv_dict_findv(a, v) != NULL;
        if (jv_iter_list(st, a, &l, at)) return 0;
        for (size_t i = 0; i < l.u.l->len; i++)
            if (jv_equal(v, l.u.l->items[i])) return 1;
        return 0;
    }
    if (!strcmp(name, "divisibleby") || !strcmp(name, "odd") || !strcmp(name, "even")) {
        if (v.type == JV_UNDEF) { jfail(st, VLM_E_INVALID, at, "value is undefined"); return 0; }
        if (!jv_is_num(v) || (name[0] == 'd' && !jv_is_num(a))) { jfail(st, VLM_E_INVALID, at, "%s needs numbers", name); return 0; }
        if (name[0] == 'd') {
            if (jv_num(a) == 0) { jfail(st, VLM_E_INVALID, at, "integer modulo by zero"); return 0; }
            return fmod(jv_num(v), jv_num(a)) == 0;
        }
        int odd = fmod(fabs(jv_num(v)), 2.0) == 1.0;
        return name[0] == 'o' ? odd : fmod(jv_num(v), 2.0) == 0;
    }
    if (!strcmp(name, "lower") || !strcmp(name, "upper")) {   /* str(value).islower() */
        v = v.type == JV_UNDEF ? jv_strn(st, "", 0) : jv_to_str(st, v);
        if (JSTOP(st)) return 0;
        jv r = jmethod(st, v, name[0] == 'l' ? "islower" : "isupper", NULL, 0, NULL, NULL, 0, at);
        return r.type == JV_BOOL && r.u.b;
    }
    if (!strcmp(name, "filter") || !strcmp(name, "test")) {
        if (v.type != JV_STR) return 0;
        if (name[0] == 't') return jtest_exists(v.u.s->data);
        static const char *const filters[] = {"default", "d", "length", "count", "tojson", "safe", "string", "escape",
            "e", "forceescape", "trim", "upper", "lower", "capitalize", "title", "replace", "wordcount", "center",
            "format", "indent", "int", "float", "abs", "round", "list", "first", "last", "reverse", "join", "items",
            "selectattr", "rejectattr", "select", "reject", "map", "attr", "sort", "dictsort", "unique", "batch",
            "sum", "min", "max", "pprint", NULL};
        for (int i = 0; filters[i]; i++)
            if (!strcmp(v.u.s->data, filters[i])) return 1;
        return 0;
    }
    jfail(st, VLM_E_INVALID, at, "no test named '%s'", name);
    return 0;
}
