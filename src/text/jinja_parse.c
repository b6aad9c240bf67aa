/* jinja_parse.c — tokens to a syntax tree, following Jinja's grammar and operator precedence
 * (filters and tests bind tighter than arithmetic; `a if c else b` lowest). Errors name the
 * line and column; nesting is capped so hostile input cannot exhaust the stack. */
#include "text/jinja.h"

#include <stdio.h>
#include <string.h>

#define PARSE_MAX_DEPTH 200

struct parser {
    struct jtoks *t;
    int pos;
    struct jarena *a;
    struct vlm_error *err;
    int rc;
    int depth, loops, macros;
};

static struct jtok *cur(struct parser *p) { return &p->t->v[p->pos]; }
static struct jtok *peek(struct parser *p, int k) {
    int i = p->pos + k;
    return &p->t->v[i < p->t->n ? i : p->t->n - 1];
}
static void advance(struct parser *p) { if (p->pos < p->t->n - 1) p->pos++; }

static const char *tokdesc(const struct jtok *t, char *buf, size_t n) {
    switch (t->type) {
    case T_EOF: return "end of template";
    case T_DATA: return "template data";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "'}}'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "'%}'";
    case T_STRING: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    default: snprintf(buf, n, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), t->s); return buf;
    }
}

static void *perr(struct parser *p, const struct jtok *t, const char *fmt, const char *arg) {
    if (p->rc) return NULL;
    char msg[256], d[64];
    snprintf(msg, sizeof msg, fmt, arg ? arg : tokdesc(t, d, sizeof d));
    p->rc = vlm_error_set(p->err, VLM_E_FORMAT, "template syntax error at line %d, column %d: %s",
                          t->line, t->col, msg);
    return NULL;
}

static int is_op(const struct jtok *t, const char *op) {
    return t->type == T_OP && t->len == strlen(op) && !memcmp(t->s, op, t->len);
}
static int is_name(const struct jtok *t, const char *nm) {
    return t->type == T_NAME && t->len == strlen(nm) && !memcmp(t->s, nm, t->len);
}
static int accept_op(struct parser *p, const char *op) {
    if (!is_op(cur(p), op)) return 0;
    advance(p);
    return 1;
}
static int accept_name(struct parser *p, const char *nm) {
    if (!is_name(cur(p), nm)) return 0;
    advance(p);
    return 1;
}
static int expect_op(struct parser *p, const char *op) {
    if (accept_op(p, op)) return 1;
    char m[64];
    snprintf(m, sizeof m, "expected '%s', got %%s", op);
    perr(p, cur(p), m, NULL);
    return 0;
}
static int expect_type(struct parser *p, int type, const char *what) {
    if (cur(p)->type == type) { advance(p); return 1; }
    char m[96];
    snprintf(m, sizeof m, "expected %s, got %%s", what);
    perr(p, cur(p), m, NULL);
    return 0;
}

static struct jnode *mknode(struct parser *p, int kind, const struct jtok *at) {
    struct jnode *n = ja_alloc(p->a, sizeof *n);
    if (!n) { if (!p->rc) p->rc = vlm_error_set(p->err, VLM_E_NOMEM, "template: out of memory"); return NULL; }
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

static int nl_push(struct parser *p, struct jnlist *l, struct jnode *n) {
    if (!n) return 0;
    if (l->n == l->cap) {
        int nc = l->cap ? l->cap * 2 : 4;
        struct jnode **nv = ja_alloc(p->a, (size_t)nc * sizeof *nv);
        if (!nv) { if (!p->rc) p->rc = vlm_error_set(p->err, VLM_E_NOMEM, "template: out of memory"); return 0; }
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof *nv);
        l->v = nv;
        l->cap = nc;
    }
    l->v[l->n++] = n;
    return 1;
}

static const char *tokname(struct parser *p, const struct jtok *t) {
    return ja_strndup(p->a, t->s, t->len);
}

static struct jnode *parse_expression(struct parser *p, int with_condexpr);
static struct jnode *parse_tuple(struct parser *p, int simplified, int with_condexpr, int explicit_parens,
                                 const char *extra_end);
