/* jinja_eval.c — runs a parsed template: statements, scopes (a fresh scope per loop
 * iteration, macro and with-block, as Jinja), expressions with Python semantics, attribute
 * and item access restricted to the values in the context, and the step/depth limits. */
#include "text/jinja.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

struct jmacro {
    const char *name;
    const struct jnlist *body;
    const struct jnlist *params;    /* holders: ->a is the default expression or NULL */
    const char **names;
    struct jframe *closure;
    int flags;                      /* JMACRO_*: what the body refers to */
    int has_caller;
    jv caller;
};

int jfail(struct jstate *st, int code, const struct jnode *at, const char *fmt, ...) {
    if (JSTOP(st)) return st->rc;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st->rc = code;
    if (at) vlm_error_set(st->err, code, "template error at line %d, column %d: %s", at->line, at->col, msg);
    else vlm_error_set(st->err, code, "template error: %s", msg);
    return code;
}

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int jstep(struct jstate *st, long n, const struct jnode *at) {
    if (JSTOP(st)) return st->rc;
    st->steps += n;
    if (st->lim.max_steps > 0 && st->steps > st->lim.max_steps)
        return jfail(st, VLM_E_LIMIT, at, "template step limit (%ld) reached", st->lim.max_steps);
    if (st->lim.max_millis > 0 && (st->steps & 1023) < n && now_ms() - st->t0_ms > st->lim.max_millis)
        return jfail(st, VLM_E_LIMIT, at, "template time limit (%ld ms) reached", st->lim.max_millis);
    return VLM_OK;
}

/* ---- scopes ---- */
static struct jframe *push_frame(struct jstate *st, struct jframe *parent) {
    struct jframe *f = ja_alloc(st->arena, sizeof *f);
    if (!f) { jfail(st, VLM_E_LIMIT, NULL, "template memory limit reached"); return NULL; }
    f->parent = parent;
    f->vars = jv_dict(st, 4);
    return JSTOP(st) ? NULL : f;
}

jv jlookup(struct jstate *st, const char *name) {
    for (struct jframe *f = st->frame; f; f = f->parent) {
        jv *v = jv_dict_find(f->vars, name, strlen(name));
        if (v) return *v;
    }
    if (jglobal_exists(name)) {
        struct jfunc *fn = ja_alloc(st->arena, sizeof *fn);
        if (!fn) { jfail(st, VLM_E_LIMIT, NULL, "template memory limit reached"); return jv_none(); }
        fn->name = name;
        fn->self = jv_none();
        jv r = {.type = JV_FUNC};
        r.u.fn = fn;
        return r;
    }
    char msg[160];
    snprintf(msg, sizeof msg, "'%s' is undefined", name);
    return jv_undef(msg, st);
}

/* A fresh scope for the next loop iteration: the previous one emptied in place unless a macro
 * captured it (keeps long loops from allocating a scope per item). */
static struct jframe *iter_frame(struct jstate *st, struct jframe *prev, struct jframe *outer) {
    if (prev && !prev->captured) {
        prev->vars.u.d->len = 0;
        return prev;
    }
    return push_frame(st, outer);
}

static int set_var(struct jstate *st, const char *name, jv v) {
    return jv_dict_sets(st, st->frame->vars, name, v);
}

static const char *undef_msg(jv v) {
    return v.type == JV_UNDEF && v.u.s ? v.u.s->data : "value is undefined";
}

static jv fail_undef(struct jstate *st, jv v, const struct jnode *at) {
    jfail(st, VLM_E_INVALID, at, "%s", undef_msg(v));
    return jv_none();
}

/* ---- attribute / item access ---- */
static jv bound(struct jstate *st, jv self, const char *name) {
    struct jfunc *fn = ja_alloc(st->arena, sizeof *fn);
    if (!fn) { jfail(st, VLM_E_LIMIT, NULL, "template memory limit reached"); return jv_none(); }
    fn->name = name;
    fn->self = self;
    jv r = {.type = JV_FUNC};
    r.u.fn = fn;
    return r;
}

static jv missing_attr(struct jstate *st, jv obj, const char *name) {
    char msg[200];
    snprintf(msg, sizeof msg, "'%s object' has no attribute '%s'", jv_typename(obj), name);
    return jv_undef(msg, st);
}

static jv loop_attr(struct jstate *st, struct jloop *l, const char *name, jv self) {
    if (!strcmp(name, "index")) return jv_int(l->index0 + 1);
    if (!strcmp(name, "index0")) return jv_int(l->index0);
    if (!strcmp(name, "revindex")) return jv_int(l->length - l->index0);
    if (!strcmp(name, "revindex0")) return jv_int(l->length - l->index0 - 1);
    if (!strcmp(name, "first")) return jv_bool(l->index0 == 0);
    if (!strcmp(name, "last")) return jv_bool(l->index0 == l->length - 1);
    if (!strcmp(name, "length")) return jv_int(l->length);
    if (!strcmp(name, "depth")) return jv_int(l->depth0 + 1);
    if (!strcmp(name, "depth0")) return jv_int(l->depth0);
    if (!strcmp(name, "previtem")) return l->has_prev ? l->prev : jv_undef("there is no previous item", st);
    if (!strcmp(name, "nextitem")) return l->has_next ? l->next : jv_undef("there is no next item", st);
    if (!strcmp(name, "cycle")) return bound(st, self, "cycle");
    return missing_attr(st, self, name);
}

