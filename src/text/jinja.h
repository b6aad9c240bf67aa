/* jinja.h — internals of the chat-template engine (a Jinja subset): values, arena, lexer
 * tokens, syntax tree and the render state shared by jinja_*.c. Not a public interface. */
#ifndef VLM_TEXT_JINJA_H
#define VLM_TEXT_JINJA_H

#include "text/chat_template.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena: every value of a render (and every node of a parse) lives here ---- */
struct jarena {
    struct jchunk *head;
    size_t used, cap;     /* bytes handed out / cap (0 = none) */
    int failed;           /* an allocation failed or the cap was reached */
};
void *ja_alloc(struct jarena *a, size_t n);   /* zeroed; NULL sets a->failed */
char *ja_strndup(struct jarena *a, const char *s, size_t n);
void  ja_free(struct jarena *a);

/* ---- values (passed by value; heap parts live in an arena) ---- */
enum jv_type {
    JV_UNDEF, JV_NONE, JV_BOOL, JV_INT, JV_FLOAT, JV_STR, JV_LIST, JV_DICT,
    JV_NS, JV_MACRO, JV_FUNC, JV_LOOP
};
struct jstr  { size_t len; char data[]; };           /* UTF-8, NUL-terminated */
struct jlist { size_t len, cap; struct jv *items; int is_tuple; int view; };   /* view: 1..3 = dict_keys/values/items */
struct jdict { size_t len, cap; struct jv *keys, *vals; };
struct jv {
    int type;
    union {
        int b;
        int64_t i;
        double f;
        struct jstr *s;        /* JV_STR; JV_UNDEF: the missing name (may be NULL) */
        struct jlist *l;
        struct jdict *d;       /* JV_DICT, JV_NS */
        struct jmacro *m;
        struct jfunc *fn;
        struct jloop *loop;
    } u;
};
typedef struct jv jv;

struct jfunc {           /* a builtin global or a bound method: name + bound receiver */
    const char *name;
    jv self;
};
struct jloop {
    int64_t index0, length;
    jv prev, next;
    int has_prev, has_next;
    int depth0;
};

/* ---- syntax tree ---- */
enum jnode_kind {
    /* statements */
    N_TEXT, N_OUT, N_IF, N_FOR, N_SET, N_SETBLOCK, N_MACRO, N_CALLBLOCK, N_FILTERBLOCK,
    N_BREAK, N_CONTINUE, N_GENERATION, N_WITH,
    /* expressions */
    E_CONST, E_NAME, E_ATTR, E_ITEM, E_SLICE, E_CALL, E_FILTER, E_TEST, E_BIN, E_NEG, E_POS,
    E_AND, E_OR, E_NOT, E_COND, E_LIST, E_TUPLE, E_DICT, E_CMP
};
enum jop {
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW, OP_CONCAT,
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE, OP_IN, OP_NOTIN
};
struct jnlist { struct jnode **v; int n, cap; };
struct jnode {
    int kind, op, line, col;
    jv val;                  /* E_CONST */
    const char *name;        /* E_NAME, E_ATTR, E_FILTER, E_TEST, N_MACRO, N_FILTERBLOCK */
    struct jnode *a, *b, *c, *d; /* operands; N_IF: a=cond; N_FOR: a=target, b=iter, c=filter;
                                E_SLICE: a[b:c:d] */
    struct jnlist args;      /* call args; E_LIST/E_TUPLE items; E_DICT keys; E_CMP operands */
    struct jnlist kwvals;    /* keyword argument values; E_DICT values */
    const char **kwnames;    /* keyword names (kwvals.n of them); N_MACRO: param names */
    struct jnlist body, orelse;
    int negated;             /* E_TEST: `is not` */
    int *ops;                /* E_CMP: args.n - 1 operators */
};

struct vlm_template {
    struct jarena arena;
    struct jnlist body;
    const char *src;            /* the source as given (continue_final_message checks it) */
    size_t src_len;
    const char **root_stores;   /* top-level names assigned before read (jinja_scope.c) */
    int n_root_stores;
};
/* Which of caller / varargs / kwargs a macro's body refers to (a JMACRO_* mask). */
#define JMACRO_CALLER  1
#define JMACRO_VARARGS 2
#define JMACRO_KWARGS  4
int jinja_macro_flags(const struct jnode *macro);
/* Names the top level assigns before reading them: hidden from the context at render start. */
int jinja_root_stores(const struct jnlist *body, struct jarena *a, const char ***names, int *n);

/* ---- lexer ---- */
enum jtok_type {
    T_EOF, T_DATA, T_VAR_BEGIN, T_VAR_END, T_BLOCK_BEGIN, T_BLOCK_END,
    T_NAME, T_STRING, T_INT, T_FLOAT, T_OP
};
struct jtok {
    int type, line, col;
    const char *s;   /* T_DATA/T_STRING: decoded text (arena); T_NAME/T_OP: spelling */
    size_t len;
    int64_t i;
    double f;
};
struct jtoks { struct jtok *v; int n, cap; };
int jinja_lex(const char *src, size_t len, struct jarena *a, struct jtoks *out, struct vlm_error *err);
int jinja_parse(struct jtoks *toks, struct jarena *a, struct jnlist *body, struct vlm_error *err);