static struct jnode *parse_unary(struct parser *p, int with_filter);
static struct jnode *parse_primary(struct parser *p);

static int enter(struct parser *p) {
    if (++p->depth > PARSE_MAX_DEPTH) { perr(p, cur(p), "template nested too deeply near %s", NULL); return 0; }
    return 1;
}

/* ( args, kw=args ) — the opening paren is current. */
static int parse_call_args(struct parser *p, struct jnode *n) {
    const char **names = NULL;
    int nk = 0, capk = 0;
    if (!expect_op(p, "(")) return 0;
    while (!is_op(cur(p), ")") && !p->rc) {
        if (n->args.n + n->kwvals.n && !expect_op(p, ",")) return 0;
        if (is_op(cur(p), ")")) break;
        if (is_op(cur(p), "*") || is_op(cur(p), "**")) { perr(p, cur(p), "*args and **kwargs calls are not supported", ""); return 0; }
        if (cur(p)->type == T_NAME && is_op(peek(p, 1), "=")) {
            if (nk == capk) {
                capk = capk ? capk * 2 : 4;
                const char **nn = ja_alloc(p->a, (size_t)capk * sizeof *nn);
                if (!nn) { p->rc = vlm_error_set(p->err, VLM_E_NOMEM, "template: out of memory"); return 0; }
                if (nk) memcpy(nn, names, (size_t)nk * sizeof *nn);
                names = nn;
            }
            names[nk++] = tokname(p, cur(p));
            advance(p);
            advance(p);
            if (!nl_push(p, &n->kwvals, parse_expression(p, 1))) return 0;
        } else {
            if (n->kwvals.n) { perr(p, cur(p), "positional argument follows keyword argument", ""); return 0; }
            if (!nl_push(p, &n->args, parse_expression(p, 1))) return 0;
        }
    }
    n->kwnames = names;
    return !p->rc && expect_op(p, ")");
}

static struct jnode *parse_subscript(struct parser *p, struct jnode *obj, const struct jtok *at) {
    struct jnode *parts[3] = {NULL, NULL, NULL};
    int is_slice = 0, k = 0;
    if (!is_op(cur(p), ":")) parts[0] = parse_expression(p, 1);
    while (!p->rc && k < 2 && accept_op(p, ":")) {
        is_slice = 1;
        k++;
        if (!is_op(cur(p), ":") && !is_op(cur(p), "]")) parts[k] = parse_expression(p, 1);
    }
    if (p->rc || !expect_op(p, "]")) return NULL;
    struct jnode *n = mknode(p, is_slice ? E_SLICE : E_ITEM, at);
    if (!n) return NULL;
    n->a = obj;
    n->b = parts[0];
    if (is_slice) { n->c = parts[1]; n->d = parts[2]; }
    if (!is_slice && !parts[0]) return perr(p, at, "expected an expression in subscript", "");
    return n;
}

static struct jnode *parse_postfix(struct parser *p, struct jnode *n) {
    while (n && !p->rc) {
        struct jtok *t = cur(p);
        if (is_op(t, ".")) {
            advance(p);
            struct jtok *nm = cur(p);
            if (nm->type == T_NAME) {
                struct jnode *x = mknode(p, E_ATTR, t);
                if (!x) return NULL;
                x->a = n;
                x->name = tokname(p, nm);
                advance(p);
                n = x;
            } else if (nm->type == T_INT) {
                struct jnode *x = mknode(p, E_ITEM, t), *k = mknode(p, E_CONST, nm);
                if (!x || !k) return NULL;
                k->val = jv_int(nm->i);
                x->a = n;
                x->b = k;
                advance(p);
                n = x;
            } else {
                return perr(p, nm, "expected name or number after '.', got %s", NULL);
            }
        } else if (is_op(t, "[")) {
            advance(p);
            n = parse_subscript(p, n, t);
        } else if (is_op(t, "(")) {
            struct jnode *x = mknode(p, E_CALL, t);
            if (!x) return NULL;
            x->a = n;
            if (!parse_call_args(p, x)) return NULL;
            n = x;
        } else {
            break;
        }
    }
    return n;
}