static int unsafe_attr(jv obj, const char *name) {
    static const char *const mut[] = {"append", "extend", "insert", "pop", "remove", "clear", "sort",
                                      "reverse", "update", "setdefault", "popitem", "add", "discard", NULL};
    if (obj.type != JV_LIST && obj.type != JV_DICT) return 0;
    for (int i = 0; mut[i]; i++)
        if (!strcmp(name, mut[i])) return 1;
    return 0;
}

jv jgetattr(struct jstate *st, jv obj, const char *name, const struct jnode *at) {
    if (obj.type == JV_UNDEF) return fail_undef(st, obj, at);
    if (unsafe_attr(obj, name)) {
        jfail(st, VLM_E_FORBIDDEN, at, "access to attribute '%s' of '%s' object is unsafe", name, jv_typename(obj));
        return jv_none();
    }
    if (name[0] == '_') return missing_attr(st, obj, name);   /* the sandbox hides private names */
    switch (obj.type) {
    case JV_DICT:
        if (jmethod_exists(obj, name)) return bound(st, obj, name);
        /* fall through */
    case JV_NS: {
        jv *v = jv_dict_find(obj, name, strlen(name));
        return v ? *v : missing_attr(st, obj, name);
    }
    case JV_LOOP: return loop_attr(st, obj.u.loop, name, obj);
    default:
        if (jmethod_exists(obj, name)) return bound(st, obj, name);
        return missing_attr(st, obj, name);
    }
}

static int norm_index(int64_t i, size_t len, size_t *out) {
    if (i < 0) i += (int64_t)len;
    if (i < 0 || (uint64_t)i >= len) return 0;
    *out = (size_t)i;
    return 1;
}

/* Byte offset of code point k in s (k <= count). */
static size_t u8_offset(const struct jstr *s, size_t k) {
    size_t i = 0;
    while (k > 0 && i < s->len) {
        i++;
        while (i < s->len && ((unsigned char)s->data[i] & 0xC0) == 0x80) i++;
        k--;
    }
    return i;
}

jv jgetitem(struct jstate *st, jv obj, jv key, const struct jnode *at) {
    size_t k;
    if (obj.type == JV_UNDEF) return fail_undef(st, obj, at);
    if (key.type == JV_UNDEF) return jv_undef("subscript is undefined", st);
    switch (obj.type) {
    case JV_DICT: case JV_NS: {
        jv *v = jv_dict_findv(obj, key);
        if (v) return *v;
        if (key.type == JV_STR) return jgetattr(st, obj, key.u.s->data, at);
        return jv_undef("no such key", st);
    }
    case JV_LIST:
        if (key.type == JV_INT || key.type == JV_BOOL) {
            int64_t i = key.type == JV_INT ? key.u.i : key.u.b;
            if (norm_index(i, obj.u.l->len, &k)) return obj.u.l->items[k];
            return jv_undef("list index out of range", st);
        }
        break;
    case JV_STR:
        if (key.type == JV_INT || key.type == JV_BOOL) {
            int64_t i = key.type == JV_INT ? key.u.i : key.u.b;
            if (!norm_index(i, u8_count(obj.u.s->data, obj.u.s->len), &k))
                return jv_undef("string index out of range", st);
            size_t b = u8_offset(obj.u.s, k), w;
            u8_decode(obj.u.s->data + b, obj.u.s->len - b, &w);
            return jv_strn(st, obj.u.s->data + b, w);
        }
        break;
    case JV_LOOP:
        if (key.type == JV_STR) return loop_attr(st, obj.u.loop, key.u.s->data, obj);
        break;
    default: break;
    }
    if (key.type == JV_STR) return jgetattr(st, obj, key.u.s->data, at);
    return jv_undef("no such item", st);
}

/* Python slice index adjustment. */
static void slice_bounds(int64_t len, jv a, jv b, jv c, int64_t *start, int64_t *stop, int64_t *step) {
    *step = c.type == JV_INT ? c.u.i : 1;
    int64_t s = *step;
    if (a.type == JV_INT) {
        *start = a.u.i < 0 ? a.u.i + len : a.u.i;
        if (*start < 0) *start = s < 0 ? -1 : 0;
        else if (*start >= len) *start = s < 0 ? len - 1 : len;
    } else {
        *start = s < 0 ? len - 1 : 0;
    }
    if (b.type == JV_INT) {
        *stop = b.u.i < 0 ? b.u.i + len : b.u.i;
        if (*stop < 0) *stop = s < 0 ? -1 : 0;
        else if (*stop >= len) *stop = s < 0 ? len - 1 : len;
    } else {
        *stop = s < 0 ? -1 : len;
    }
}