/* ---- render state ---- */
struct jframe {
    struct jframe *parent;
    jv vars;                 /* a JV_DICT */
    int captured;            /* a macro closes over it: a loop must not reuse it */
};
struct jstate {
    struct jarena *arena;
    struct vlm_template_limits lim;
    struct vlm_buf *out;
    struct jframe *frame;    /* innermost scope */
    jv hole;                 /* the text a {% filter %} / {% set %} block filters */
    long steps;
    int depth;
    int rc;                  /* first error, VLM_OK while rendering */
    struct vlm_error *err;
    int loopctl;             /* 0, 1 break, 2 continue */
    int64_t t0_ms;
};
#define JSTOP(st) ((st)->rc != VLM_OK)
int  jfail(struct jstate *st, int code, const struct jnode *at, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int  jstep(struct jstate *st, long n, const struct jnode *at);

/* constructors and helpers (jinja_value.c) */
jv jv_undef(const char *name, struct jstate *st);
jv jv_none(void);
jv jv_bool(int b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_strn(struct jstate *st, const char *s, size_t n);
jv jv_str(struct jstate *st, const char *s);
jv jv_list(struct jstate *st, size_t cap);
jv jv_dict(struct jstate *st, size_t cap);
int  jv_list_push(struct jstate *st, jv list, jv item);
jv  *jv_dict_find(jv d, const char *key, size_t klen);
jv  *jv_dict_findv(jv d, jv key);
int  jv_dict_set(struct jstate *st, jv d, jv key, jv val);
int  jv_dict_sets(struct jstate *st, jv d, const char *key, jv val);
void jv_dict_del(jv d, const char *key);
int  jv_truthy(jv v);
int  jv_is_num(jv v);          /* int, float or bool */
double jv_num(jv v);
int  jv_f2i(double f, int64_t *out);   /* 1 and *out = trunc(f) when it fits int64 */
int  jv_equal(jv a, jv b);
int  jv_compare(struct jstate *st, jv a, jv b, int *res, const struct jnode *at); /* <0,0,>0 */
const char *jv_typename(jv v);
int  jv_write_str(struct jstate *st, struct vlm_buf *b, jv v);  /* str(v), Python style */
int  jv_write_repr(struct jstate *st, struct vlm_buf *b, jv v);
jv   jv_to_str(struct jstate *st, jv v);
#define JV_JSON_SORT_KEYS 1
#define JV_JSON_ASCII     2
int  jv_write_json(struct jstate *st, struct vlm_buf *b, jv v, const char *indent, int level,
                   const char *item_sep, const char *key_sep, int flags, const struct jnode *at);
jv   jv_from_json(struct jstate *st, json_t *j, int depth);
void jv_fmt_float(double f, char *buf, size_t n);
int  jv_iter_list(struct jstate *st, jv v, jv *out, const struct jnode *at); /* any iterable -> list */
size_t jv_len(jv v);           /* Python len(); strings in code points */

/* UTF-8 helpers */
int    u8_decode(const char *s, size_t n, size_t *adv);   /* code point (U+FFFD on bad bytes) */
size_t u8_encode(uint32_t cp, char *out);
size_t u8_count(const char *s, size_t n);
int    py_isspace(uint32_t cp);
uint32_t py_upper(uint32_t cp);
uint32_t py_lower(uint32_t cp);
int    py_isalnum(uint32_t cp);

/* evaluation (jinja_eval.c) */
jv   jeval(struct jstate *st, const struct jnode *n);
int  jexec_list(struct jstate *st, const struct jnlist *body);
jv   jcall_value(struct jstate *st, jv fn, jv *args, int nargs, const char **kwn, jv *kwv, int nkw,
                 const struct jnode *at);
jv   jgetattr(struct jstate *st, jv obj, const char *name, const struct jnode *at);
jv   jgetitem(struct jstate *st, jv obj, jv key, const struct jnode *at);
jv   jlookup(struct jstate *st, const char *name);

/* filters, tests (jinja_filters.c); methods and globals (jinja_methods.c) */
jv   jfilter(struct jstate *st, const char *name, jv v, jv *args, int nargs,
             const char **kwn, jv *kwv, int nkw, const struct jnode *at);
int  jtest(struct jstate *st, const char *name, jv v, jv *args, int nargs, const struct jnode *at);
int  jtest_exists(const char *name);
jv   jmethod(struct jstate *st, jv self, const char *name, jv *args, int nargs,
             const char **kwn, jv *kwv, int nkw, const struct jnode *at);
int  jmethod_exists(jv self, const char *name);
jv   jglobal_call(struct jstate *st, const char *name, jv *args, int nargs,
                  const char **kwn, jv *kwv, int nkw, const struct jnode *at);
int  jglobal_exists(const char *name);

#endif