static struct jnode *parse_filter_expr(struct parser *p, struct jnode *n) {
    while (n && !p->rc) {
        struct jtok *t = cur(p);
        if (is_op(t, "|")) {
            advance(p);
            struct jtok *nm = cur(p);
            if (nm->type != T_NAME) return perr(p, nm, "expected filter name, got %s", NULL);
            struct jnode *x = mknode(p, E_FILTER, nm);
            if (!x) return NULL;
            x->a = n;
            x->name = tokname(p, nm);
            advance(p);
            if (is_op(cur(p), "(") && !parse_call_args(p, x)) return NULL;
            n = x;
        } else if (is_name(t, "is")) {
            advance(p);
            struct jnode *x = mknode(p, E_TEST, t);
            if (!x) return NULL;
            x->negated = accept_name(p, "not");
            struct jtok *nm = cur(p);
            if (nm->type != T_NAME) return perr(p, nm, "expected test name, got %s", NULL);
            x->name = tokname(p, nm);
            x->a = n;
            advance(p);
            struct jtok *c = cur(p);
            if (is_op(c, "(")) {
                if (!parse_call_args(p, x)) return NULL;
            } else if ((c->type == T_NAME || c->type == T_STRING || c->type == T_INT || c->type == T_FLOAT ||
                        is_op(c, "[") || is_op(c, "{")) &&
                       !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
                if (is_name(c, "is")) return perr(p, c, "you cannot chain multiple tests with is", "");
                struct jnode *arg = parse_postfix(p, parse_primary(p));
                if (!nl_push(p, &x->args, arg)) return NULL;
            }
            n = x;
        } else if (is_op(t, "(")) {
            struct jnode *x = mknode(p, E_CALL, t);
            if (!x) return NULL;
            x->a = n;
            if (!parse_call_args(p, x)) return NULL;
            n = x;
        } else {
            break;
        }
    }
    return n;
}

static struct jnode *parse_primary(struct parser *p) {
    struct jtok *t = cur(p);
    struct jnode *n = NULL;
    if (!enter(p)) return NULL;
    if (t->type == T_NAME) {
        static const char *const consts[] = {"true", "True", "false", "False", "none", "None"};
        for (int i = 0; i < 6; i++) {
            if (is_name(t, consts[i])) {
                n = mknode(p, E_CONST, t);
                if (n) n->val = i < 4 ? jv_bool(i < 2) : jv_none();
                advance(p);
                p->depth--;
                return n;
            }
        }
        n = mknode(p, E_NAME, t);
        if (n) n->name = tokname(p, t);
        advance(p);
    } else if (t->type == T_STRING) {
        /* adjacent string literals concatenate */
        size_t len = 0;
        int k = 0;
        while (peek(p, k)->type == T_STRING) len += peek(p, k++)->len;
        struct jstr *s = ja_alloc(p->a, sizeof *s + len + 1);
        n = mknode(p, E_CONST, t);
        if (!s || !n) { p->depth--; return NULL; }
        s->len = 0;
        for (int i = 0; i < k; i++) {
            memcpy(s->data + s->len, cur(p)->s, cur(p)->len);
            s->len += cur(p)->len;
            advance(p);
        }
        s->data[s->len] = 0;
        n->val.type = JV_STR;
        n->val.u.s = s;
    } else if (t->type == T_INT || t->type == T_FLOAT) {
        n = mknode(p, E_CONST, t);
        if (n) n->val = t->type == T_INT ? jv_int(t->i) : jv_float(t->f);
        advance(p);
    } else if (is_op(t, "(")) {
        advance(p);
        n = parse_tuple(p, 0, 1, 1, NULL);
        if (n && !expect_op(p, ")")) n = NULL;
    } else if (is_op(t, "[")) {
        advance(p);
        n = mknode(p, E_LIST, t);
        while (n && !p->rc && !is_op(cur(p), "]")) {
            if (n->args.n && !expect_op(p, ",")) break;
            if (is_op(cur(p), "]")) break;
            nl_push(p, &n->args, parse_expression(p, 1));
        }
        if (n && !p->rc) expect_op(p, "]");
    } else if (is_op(t, "{")) {
        advance(p);
        n = mknode(p, E_DICT, t);
        while (n && !p->rc && !is_op(cur(p), "}")) {
            if (n->args.n && !expect_op(p, ",")) break;
            if (is_op(cur(p), "}")) break;
            if (!nl_push(p, &n->args, parse_expression(p, 1))) break;
            if (!expect_op(p, ":")) break;
            nl_push(p, &n->kwvals, parse_expression(p, 1));
        }
        if (n && !p->rc) expect_op(p, "}");
    } else {
        perr(p, t, "unexpected %s", NULL);
    }
    p->depth--;
    return p->rc ? NULL : n;
}