static jv do_slice(struct jstate *st, jv obj, jv a, jv b, jv c, const struct jnode *at) {
    jv parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        if (parts[i].type == JV_BOOL) parts[i] = jv_int(parts[i].u.b);
        if (parts[i].type != JV_INT && parts[i].type != JV_NONE && parts[i].type != JV_UNDEF) {
            jfail(st, VLM_E_INVALID, at, "slice indices must be integers or None");
            return jv_none();
        }
    }
    if (parts[2].type == JV_INT && parts[2].u.i == 0) { jfail(st, VLM_E_INVALID, at, "slice step cannot be zero"); return jv_none(); }
    if (obj.type == JV_UNDEF) return fail_undef(st, obj, at);
    int64_t start, stop, step;
    if (obj.type == JV_LIST) {
        slice_bounds((int64_t)obj.u.l->len, parts[0], parts[1], parts[2], &start, &stop, &step);
        jv r = jv_list(st, 4);
        if (JSTOP(st)) return r;
        r.u.l->is_tuple = obj.u.l->is_tuple;
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
            if (jstep(st, 1, at) || jv_list_push(st, r, obj.u.l->items[i])) break;
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        return r;
    }
    if (obj.type == JV_STR) {
        size_t n = u8_count(obj.u.s->data, obj.u.s->len);
        slice_bounds((int64_t)n, parts[0], parts[1], parts[2], &start, &stop, &step);
        if (n == obj.u.s->len && step == 1)
            return jv_strn(st, obj.u.s->data + start, stop > start ? (size_t)(stop - start) : 0);
        struct vlm_buf out = {0};
        size_t *offs = vlm_malloc((n + 1) * sizeof *offs);
        if (!offs) { jfail(st, VLM_E_NOMEM, at, "out of memory"); return jv_none(); }
        for (size_t i = 0, k = 0; k <= n; k++) {
            offs[k] = i;
            if (i < obj.u.s->len) { size_t w; u8_decode(obj.u.s->data + i, obj.u.s->len - i, &w); i += w; }
        }
        for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
            if (jstep(st, 1, at)) break;
            if (vlm_buf_append(&out, obj.u.s->data + offs[i], offs[i + 1] - offs[i])) { jfail(st, VLM_E_NOMEM, at, "out of memory"); break; }
            if (__builtin_add_overflow(i, step, &i)) break;
        }
        vlm_free(offs);
        jv r = JSTOP(st) ? jv_none() : jv_strn(st, out.data ? out.data : "", out.len);
        vlm_buf_free(&out);
        return r;
    }
    jfail(st, VLM_E_INVALID, at, "'%s' object is not subscriptable", jv_typename(obj));
    return jv_none();
}

/* ---- calls ---- */
static int run_body_to_string(struct jstate *st, const struct jnlist *body, struct jframe *frame, jv *out) {
    struct vlm_buf buf = {.max = st->lim.max_output};
    struct vlm_buf *saved_out = st->out;
    struct jframe *saved_frame = st->frame;
    st->out = &buf;
    st->frame = frame;
    jexec_list(st, body);
    st->out = saved_out;
    st->frame = saved_frame;
    if (!JSTOP(st)) *out = jv_strn(st, buf.data ? buf.data : "", buf.len);
    vlm_buf_free(&buf);
    return st->rc;
}

static jv call_macro(struct jstate *st, struct jmacro *m, jv *args, int nargs, const char **kwn, jv *kwv,
                     int nkw, const struct jnode *at) {
    if (st->depth + 1 > st->lim.max_depth) {
        jfail(st, VLM_E_LIMIT, at, "template recursion limit (%d) reached", st->lim.max_depth);
        return jv_none();
    }
    struct jframe *f = push_frame(st, m->closure);
    if (!f) return jv_none();
    int np = m->params ? m->params->n : 0;
    if (nargs > np && !(m->flags & JMACRO_VARARGS)) {
        jfail(st, VLM_E_INVALID, at, "macro '%s' takes not more than %d argument(s)", m->name, np);
        return jv_none();
    }
    if (m->has_caller && !(m->flags & JMACRO_CALLER)) {
        jfail(st, VLM_E_INVALID, at, "macro '%s' was invoked with two values for the special caller argument", m->name);
        return jv_none();
    }
    jv caller = m->has_caller ? m->caller : jv_undef("'caller' is undefined", st);
    jv varargs = jv_list(st, 0), kwargs = jv_dict(st, 0);
    if (JSTOP(st)) return jv_none();
    varargs.u.l->is_tuple = 1;
    for (int i = np; i < nargs && !JSTOP(st); i++) jv_list_push(st, varargs, args[i]);
    for (int k = 0; k < nkw; k++) {
        int found = 0;
        for (int i = 0; i < np; i++) {
            if (!strcmp(kwn[k], m->names[i])) {
                if (i < nargs) { jfail(st, VLM_E_INVALID, at, "macro '%s' got multiple values for argument '%s'", m->name, kwn[k]); return jv_none(); }
                found = 1;
            }
        }
        if (!found && !strcmp(kwn[k], "caller")) { caller = kwv[k]; continue; }
        if (!found && (m->flags & JMACRO_KWARGS)) { jv_dict_sets(st, kwargs, kwn[k], kwv[k]); continue; }
        if (!found) { jfail(st, VLM_E_INVALID, at, "macro '%s' takes no keyword argument '%s'", m->name, kwn[k]); return jv_none(); }
    }
    struct jframe *saved = st->frame;
    st->frame = f;
    st->depth++;
    for (int i = 0; i < np && !JSTOP(st); i++) {
        jv v;
        int have = 0;
        if (i < nargs) { v = args[i]; have = 1; }
        for (int k = 0; k < nkw && !have; k++)
            if (!strcmp(kwn[k], m->names[i])) { v = kwv[k]; have = 1; }
        if (!have) {
            const struct jnode *d = m->params->v[i]->a;
            if (d) v = jeval(st, d);
            else {
                char msg[160];
                snprintf(msg, sizeof msg, "parameter '%s' was not provided", m->names[i]);
                v = jv_undef(msg, st);
            }
        }
        set_var(st, m->names[i], v);
    }
    set_var(st, "caller", caller);
    if (m->flags & JMACRO_VARARGS) set_var(st, "varargs", varargs);
    if (m->flags & JMACRO_KWARGS) set_var(st, "kwargs", kwargs);
    st->frame = saved;
    jv out = jv_none();
    if (!JSTOP(st)) run_body_to_string(st, m->body, f, &out);
    st->depth--;
    return out;
}

