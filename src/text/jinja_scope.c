/* jinja_scope.c — the one piece of Jinja's static scoping that changes output: a name the
 * template's top level assigns before it ever reads it is a template variable from the start,
 * so loop bodies and macros that read it before the assignment see it undefined, not the
 * context value of the same name. This finds those names (Jinja's idtracking, reduced to
 * first-event order, branches counting as reads). */
#include "text/jinja.h"

#include <string.h>

enum { EV_LOAD = 1, EV_STORE = 2 };

struct evmap {
    const char **names;
    int *ev;
    int n, cap;
    struct jarena *a;
    int failed;
};

static int ev_find(const struct evmap *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->names[i], name)) return i;
    return -1;
}

/* Records name's first event only. */
static void ev_add(struct evmap *m, const char *name, int ev) {
    if (ev_find(m, name) >= 0 || m->failed) return;
    if (m->n == m->cap) {
        int nc = m->cap ? m->cap * 2 : 16;
        const char **nn = ja_alloc(m->a, (size_t)nc * sizeof *nn);
        int *ne = ja_alloc(m->a, (size_t)nc * sizeof *ne);
        if (!nn || !ne) { m->failed = 1; return; }
        if (m->n) { memcpy(nn, m->names, (size_t)m->n * sizeof *nn); memcpy(ne, m->ev, (size_t)m->n * sizeof *ne); }
        m->names = nn;
        m->ev = ne;
        m->cap = nc;
    }
    m->names[m->n] = name;
    m->ev[m->n++] = ev;
}

static void scan_expr(const struct jnode *e, struct evmap *m, int depth) {
    if (!e || depth > 400) return;
    if (e->kind == E_NAME) { ev_add(m, e->name, EV_LOAD); return; }
    scan_expr(e->a, m, depth + 1);
    scan_expr(e->b, m, depth + 1);
    scan_expr(e->c, m, depth + 1);
    scan_expr(e->d, m, depth + 1);
    for (int i = 0; i < e->args.n; i++) scan_expr(e->args.v[i], m, depth + 1);
    for (int i = 0; i < e->kwvals.n; i++) scan_expr(e->kwvals.v[i], m, depth + 1);
}

static void scan_store(const struct jnode *target, struct evmap *m) {
    if (target->kind == E_NAME) ev_add(m, target->name, EV_STORE);
    else if (target->kind == E_ATTR) scan_expr(target->a, m, 0);          /* ns.x = ... reads ns */
    else for (int i = 0; i < target->args.n; i++) ev_add(m, target->args.v[i]->name, EV_STORE);
}

static void scan_body(const struct jnlist *body, struct evmap *m, int depth);

/* Names first met inside an if/elif/else branch are resolved from the context at the top
 * (what transformers' Jinja does, even when every branch assigns them). */
static void scan_if(const struct jnode *n, struct evmap *m, int depth) {
    scan_expr(n->a, m, 0);
    struct evmap br[2] = {{.a = m->a}, {.a = m->a}};
    scan_body(&n->body, &br[0], depth + 1);
    scan_body(&n->orelse, &br[1], depth + 1);
    for (int b = 0; b < 2; b++) {
        m->failed |= br[b].failed;
        for (int i = 0; i < br[b].n; i++) ev_add(m, br[b].names[i], EV_LOAD);
    }
}

static void scan_body(const struct jnlist *body, struct evmap *m, int depth) {
    if (depth > 400) return;
    for (int i = 0; i < body->n; i++) {
        const struct jnode *n = body->v[i];
        switch (n->kind) {
        case N_OUT: scan_expr(n->a, m, 0); break;
        case N_IF: scan_if(n, m, depth); break;
        case N_FOR: scan_expr(n->b, m, 0); break;                 /* the body is its own scope */
        case N_SET: scan_expr(n->b, m, 0); scan_store(n->a, m); break;
        case N_SETBLOCK: scan_body(&n->body, m, depth + 1); scan_expr(n->b, m, 0); scan_store(n->a, m); break;
        case N_FILTERBLOCK: scan_body(&n->body, m, depth + 1); scan_expr(n->b, m, 0); break;
        case N_MACRO: ev_add(m, n->name, EV_STORE); break;
        case N_CALLBLOCK: if (n->a) { scan_expr(n->a->a, m, 0); for (int k = 0; k < n->a->args.n; k++) scan_expr(n->a->args.v[k], m, 0); } break;
        case N_WITH: for (int k = 0; k < n->kwvals.n; k++) scan_expr(n->kwvals.v[k], m, 0); break;
        default: break;
        }
    }
}

int jinja_root_stores(const struct jnlist *body, struct jarena *a, const char ***names, int *n) {
    struct evmap m = {.a = a};
    scan_body(body, &m, 0);
    *names = NULL;
    *n = 0;
    if (m.failed) return VLM_E_NOMEM;
    int k = 0;
    for (int i = 0; i < m.n; i++)
        if (m.ev[i] == EV_STORE) m.names[k++] = m.names[i];
    *names = m.names;
    *n = k;
    return VLM_OK;
}

/* ---- what a macro body refers to: caller, varargs, kwargs (Jinja's find_undeclared) ---- */
static int names_in_expr(const struct jnode *e, int depth) {
    if (!e || depth > 400) return 0;
    int f = 0;
    if (e->kind == E_NAME) {
        if (!strcmp(e->name, "caller")) f |= JMACRO_CALLER;
        else if (!strcmp(e->name, "varargs")) f |= JMACRO_VARARGS;
        else if (!strcmp(e->name, "kwargs")) f |= JMACRO_KWARGS;
    }
    f |= names_in_expr(e->a, depth + 1) | names_in_expr(e->b, depth + 1) | names_in_expr(e->c, depth + 1) |
         names_in_expr(e->d, depth + 1);
    for (int i = 0; i < e->args.n; i++) f |= names_in_expr(e->args.v[i], depth + 1);
    for (int i = 0; i < e->kwvals.n; i++) f |= names_in_expr(e->kwvals.v[i], depth + 1);
    for (int i = 0; i < e->body.n; i++) f |= names_in_expr(e->body.v[i], depth + 1);
    for (int i = 0; i < e->orelse.n; i++) f |= names_in_expr(e->orelse.v[i], depth + 1);
    return f;
}

int jinja_macro_flags(const struct jnode *macro) {
    int f = 0;
    for (int i = 0; i < macro->body.n; i++) f |= names_in_expr(macro->body.v[i], 0);
    return f;
}