static struct jnode *parse_unary(struct parser *p, int with_filter) {
    struct jtok *t = cur(p);
    struct jnode *n;
    if (!enter(p)) return NULL;
    if (is_op(t, "-") || is_op(t, "+")) {
        advance(p);
        n = mknode(p, is_op(t, "-") ? E_NEG : E_POS, t);
        if (n) n->a = parse_unary(p, 0);
    } else {
        n = parse_primary(p);
    }
    n = parse_postfix(p, n);
    if (with_filter) n = parse_filter_expr(p, n);
    p->depth--;
    return p->rc ? NULL : n;
}

static struct jnode *binop(struct parser *p, int op, struct jnode *l, struct jnode *r, const struct jtok *t) {
    if (!l || !r) return NULL;
    struct jnode *n = mknode(p, E_BIN, t);
    if (n) { n->op = op; n->a = l; n->b = r; }
    return n;
}

static struct jnode *parse_pow(struct parser *p) {
    struct jnode *l = parse_unary(p, 1);
    while (l && is_op(cur(p), "**")) {
        struct jtok *t = cur(p);
        advance(p);
        l = binop(p, OP_POW, l, parse_unary(p, 1), t);
    }
    return l;
}

static struct jnode *parse_math2(struct parser *p) {
    struct jnode *l = parse_pow(p);
    for (;;) {
        struct jtok *t = cur(p);
        int op = is_op(t, "*") ? OP_MUL : is_op(t, "/") ? OP_DIV : is_op(t, "//") ? OP_FLOORDIV
               : is_op(t, "%") ? OP_MOD : -1;
        if (!l || op < 0) return l;
        advance(p);
        l = binop(p, op, l, parse_pow(p), t);
    }
}

static struct jnode *parse_concat(struct parser *p) {
    struct jnode *l = parse_math2(p);
    while (l && is_op(cur(p), "~")) {
        struct jtok *t = cur(p);
        advance(p);
        l = binop(p, OP_CONCAT, l, parse_math2(p), t);
    }
    return l;
}

static struct jnode *parse_math1(struct parser *p) {
    struct jnode *l = parse_concat(p);
    for (;;) {
        struct jtok *t = cur(p);
        int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
        if (!l || op < 0) return l;
        advance(p);
        l = binop(p, op, l, parse_concat(p), t);
    }
}

static struct jnode *parse_compare(struct parser *p) {
    struct jtok *t0 = cur(p);
    struct jnode *first = parse_math1(p);
    struct jnode *n = NULL;
    int ops[64], nops = 0;
    for (;;) {
        struct jtok *t = cur(p);
        int op = is_op(t, "==") ? OP_EQ : is_op(t, "!=") ? OP_NE : is_op(t, "<") ? OP_LT : is_op(t, "<=") ? OP_LE
               : is_op(t, ">") ? OP_GT : is_op(t, ">=") ? OP_GE : is_name(t, "in") ? OP_IN : -1;
        if (op < 0 && is_name(t, "not") && is_name(peek(p, 1), "in")) { op = OP_NOTIN; advance(p); }
        if (!first || op < 0) break;
        advance(p);
        if (!n) {
            n = mknode(p, E_CMP, t0);
            if (!n || !nl_push(p, &n->args, first)) return NULL;
        }
        if (nops == 64) return perr(p, t, "too many chained comparisons", "");
        ops[nops++] = op;
        if (!nl_push(p, &n->args, parse_math1(p))) return NULL;
    }
    if (!n) return first;
    n->ops = ja_alloc(p->a, (size_t)nops * sizeof(int));
    if (!n->ops) { p->rc = vlm_error_set(p->err, VLM_E_NOMEM, "template: out of memory"); return NULL; }
    memcpy(n->ops, ops, (size_t)nops * sizeof(int));
    return n;
}