jv jcall_value(struct jstate *st, jv fn, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
               const struct jnode *at) {
    if (JSTOP(st)) return jv_none();
    if (fn.type == JV_MACRO) return call_macro(st, fn.u.m, args, nargs, kwn, kwv, nkw, at);
    if (fn.type == JV_FUNC) {
        if (fn.u.fn->self.type == JV_NONE && jglobal_exists(fn.u.fn->name))
            return jglobal_call(st, fn.u.fn->name, args, nargs, kwn, kwv, nkw, at);
        return jmethod(st, fn.u.fn->self, fn.u.fn->name, args, nargs, kwn, kwv, nkw, at);
    }
    if (fn.type == JV_UNDEF) return fail_undef(st, fn, at);
    jfail(st, VLM_E_INVALID, at, "'%s' object is not callable", jv_typename(fn));
    return jv_none();
}

/* Evaluates a node's positional and keyword arguments into arena arrays. */
static int eval_args(struct jstate *st, const struct jnode *n, jv **args, jv **kwv) {
    *args = ja_alloc(st->arena, (size_t)(n->args.n + 1) * sizeof(jv));
    *kwv = ja_alloc(st->arena, (size_t)(n->kwvals.n + 1) * sizeof(jv));
    if (!*args || !*kwv) return jfail(st, VLM_E_LIMIT, n, "template memory limit reached");
    for (int i = 0; i < n->args.n && !JSTOP(st); i++) (*args)[i] = jeval(st, n->args.v[i]);
    for (int i = 0; i < n->kwvals.n && !JSTOP(st); i++) (*kwv)[i] = jeval(st, n->kwvals.v[i]);
    return st->rc;
}

/* ---- operators ---- */
static jv type_error(struct jstate *st, const struct jnode *at, const char *op, jv a, jv b) {
    if (a.type == JV_UNDEF) return fail_undef(st, a, at);
    if (b.type == JV_UNDEF) return fail_undef(st, b, at);
    if (op[0] == '+' && a.type == JV_STR)
        jfail(st, VLM_E_INVALID, at, "can only concatenate str (not \"%s\") to str", jv_typename(b));
    else
        jfail(st, VLM_E_INVALID, at, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_typename(a),
              jv_typename(b));
    return jv_none();
}

static int64_t ival(jv v) { return v.type == JV_INT ? v.u.i : v.u.b; }

static jv repeat(struct jstate *st, jv seq, int64_t times, const struct jnode *at) {
    if (times < 0) times = 0;
    if (seq.type == JV_STR) {
        size_t tot;
        if (!vlm_mul_ok(seq.u.s->len, (size_t)times, &tot) || (st->lim.max_output && tot > st->lim.max_output)) {
            jfail(st, VLM_E_LIMIT, at, "string repetition past the output limit");
            return jv_none();
        }
        char *buf = ja_alloc(st->arena, tot + 1);
        if (!buf) { jfail(st, VLM_E_LIMIT, at, "template memory limit reached"); return jv_none(); }
        for (int64_t i = 0; i < times; i++) memcpy(buf + (size_t)i * seq.u.s->len, seq.u.s->data, seq.u.s->len);
        return jv_strn(st, buf, tot);
    }
    jv r = jv_list(st, 4);
    if (JSTOP(st)) return r;
    r.u.l->is_tuple = seq.u.l->is_tuple;
    for (int64_t i = 0; i < times && !JSTOP(st); i++) {
        if (jstep(st, (long)seq.u.l->len + 1, at)) break;
        for (size_t k = 0; k < seq.u.l->len && !JSTOP(st); k++) jv_list_push(st, r, seq.u.l->items[k]);
    }
    return r;
}