static struct jnode *parse_not(struct parser *p) {
    struct jtok *t = cur(p);
    if (is_name(t, "not")) {
        if (!enter(p)) return NULL;
        advance(p);
        struct jnode *n = mknode(p, E_NOT, t);
        if (n) n->a = parse_not(p);
        p->depth--;
        return n && n->a ? n : NULL;
    }
    return parse_compare(p);
}

static struct jnode *parse_and(struct parser *p) {
    struct jnode *l = parse_not(p);
    while (l && is_name(cur(p), "and")) {
        struct jtok *t = cur(p);
        advance(p);
        struct jnode *n = mknode(p, E_AND, t);
        if (!n) return NULL;
        n->a = l;
        n->b = parse_not(p);
        l = n->b ? n : NULL;
    }
    return l;
}

static struct jnode *parse_or(struct parser *p) {
    struct jnode *l = parse_and(p);
    while (l && is_name(cur(p), "or")) {
        struct jtok *t = cur(p);
        advance(p);
        struct jnode *n = mknode(p, E_OR, t);
        if (!n) return NULL;
        n->a = l;
        n->b = parse_and(p);
        l = n->b ? n : NULL;
    }
    return l;
}

static struct jnode *parse_condexpr(struct parser *p) {
    if (!enter(p)) return NULL;
    struct jnode *e1 = parse_or(p);
    while (e1 && is_name(cur(p), "if")) {
        struct jtok *t = cur(p);
        advance(p);
        struct jnode *n = mknode(p, E_COND, t);
        if (!n) break;
        n->a = parse_or(p);      /* condition */
        n->b = e1;               /* value if true */
        if (accept_name(p, "else")) n->c = parse_condexpr(p);
        e1 = p->rc ? NULL : n;
    }
    p->depth--;
    return e1;
}

static struct jnode *parse_expression(struct parser *p, int with_condexpr) {
    return with_condexpr ? parse_condexpr(p) : parse_or(p);
}

static int tuple_end(struct parser *p, const char *extra_end) {
    struct jtok *t = cur(p);
    if (t->type == T_VAR_END || t->type == T_BLOCK_END || t->type == T_EOF || is_op(t, ")")) return 1;
    return extra_end && is_name(t, extra_end);
}

static struct jnode *parse_tuple(struct parser *p, int simplified, int with_condexpr, int explicit_parens,
                                 const char *extra_end) {
    struct jtok *t0 = cur(p);
    struct jnode *items[1] = {NULL};
    struct jnode *tup = NULL;
    int n = 0, is_tuple = 0;
    for (;;) {
        if (n && !expect_op(p, ",")) return NULL;
        if (tuple_end(p, extra_end)) break;
        struct jnode *e = simplified ? parse_primary(p) : parse_expression(p, with_condexpr);
        if (!e) return NULL;
        if (n == 0) items[0] = e;
        else {
            if (!tup) { tup = mknode(p, E_TUPLE, t0); if (!tup || !nl_push(p, &tup->args, items[0])) return NULL; }
            if (!nl_push(p, &tup->args, e)) return NULL;
        }
        n++;
        if (is_op(cur(p), ",")) is_tuple = 1;
        else break;
    }
    if (!is_tuple) {
        if (n) return items[0];
        if (!explicit_parens) return perr(p, cur(p), "expected an expression, got %s", NULL);
    }
    if (!tup) { tup = mknode(p, E_TUPLE, t0); if (tup && n) nl_push(p, &tup->args, items[0]); }
    return tup;
}

/* ---- statements ---- */
static int parse_body(struct parser *p, struct jnlist *body, const char *const *ends, int *which);

static int block_end(struct parser *p) { return expect_type(p, T_BLOCK_END, "end of statement block"); }