static jv concat2(struct jstate *st, jv a, jv b) {
    size_t tot;
    if (!vlm_add_ok(a.u.s->len, b.u.s->len, &tot)) { jfail(st, VLM_E_LIMIT, NULL, "string too long"); return jv_none(); }
    jv r = jv_strn(st, NULL, 0);
    struct jstr *s = ja_alloc(st->arena, sizeof *s + tot + 1);
    if (!s) { jfail(st, VLM_E_LIMIT, NULL, "template memory limit reached"); return r; }
    memcpy(s->data, a.u.s->data, a.u.s->len);
    memcpy(s->data + a.u.s->len, b.u.s->data, b.u.s->len);
    s->len = tot;
    s->data[tot] = 0;
    r.type = JV_STR;
    r.u.s = s;
    return r;
}

static jv arith(struct jstate *st, int op, jv a, jv b, const struct jnode *at) {
    static const char *const sym[] = {"+", "-", "*", "/", "//", "%", "**", "~"};
    int ints = (a.type == JV_INT || a.type == JV_BOOL) && (b.type == JV_INT || b.type == JV_BOOL);
    int nums = jv_is_num(a) && jv_is_num(b);
    int64_t r;
    switch (op) {
    case OP_CONCAT: {
        jv sa = a.type == JV_UNDEF ? jv_strn(st, "", 0) : jv_to_str(st, a);
        jv sb = b.type == JV_UNDEF ? jv_strn(st, "", 0) : jv_to_str(st, b);
        return JSTOP(st) ? jv_none() : concat2(st, sa, sb);
    }
    case OP_ADD:
        if (ints) { if (__builtin_add_overflow(ival(a), ival(b), &r)) break; return jv_int(r); }
        if (nums) return jv_float(jv_num(a) + jv_num(b));
        if (a.type == JV_STR && b.type == JV_STR) return concat2(st, a, b);
        if (a.type == JV_LIST && b.type == JV_LIST && a.u.l->is_tuple == b.u.l->is_tuple) {
            jv l = jv_list(st, a.u.l->len + b.u.l->len);
            if (JSTOP(st) || jstep(st, (long)(a.u.l->len + b.u.l->len), at)) return jv_none();
            l.u.l->is_tuple = a.u.l->is_tuple;
            for (size_t i = 0; i < a.u.l->len; i++) jv_list_push(st, l, a.u.l->items[i]);
            for (size_t i = 0; i < b.u.l->len; i++) jv_list_push(st, l, b.u.l->items[i]);
            return l;
        }
        return type_error(st, at, sym[op], a, b);
    case OP_SUB:
        if (ints) { if (__builtin_sub_overflow(ival(a), ival(b), &r)) break; return jv_int(r); }
        if (nums) return jv_float(jv_num(a) - jv_num(b));
        return type_error(st, at, sym[op], a, b);
    case OP_MUL:
        if (ints) { if (__builtin_mul_overflow(ival(a), ival(b), &r)) break; return jv_int(r); }
        if (nums) return jv_float(jv_num(a) * jv_num(b));
        if ((a.type == JV_STR || a.type == JV_LIST) && (b.type == JV_INT || b.type == JV_BOOL)) return repeat(st, a, ival(b), at);
        if ((b.type == JV_STR || b.type == JV_LIST) && (a.type == JV_INT || a.type == JV_BOOL)) return repeat(st, b, ival(a), at);
        return type_error(st, at, sym[op], a, b);
    case OP_DIV:
        if (!nums) return type_error(st, at, sym[op], a, b);
        if (jv_num(b) == 0) { jfail(st, VLM_E_INVALID, at, "division by zero"); return jv_none(); }
        return jv_float(jv_num(a) / jv_num(b));
    case OP_FLOORDIV: case OP_MOD:
        if (!nums) {
            if (op == OP_MOD && a.type == JV_STR) return jmethod(st, a, "__mod__", &b, 1, NULL, NULL, 0, at);
            return type_error(st, at, sym[op], a, b);
        }
        if (jv_num(b) == 0) {
            jfail(st, VLM_E_INVALID, at, op == OP_MOD ? "integer modulo by zero" : "integer division or modulo by zero");
            return jv_none();
        }
        if (ints) {
            int64_t x = ival(a), y = ival(b);
            if (x == INT64_MIN && y == -1) break;
            int64_t q = x / y, m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) { q--; m += y; }
            return jv_int(op == OP_MOD ? m : q);
        } else {
            double x = jv_num(a), y = jv_num(b), m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            if (m == 0) m = copysign(0.0, y);   /* Python: the sign of the divisor */
            return jv_float(op == OP_MOD ? m : floor(x / y));
        }
    case OP_POW:
        if (!nums) return type_error(st, at, sym[op], a, b);
        if (ints && ival(b) >= 0) {
            int64_t base = ival(a), e = ival(b), acc = 1;
            if (base == 0 || base == 1) return jv_int(e == 0 ? 1 : base);
            if (base == -1) return jv_int(e % 2 ? -1 : 1);
            for (; e > 0; e--)   /* |base| >= 2 overflows within 63 steps */
                if (__builtin_mul_overflow(acc, base, &acc)) { jfail(st, VLM_E_INVALID, at, "integer overflow"); return jv_none(); }
            return jv_int(acc);
        }
        return jv_float(pow(jv_num(a), jv_num(b)));
    }
    jfail(st, VLM_E_INVALID, at, "integer overflow in '%s'", sym[op]);
    return jv_none();
}