static struct jnode *parse_target(struct parser *p, const char *extra_end, int with_ns) {
    struct jtok *t = cur(p);
    if (with_ns && t->type == T_NAME && is_op(peek(p, 1), ".") && peek(p, 2)->type == T_NAME) {
        struct jnode *n = mknode(p, E_ATTR, t), *base = mknode(p, E_NAME, t);
        if (!n || !base) return NULL;
        base->name = tokname(p, t);
        n->a = base;
        n->name = tokname(p, peek(p, 2));
        advance(p); advance(p); advance(p);
        return n;
    }
    struct jnode *n = parse_tuple(p, 1, 0, 0, extra_end);
    if (!n) return NULL;
    if (n->kind == E_NAME) return n;
    if (n->kind == E_TUPLE) {
        for (int i = 0; i < n->args.n; i++)
            if (n->args.v[i]->kind != E_NAME) return perr(p, t, "can only assign to names or tuples of names", "");
        return n;
    }
    return perr(p, t, "can't assign to %s", "this expression");
}

static struct jnode *parse_for(struct parser *p, struct jtok *t) {
    struct jnode *n = mknode(p, N_FOR, t);
    if (!n) return NULL;
    n->a = parse_target(p, "in", 0);
    if (!n->a) return NULL;
    if (!accept_name(p, "in")) return perr(p, cur(p), "expected 'in', got %s", NULL);
    n->b = parse_tuple(p, 0, 0, 0, "recursive");
    if (!n->b) return NULL;
    if (accept_name(p, "if")) { n->c = parse_expression(p, 1); if (!n->c) return NULL; }
    if (is_name(cur(p), "recursive")) return perr(p, cur(p), "recursive loops are not supported", "");
    if (!block_end(p)) return NULL;
    static const char *const e1[] = {"endfor", "else", NULL}, *const e2[] = {"endfor", NULL};
    int which;
    p->loops++;
    int ok = parse_body(p, &n->body, e1, &which);
    p->loops--;
    if (!ok) return NULL;
    if (which == 1) {
        if (!block_end(p) || !parse_body(p, &n->orelse, e2, &which)) return NULL;
    }
    return block_end(p) ? n : NULL;
}

static struct jnode *parse_if(struct parser *p, struct jtok *t) {
    struct jnode *n = mknode(p, N_IF, t);
    if (!n) return NULL;
    n->a = parse_tuple(p, 0, 0, 0, NULL);
    if (!n->a || !block_end(p)) return NULL;
    static const char *const e1[] = {"endif", "else", "elif", NULL}, *const e2[] = {"endif", NULL};
    int which;
    if (!parse_body(p, &n->body, e1, &which)) return NULL;
    if (which == 2) {
        struct jtok *et = peek(p, -1);
        struct jnode *sub = parse_if(p, et);
        if (!sub || !nl_push(p, &n->orelse, sub)) return NULL;
        return n;   /* the nested if consumed endif */
    }
    if (which == 1 && (!block_end(p) || !parse_body(p, &n->orelse, e2, &which))) return NULL;
    return block_end(p) ? n : NULL;
}

static struct jnode *parse_set(struct parser *p, struct jtok *t) {
    struct jnode *target = parse_target(p, NULL, 1);
    if (!target) return NULL;
    if (accept_op(p, "=")) {
        struct jnode *n = mknode(p, N_SET, t);
        if (!n) return NULL;
        n->a = target;
        n->b = parse_tuple(p, 0, 1, 0, NULL);
        return n->b && block_end(p) ? n : NULL;
    }
    struct jnode *n = mknode(p, N_SETBLOCK, t);
    if (!n) return NULL;
    n->a = target;
    if (is_op(cur(p), "|")) {
        struct jnode *hole = mknode(p, E_CONST, cur(p));
        if (!hole) return NULL;
        hole->negated = 2;   /* evaluates to the block's rendered text */
        n->b = parse_filter_expr(p, hole);   /* a chain applied to the body text */
        if (!n->b) return NULL;
        n->c = hole;
    }
    static const char *const e[] = {"endset", NULL};
    int which;
    if (!block_end(p) || !parse_body(p, &n->body, e, &which)) return NULL;
    return block_end(p) ? n : NULL;
}

static struct jnode *parse_macro(struct parser *p, struct jtok *t, int is_call) {
    struct jnode *n = mknode(p, is_call ? N_CALLBLOCK : N_MACRO, t);
    if (!n) return NULL;
    if (!is_call) {
        if (cur(p)->type != T_NAME) return perr(p, cur(p), "expected macro name, got %s", NULL);
        n->name = tokname(p, cur(p));
        advance(p);
    }
    /* parameters: names with optional defaults (kwnames[i] = name, args[i] = default or NULL) */
    const char **names = NULL;
    int np = 0;
    if (is_op(cur(p), "(") || !is_call) {
        if (!expect_op(p, "(")) return NULL;
        while (!is_op(cur(p), ")") && !p->rc) {
            if (np && !expect_op(p, ",")) return NULL;
            if (is_op(cur(p), ")")) break;
            if (cur(p)->type != T_NAME) return perr(p, cur(p), "expected parameter name, got %s", NULL);
            const char **nn = ja_alloc(p->a, (size_t)(np + 1) * sizeof *nn);
            if (!nn) return NULL;
            if (np) memcpy(nn, names, (size_t)np * sizeof *nn);
            names = nn;
            names[np++] = tokname(p, cur(p));
            advance(p);
            struct jnode *dflt = NULL;
            if (accept_op(p, "=")) { dflt = parse_expression(p, 1); if (!dflt) return NULL; }
            struct jnode *holder = mknode(p, E_CONST, cur(p));   /* holder->a: default or NULL */
            if (!holder) return NULL;
            holder->a = dflt;
            if (!nl_push(p, &n->args, holder)) return NULL;
        }
        if (!expect_op(p, ")")) return NULL;
    }
    n->kwnames = names;
    if (is_call) {
        n->a = parse_expression(p, 1);
        if (!n->a || n->a->kind != E_CALL) return perr(p, t, "expected a call after 'call'", "");
    }
    static const char *const em[] = {"endmacro", NULL}, *const ec[] = {"endcall", NULL};
    int which, saved = p->loops;
    p->loops = 0;
    p->macros++;
    if (!block_end(p) || !parse_body(p, &n->body, is_call ? ec : em, &which)) return NULL;
    p->macros--;
    p->loops = saved;
    n->op = jinja_macro_flags(n);   /* caller / varargs / kwargs used in the body */
    return block_end(p) ? n : NULL;
}