static int contains(struct jstate *st, jv item, jv cont, const struct jnode *at) {
    switch (cont.type) {
    case JV_STR:
        if (item.type != JV_STR) {
            jfail(st, VLM_E_INVALID, at, "'in <string>' requires string as left operand, not %s", jv_typename(item));
            return 0;
        }
        return memmem(cont.u.s->data, cont.u.s->len, item.u.s->data, item.u.s->len) != NULL || item.u.s->len == 0;
    case JV_LIST:
        for (size_t i = 0; i < cont.u.l->len; i++)
            if (jv_equal(item, cont.u.l->items[i])) return 1;
        return 0;
    case JV_DICT: case JV_NS: return jv_dict_findv(cont, item) != NULL;
    case JV_UNDEF: return 0;
    default:
        jfail(st, VLM_E_INVALID, at, "argument of type '%s' is not iterable", jv_typename(cont));
        return 0;
    }
}

static int compare_op(struct jstate *st, int op, jv a, jv b, const struct jnode *at) {
    int c = 0;
    switch (op) {
    case OP_EQ: return jv_equal(a, b);
    case OP_NE: return !jv_equal(a, b);
    case OP_IN: return contains(st, a, b, at);
    case OP_NOTIN: return !contains(st, a, b, at);
    default:
        if (a.type == JV_UNDEF) { fail_undef(st, a, at); return 0; }
        if (b.type == JV_UNDEF) { fail_undef(st, b, at); return 0; }
        if (jv_compare(st, a, b, &c, at)) return 0;
        return op == OP_LT ? c < 0 : op == OP_LE ? c <= 0 : op == OP_GT ? c > 0 : c >= 0;
    }
}

/* ---- expressions ---- */
static jv eval_test(struct jstate *st, const struct jnode *n) {
    jv v = jeval(st, n->a);
    jv *args, *kwv;
    if (JSTOP(st) || eval_args(st, n, &args, &kwv)) return jv_none();
    if (!jtest_exists(n->name)) {
        jfail(st, VLM_E_INVALID, n, "no test named '%s'", n->name);
        return jv_none();
    }
    int r = jtest(st, n->name, v, args, n->args.n, n);
    return jv_bool(n->negated ? !r : r);
}

static jv eval_filter(struct jstate *st, const struct jnode *n) {
    jv v = jeval(st, n->a);
    jv *args, *kwv;
    if (JSTOP(st) || eval_args(st, n, &args, &kwv)) return jv_none();
    return jfilter(st, n->name, v, args, n->args.n, n->kwnames, kwv, n->kwvals.n, n);
}

static jv eval_call(struct jstate *st, const struct jnode *n) {
    jv fn = jeval(st, n->a);
    jv *args, *kwv;
    if (JSTOP(st) || eval_args(st, n, &args, &kwv)) return jv_none();
    return jcall_value(st, fn, args, n->args.n, n->kwnames, kwv, n->kwvals.n, n);
}

static jv eval_cmp(struct jstate *st, const struct jnode *n) {
    jv left = jeval(st, n->args.v[0]);
    for (int i = 1; i < n->args.n && !JSTOP(st); i++) {
        jv right = jeval(st, n->args.v[i]);
        if (JSTOP(st)) break;
        if (!compare_op(st, n->ops[i - 1], left, right, n)) return jv_bool(0);
        left = right;
    }
    return jv_bool(!JSTOP(st));
}

static jv eval_seq(struct jstate *st, const struct jnode *n) {
    if (n->kind == E_DICT) {
        jv d = jv_dict(st, (size_t)n->args.n);
        for (int i = 0; i < n->args.n && !JSTOP(st); i++) {
            jv k = jeval(st, n->args.v[i]);
            jv v = jeval(st, n->kwvals.v[i]);
            if (!JSTOP(st)) jv_dict_set(st, d, k, v);
        }
        return d;
    }
    jv l = jv_list(st, (size_t)n->args.n);
    if (JSTOP(st)) return l;
    l.u.l->is_tuple = n->kind == E_TUPLE;
    for (int i = 0; i < n->args.n && !JSTOP(st); i++) {
        jv v = jeval(st, n->args.v[i]);
        if (!JSTOP(st)) jv_list_push(st, l, v);
    }
    return l;
}

jv jeval(struct jstate *st, const struct jnode *n) {
    if (JSTOP(st) || !n) return jv_none();
    if (jstep(st, 1, n)) return jv_none();
    switch (n->kind) {
    case E_CONST: return n->negated == 2 ? st->hole : n->val;
    case E_NAME: return jlookup(st, n->name);
    case E_ATTR: return jgetattr(st, jeval(st, n->a), n->name, n);
    case E_ITEM: {
        jv obj = jeval(st, n->a);
        jv key = jeval(st, n->b);
        return JSTOP(st) ? jv_none() : jgetitem(st, obj, key, n);
    }
    case E_SLICE: {
        jv obj = jeval(st, n->a);
        jv a = n->b ? jeval(st, n->b) : jv_none(), b = n->c ? jeval(st, n->c) : jv_none();
        jv c = n->d ? jeval(st, n->d) : jv_none();
        return JSTOP(st) ? jv_none() : do_slice(st, obj, a, b, c, n);
    }
    case E_CALL: return eval_call(st, n);
    case E_FILTER: return eval_filter(st, n);
    case E_TEST: return eval_test(st, n);
    case E_BIN: {
        jv a = jeval(st, n->a);
        jv b = jeval(st, n->b);
        return JSTOP(st) ? jv_none() : arith(st, n->op, a, b, n);
    }
    case E_NEG: case E_POS: {
        jv a = jeval(st, n->a);
        if (JSTOP(st)) return a;
        if (a.type == JV_BOOL) a = jv_int(a.u.b);
        if (a.type == JV_INT) return n->kind == E_POS ? a : a.u.i == INT64_MIN ? jv_float(-(double)a.u.i) : jv_int(-a.u.i);
        if (a.type == JV_FLOAT) return n->kind == E_POS ? a : jv_float(-a.u.f);
        if (a.type == JV_UNDEF) return fail_undef(st, a, n);
        jfail(st, VLM_E_INVALID, n, "bad operand type for unary %s: '%s'", n->kind == E_POS ? "+" : "-", jv_typename(a));
        return jv_none();
    }
    case E_AND: { jv a = jeval(st, n->a); return jv_truthy(a) ? jeval(st, n->b) : a; }
    case E_OR: { jv a = jeval(st, n->a); return jv_truthy(a) ? a : jeval(st, n->b); }
    case E_NOT: return jv_bool(!jv_truthy(jeval(st, n->a)));
    case E_COND:
        if (jv_truthy(jeval(st, n->a))) return jeval(st, n->b);
        return n->c ? jeval(st, n->c) : jv_undef("the inline if-expression evaluated to false and no else section was defined", st);
    case E_LIST: case E_TUPLE: case E_DICT: return eval_seq(st, n);
    case E_CMP: return eval_cmp(st, n);
    default:
        jfail(st, VLM_E_INTERNAL, n, "unknown expression kind %d", n->kind);
        return jv_none();
    }
}

/* ---- statements ---- */
static int output(struct jstate *st, jv v, const struct jnode *n) {
    if (v.type == JV_STR) {
        int rc = vlm_buf_append(st->out, v.u.s->data, v.u.s->len);
        if (rc) return jfail(st, rc == VLM_E_TOO_LARGE ? VLM_E_LIMIT : rc, n,
                             rc == VLM_E_TOO_LARGE ? "template output limit reached" : "out of memory");
        return VLM_OK;
    }
    return jv_write_str(st, st->out, v);
}

static int assign(struct jstate *st, const struct jnode *target, jv v, const struct jnode *at) {
    if (target->kind == E_NAME) return set_var(st, target->name, v);
    if (target->kind == E_ATTR) {
        jv ns = jlookup(st, target->a->name);
        if (ns.type != JV_NS) return jfail(st, VLM_E_INVALID, at, "cannot assign attribute on non-namespace object");
        if (target->name[0] == '_')
            return jfail(st, VLM_E_FORBIDDEN, at, "chat templates cannot store underscore-prefixed attributes on a namespace");
        return jv_dict_sets(st, ns, target->name, v);
    }
    /* tuple of names */
    jv seq;
    if (jv_iter_list(st, v, &seq, at)) return st->rc;
    if ((int)seq.u.l->len != target->args.n)
        return jfail(st, VLM_E_INVALID, at, "%s values to unpack (expected %d, got %zu)",
                     (int)seq.u.l->len > target->args.n ? "too many" : "not enough", target->args.n, seq.u.l->len);
    for (int i = 0; i < target->args.n && !JSTOP(st); i++) set_var(st, target->args.v[i]->name, seq.u.l->items[i]);
    return st->rc;
}

static int exec_for(struct jstate *st, const struct jnode *n) {
    jv it = jeval(st, n->b), items;
    if (JSTOP(st) || jv_iter_list(st, it, &items, n)) return st->rc;
    struct jframe *outer = st->frame;
    if (n->c) {   /* the loop filter sees each item bound to the target, before `loop` exists */
        jv kept = jv_list(st, items.u.l->len);
        struct jframe *f = NULL;
        for (size_t i = 0; i < items.u.l->len && !JSTOP(st); i++) {
            st->frame = f = iter_frame(st, f, outer);
            if (!st->frame || jstep(st, 1, n) || assign(st, n->a, items.u.l->items[i], n)) break;
            if (jv_truthy(jeval(st, n->c))) jv_list_push(st, kept, items.u.l->items[i]);
        }
        st->frame = outer;
        items = kept;
        if (JSTOP(st)) return st->rc;
    }
    struct jloop *lp = ja_alloc(st->arena, sizeof *lp);
    if (!lp) return jfail(st, VLM_E_LIMIT, n, "template memory limit reached");
    jv loopv = {.type = JV_LOOP};
    loopv.u.loop = lp;
    lp->depth0 = 0;   /* depth counts recursive loops only, which are not supported */
    lp->length = (int64_t)items.u.l->len;
    struct jframe *f = NULL;
    for (size_t i = 0; i < items.u.l->len && !JSTOP(st); i++) {
        if (jstep(st, 1, n)) break;
        lp->index0 = (int64_t)i;
        lp->has_prev = i > 0;
        lp->has_next = i + 1 < items.u.l->len;
        if (lp->has_prev) lp->prev = items.u.l->items[i - 1];
        if (lp->has_next) lp->next = items.u.l->items[i + 1];
        st->frame = f = iter_frame(st, f, outer);
        if (!st->frame || set_var(st, "loop", loopv) || assign(st, n->a, items.u.l->items[i], n)) break;
        jexec_list(st, &n->body);
        st->frame = outer;
        if (st->loopctl == 1) { st->loopctl = 0; break; }
        st->loopctl = 0;
    }
    st->frame = outer;
    if (!JSTOP(st) && items.u.l->len == 0 && n->orelse.n) jexec_list(st, &n->orelse);
    return st->rc;
}