static struct jnode *parse_statement(struct parser *p) {
    struct jtok *t = cur(p);   /* the statement's name, after '{%' */
    if (t->type != T_NAME) return perr(p, t, "tag name expected, got %s", NULL);
    if (!enter(p)) return NULL;
    struct jnode *n = NULL;
    char nm[32];
    snprintf(nm, sizeof nm, "%.*s", (int)(t->len < 31 ? t->len : 31), t->s);
    advance(p);
    if (!strcmp(nm, "for")) n = parse_for(p, t);
    else if (!strcmp(nm, "if")) n = parse_if(p, t);
    else if (!strcmp(nm, "set")) n = parse_set(p, t);
    else if (!strcmp(nm, "macro")) n = parse_macro(p, t, 0);
    else if (!strcmp(nm, "call")) n = parse_macro(p, t, 1);
    else if (!strcmp(nm, "break") || !strcmp(nm, "continue")) {
        if (!p->loops) perr(p, t, "'%s' outside of a loop", nm);
        else if ((n = mknode(p, nm[0] == 'b' ? N_BREAK : N_CONTINUE, t)) && !block_end(p)) n = NULL;
    } else if (!strcmp(nm, "filter")) {
        n = mknode(p, N_FILTERBLOCK, t);
        struct jnode *hole = n ? mknode(p, E_CONST, t) : NULL;
        if (hole) {
            hole->negated = 2;
            /* `{% filter f(args) | g %}`: parse as a filter chain on a hole */
            p->pos--;   /* reuse the `filter` token as a `|` (tokens are discarded after parsing) */
            cur(p)->type = T_OP; cur(p)->s = "|"; cur(p)->len = 1;
            n->b = parse_filter_expr(p, hole);
            n->c = hole;
            static const char *const e[] = {"endfilter", NULL};
            int which;
            if (!n->b || !block_end(p) || !parse_body(p, &n->body, e, &which) || !block_end(p)) n = NULL;
        }
    } else if (!strcmp(nm, "generation") || !strcmp(nm, "with")) {
        int gen = nm[0] == 'g';
        n = mknode(p, gen ? N_GENERATION : N_WITH, t);
        const char **names = NULL;
        int k = 0;
        while (n && !gen && !p->rc && cur(p)->type == T_NAME) {   /* with a=1, b=2 */
            const char **nn = ja_alloc(p->a, (size_t)(k + 1) * sizeof *nn);
            if (!nn) return NULL;
            if (k) memcpy(nn, names, (size_t)k * sizeof *nn);
            names = nn;
            names[k++] = tokname(p, cur(p));
            advance(p);
            if (!expect_op(p, "=") || !nl_push(p, &n->kwvals, parse_expression(p, 1))) return NULL;
            if (!accept_op(p, ",")) break;
        }
        if (n) n->kwnames = names;
        static const char *const eg[] = {"endgeneration", NULL}, *const ew[] = {"endwith", NULL};
        int which;
        if (!n || !block_end(p) || !parse_body(p, &n->body, gen ? eg : ew, &which) || !block_end(p)) n = NULL;
    } else {
        perr(p, t, "encountered unknown tag '%s'", nm);
    }
    p->depth--;
    return p->rc ? NULL : n;
}

/* Parses statements until `{% <one of ends> ...`; leaves the stream after the end name and
 * sets *which to its index. ends == NULL: until the end of the template. */
static int parse_body(struct parser *p, struct jnlist *body, const char *const *ends, int *which) {
    while (!p->rc) {
        struct jtok *t = cur(p);
        if (t->type == T_EOF) {
            if (!ends) return 1;
            perr(p, t, "unexpected end of template, expected '%s'", ends[0]);
            return 0;
        }
        if (t->type == T_DATA) {
            struct jnode *n = mknode(p, N_TEXT, t);
            if (!n) return 0;
            n->name = t->s;                      /* the text and its length */
            n->val = jv_int((int64_t)t->len);
            nl_push(p, body, n);
            advance(p);
        } else if (t->type == T_VAR_BEGIN) {
            advance(p);
            struct jnode *n = mknode(p, N_OUT, t);
            if (!n) return 0;
            n->a = parse_tuple(p, 0, 1, 0, NULL);
            if (!n->a || !expect_type(p, T_VAR_END, "'}}'")) return 0;
            nl_push(p, body, n);
        } else if (t->type == T_BLOCK_BEGIN) {
            advance(p);
            struct jtok *nm = cur(p);
            for (int i = 0; ends && ends[i]; i++) {
                if (is_name(nm, ends[i])) { advance(p); *which = i; return 1; }
            }
            if (nm->type == T_NAME && nm->len > 3 && (!memcmp(nm->s, "end", 3) || is_name(nm, "else") || is_name(nm, "elif"))) {
                perr(p, nm, "unexpected tag %s", NULL);
                return 0;
            }
            if (is_name(nm, "else") || is_name(nm, "elif")) { perr(p, nm, "unexpected tag %s", NULL); return 0; }
            if (!nl_push(p, body, parse_statement(p))) return 0;
        } else {
            perr(p, t, "unexpected %s", NULL);
            return 0;
        }
    }
    return 0;
}

int jinja_parse(struct jtoks *toks, struct jarena *a, struct jnlist *body, struct vlm_error *err) {
    struct parser p = {.t = toks, .a = a, .err = err};
    int which = 0;
    if (!parse_body(&p, body, NULL, &which) && !p.rc)
        p.rc = vlm_error_set(err, VLM_E_INTERNAL, "template parser stopped without an error");
    if (!p.rc && a->failed) p.rc = vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
    return p.rc;
}