static jv make_macro(struct jstate *st, const struct jnode *n, const char *name) {
    struct jmacro *m = ja_alloc(st->arena, sizeof *m);
    jv v = {.type = JV_MACRO};
    if (!m) { jfail(st, VLM_E_LIMIT, n, "template memory limit reached"); return jv_none(); }
    m->name = name;
    m->body = &n->body;
    m->params = &n->args;
    m->names = n->kwnames;
    m->flags = n->op;
    m->closure = st->frame;
    for (struct jframe *f = st->frame; f; f = f->parent) f->captured = 1;
    v.u.m = m;
    return v;
}

/* One statement. A switch over the statement kinds; the longer ones live in their own functions. */
static int exec_node(struct jstate *st, const struct jnode *n) {
    if (jstep(st, 1, n)) return st->rc;
    switch (n->kind) {
    case N_TEXT: {
        int rc = vlm_buf_append(st->out, n->name, (size_t)n->val.u.i);
        if (rc) return jfail(st, rc == VLM_E_TOO_LARGE ? VLM_E_LIMIT : rc, n,
                             rc == VLM_E_TOO_LARGE ? "template output limit reached" : "out of memory");
        return VLM_OK;
    }
    case N_OUT: {
        jv v = jeval(st, n->a);
        return JSTOP(st) ? st->rc : output(st, v, n);
    }
    case N_IF:
        if (jv_truthy(jeval(st, n->a))) return JSTOP(st) ? st->rc : jexec_list(st, &n->body);
        return JSTOP(st) ? st->rc : jexec_list(st, &n->orelse);
    case N_FOR: return exec_for(st, n);
    case N_SET: {
        jv v = jeval(st, n->b);
        return JSTOP(st) ? st->rc : assign(st, n->a, v, n);
    }
    case N_SETBLOCK: case N_FILTERBLOCK: {
        jv text = jv_none();
        if (run_body_to_string(st, &n->body, st->frame, &text)) return st->rc;
        if (n->b) {
            jv saved = st->hole;
            st->hole = text;
            text = jeval(st, n->b);
            st->hole = saved;
        }
        if (JSTOP(st)) return st->rc;
        return n->kind == N_SETBLOCK ? assign(st, n->a, text, n) : output(st, text, n);
    }
    case N_MACRO: return set_var(st, n->name, make_macro(st, n, n->name));
    case N_CALLBLOCK: {
        const struct jnode *call = n->a;
        jv caller = make_macro(st, n, "caller");
        jv fn = jeval(st, call->a);
        jv *args, *kwv;
        if (JSTOP(st) || eval_args(st, call, &args, &kwv)) return st->rc;
        if (fn.type != JV_MACRO) return jfail(st, VLM_E_INVALID, n, "{%% call %%} needs a macro");
        struct jmacro copy = *fn.u.m;
        copy.has_caller = 1;
        copy.caller = caller;
        jv r = call_macro(st, &copy, args, call->args.n, call->kwnames, kwv, call->kwvals.n, n);
        return JSTOP(st) ? st->rc : output(st, r, n);
    }
    case N_BREAK: st->loopctl = 1; return VLM_OK;
    case N_CONTINUE: st->loopctl = 2; return VLM_OK;
    case N_GENERATION: return jexec_list(st, &n->body);
    case N_WITH: {
        struct jframe *outer = st->frame, *f = push_frame(st, outer);
        if (!f) return st->rc;
        for (int i = 0; i < n->kwvals.n && !JSTOP(st); i++) {
            jv v = jeval(st, n->kwvals.v[i]);   /* evaluated in the outer scope */
            if (!JSTOP(st)) jv_dict_sets(st, f->vars, n->kwnames[i], v);
        }
        st->frame = f;
        jexec_list(st, &n->body);
        st->frame = outer;
        return st->rc;
    }
    default: return jfail(st, VLM_E_INTERNAL, n, "unknown statement kind %d", n->kind);
    }
}

int jexec_list(struct jstate *st, const struct jnlist *body) {
    for (int i = 0; i < body->n && !JSTOP(st); i++) {
        exec_node(st, body->v[i]);
        if (st->loopctl) break;
    }
    return st->rc;
}
