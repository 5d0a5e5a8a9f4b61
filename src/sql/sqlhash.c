/* sqlhash.c — hashing rows and keys in SQL for every ClickHouse type (the
 * rules are in include/chcopier/sqlhash.h). Owns the type-text splitter
 * and the per-family hashable forms; pure, no I/O, never logs.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/sql/sqlhash.h"

#include "base/banned.h"

/* Nesting deeper than this is refused (no real table needs it). */
#define TYPE_DEPTH_MAX 32

struct span {
    const char *p;
    size_t n;
};

/* A type split at its top level: Name[(arg, arg, ...)]. */
struct tparts {
    struct span name;
    struct span *args;
    size_t n_args;
};

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static struct span trim(struct span s)
{
    while (s.n && is_ws(*s.p)) {
        s.p++;
        s.n--;
    }
    while (s.n && is_ws(s.p[s.n - 1]))
        s.n--;
    return s;
}

static int span_is(struct span s, const char *lit)
{
    return s.n == strlen(lit) && !memcmp(s.p, lit, s.n);
}

static int is_ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* Skip a quoted literal starting at p[0] (' or `); returns the index after
 * it, or 0 if unterminated. */
static size_t skip_quoted(const char *p, size_t n)
{
    char q = p[0];
    size_t i;

    for (i = 1; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n)
            i++;
        else if (p[i] == q)
            return i + 1;
    }
    return 0;
}

static int add_arg(struct tparts *tp, struct span a)
{
    struct span *v = realloc(tp->args, (tp->n_args + 1) * sizeof(*v));

    if (!v)
        return -ENOMEM;
    tp->args = v;
    tp->args[tp->n_args++] = trim(a);
    return 0;
}

static int type_split(struct span t, struct tparts *tp)
{
    size_t i = 0, start, depth = 0;

    memset(tp, 0, sizeof(*tp));
    t = trim(t);
    while (i < t.n && is_ident_char(t.p[i]))
        i++;
    if (i == 0)
        return CHC_EPARSE;
    tp->name.p = t.p;
    tp->name.n = i;
    while (i < t.n && is_ws(t.p[i]))
        i++;
    if (i == t.n)
        return 0;
    if (t.p[i] != '(' || t.p[t.n - 1] != ')')
        return CHC_EPARSE;
    start = ++i;
    for (; i < t.n - 1; i++) {
        char c = t.p[i];
        if (c == '\'' || c == '`' || c == '"') {
            size_t k = skip_quoted(t.p + i, t.n - 1 - i);
            if (!k)
                return CHC_EPARSE;
            i += k - 1;
        } else if (c == '(') {
            depth++;
        } else if (c == ')') {
            if (depth == 0)
                return CHC_EPARSE;
            depth--;
        } else if (c == ',' && depth == 0) {
            if (add_arg(tp, (struct span){t.p + start, i - start}) < 0)
                return -ENOMEM;
            start = i + 1;
        }
    }
    if (depth != 0)
        return CHC_EPARSE;
    if (add_arg(tp, (struct span){t.p + start, i - start}) < 0)
        return -ENOMEM;
    for (i = 0; i < tp->n_args; i++)
        if (tp->args[i].n == 0)
            return CHC_EPARSE;
    return 0;
}

static void tparts_release(struct tparts *tp)
{
    free(tp->args);
    tp->args = NULL;
    tp->n_args = 0;
}

/* "name Type" (a named Tuple/Nested element): the Type. */
static struct span element_type(struct span a)
{
    size_t i = 0;

    if (a.n && a.p[0] == '`') {
        i = skip_quoted(a.p, a.n);
        if (!i)
            return a;
    } else {
        while (i < a.n && is_ident_char(a.p[i]))
            i++;
    }
    if (i == 0 || i == a.n || !is_ws(a.p[i]))
        return a;
    return trim((struct span){a.p + i, a.n - i});
}

/* Families every supported server hashes the same way, as they are. */
static int is_native_family(struct span name)
{
    static const char *const native[] = {
        "Int8",    "Int16",   "Int32",   "Int64",  "UInt8",       "UInt16",     "UInt32",
        "UInt64",  "Float32", "Float64", "Date",   "DateTime",    "Enum8",      "Enum16",
        "String",  "FixedString", "Int128", "Int256", "UInt128", "UInt256", "Date32",
        "DateTime64", "Bool",
    };
    size_t i;

    for (i = 0; i < sizeof(native) / sizeof(native[0]); i++)
        if (span_is(name, native[i]))
            return 1;
    return 0;
}

static int emit(struct chc_buf *out, const char *expr, struct span type, int depth);

/* 1 if `type` is hashed as it is (also inside an Array or a Tuple). */
static int is_native(struct span type, int depth)
{
    struct tparts tp;
    size_t i;
    int r;

    if (depth > TYPE_DEPTH_MAX)
        return 0;
    if (type_split(type, &tp) < 0) {
        tparts_release(&tp);
        return 0;
    }
    if (is_native_family(tp.name))
        r = 1;
    else if (span_is(tp.name, "Array") && tp.n_args == 1)
        r = is_native(tp.args[0], depth + 1);
    else if (span_is(tp.name, "Tuple") && tp.n_args >= 1) {
        r = 1;
        for (i = 0; r && i < tp.n_args; i++)
            r = is_native(element_type(tp.args[i]), depth + 1);
    } else
        r = 0;
    tparts_release(&tp);
    return r;
}

static int add_span(struct chc_buf *out, struct span s)
{
    return chc_buf_add(out, s.p, s.n);
}

/* cityHash64(<form of expr>) */
static int emit_u64(struct chc_buf *out, const char *expr, struct span type, int depth)
{
    int r = chc_buf_addstr(out, "cityHash64(");

    if (r == 0)
        r = emit(out, expr, type, depth);
    return r == 0 ? chc_buf_addch(out, ')') : r;
}

/* arrayMap(_hN -> cityHash64(<form of _hN>), expr) */
static int emit_array(struct chc_buf *out, const char *expr, struct span elem, int depth)
{
    char var[16];
    int r;

    if (is_native(elem, depth + 1))
        return chc_buf_addstr(out, expr);
    snprintf(var, sizeof(var), "_h%d", depth + 1);
    r = chc_buf_addf(out, "arrayMap(%s -> ", var);
    if (r == 0)
        r = emit_u64(out, var, elem, depth + 1);
    return r == 0 ? chc_buf_addf(out, ", %s)", expr) : r;
}

/* The forms of tupleElement(expr, i), comma-separated. */
static int emit_tuple(struct chc_buf *out, const char *expr, const struct tparts *tp, int depth)
{
    struct chc_buf el = CHC_BUF_INIT;
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < tp->n_args; i++) {
        chc_buf_reset(&el);
        r = chc_buf_addf(&el, "tupleElement(%s, %zu)", expr, i + 1);
        if (r == 0 && i)
            r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = emit(out, el.buf, element_type(tp->args[i]), depth + 1);
    }
    chc_buf_release(&el);
    return r;
}

/* Nested(a T, b U) holds Array(Tuple(T, U)). */
static int emit_nested(struct chc_buf *out, const char *expr, const struct tparts *tp, int depth)
{
    char var[16];
    int r;

    snprintf(var, sizeof(var), "_h%d", depth + 1);
    r = chc_buf_addf(out, "arrayMap(%s -> cityHash64(", var);
    if (r == 0)
        r = emit_tuple(out, var, tp, depth + 1);
    return r == 0 ? chc_buf_addf(out, "), %s)", expr) : r;
}

static int emit_map(struct chc_buf *out, const char *expr, const struct tparts *tp, int depth)
{
    char k[16], v[16];
    int r;

    snprintf(k, sizeof(k), "_h%dk", depth + 1);
    snprintf(v, sizeof(v), "_h%dv", depth + 1);
    r = chc_buf_addf(out, "arrayMap((%s, %s) -> cityHash64(", k, v);
    if (r == 0)
        r = emit(out, k, tp->args[0], depth + 1);
    if (r == 0)
        r = chc_buf_addstr(out, ", ");
    if (r == 0)
        r = emit(out, v, tp->args[1], depth + 1);
    return r == 0 ? chc_buf_addf(out, "), mapKeys(%s), mapValues(%s))", expr, expr) : r;
}

/* isNull(x), <form of assumeNotNull(x)> */
static int emit_nullable(struct chc_buf *out, const char *expr, struct span inner, int depth)
{
    struct chc_buf x = CHC_BUF_INIT;
    int r;

    r = chc_buf_addf(&x, "assumeNotNull(%s)", expr);
    if (r == 0)
        r = chc_buf_addf(out, "isNull(%s), ", expr);
    if (r == 0)
        r = emit(out, x.buf, inner, depth + 1);
    chc_buf_release(&x);
    return r;
}

/* The form of CAST(x AS T) (LowCardinality(T): 18.16 hashes no
 * LowCardinality column and crashes on toString of one). */
static int emit_cast(struct chc_buf *out, const char *expr, struct span inner, int depth)
{
    struct chc_buf x = CHC_BUF_INIT;
    int r;

    r = chc_buf_addf(&x, "CAST(%s AS ", expr);
    if (r == 0)
        r = add_span(&x, inner);
    if (r == 0)
        r = chc_buf_addch(&x, ')');
    if (r == 0)
        r = emit(out, x.buf, inner, depth + 1);
    chc_buf_release(&x);
    return r;
}

static int emit(struct chc_buf *out, const char *expr, struct span type, int depth)
{
    struct tparts tp;
    struct span n;
    int r;

    if (depth > TYPE_DEPTH_MAX)
        return CHC_EPARSE;
    r = type_split(type, &tp);
    if (r < 0)
        goto out;
    n = tp.name;
    if (is_native_family(n))
        r = chc_buf_addstr(out, expr);
    else if (span_is(n, "Nullable") && tp.n_args == 1)
        r = emit_nullable(out, expr, tp.args[0], depth);
    else if (span_is(n, "LowCardinality") && tp.n_args == 1)
        r = emit_cast(out, expr, tp.args[0], depth);
    else if (span_is(n, "SimpleAggregateFunction") && tp.n_args == 2)
        r = emit(out, expr, tp.args[1], depth + 1);
    else if (span_is(n, "Array") && tp.n_args == 1)
        r = emit_array(out, expr, tp.args[0], depth);
    else if (span_is(n, "Tuple") && tp.n_args >= 1)
        r = emit_tuple(out, expr, &tp, depth);
    else if (span_is(n, "Nested") && tp.n_args >= 1)
        r = emit_nested(out, expr, &tp, depth);
    else if (span_is(n, "Map") && tp.n_args == 2)
        r = emit_map(out, expr, &tp, depth);
    else if ((n.n >= 7 && !memcmp(n.p, "Decimal", 7)) || span_is(n, "UUID"))
        r = chc_buf_addf(out, "reinterpretAsString(%s)", expr); /* its bytes */
    else /* IPv4, IPv6, AggregateFunction (the state's bytes), others */
        r = chc_buf_addf(out, "toString(%s)", expr);
out:
    tparts_release(&tp);
    return r;
}

static int fail(int r, const char *type, struct chc_err *err)
{
    if (r == -ENOMEM)
        return chc_err_set(err, r, "out of memory");
    return chc_err_set(err, CHC_EPARSE, "cannot read the type '%.200s'", type);
}

int sqlhash_args(const char *expr, const char *type, struct chc_buf *out, struct chc_err *err)
{
    size_t start = out->len;
    int r = emit(out, expr, (struct span){type, strlen(type)}, 0);

    if (r < 0) {
        chc_buf_setlen(out, start);
        return fail(r, type, err);
    }
    return 0;
}

int sqlhash_u64(const char *expr, const char *type, struct chc_buf *out, struct chc_err *err)
{
    size_t start = out->len;
    int r = emit_u64(out, expr, (struct span){type, strlen(type)}, 0);

    if (r < 0) {
        chc_buf_setlen(out, start);
        return fail(r, type, err);
    }
    return 0;
}

static int strip_lc(struct chc_buf *out, struct span type, int depth)
{
    struct tparts tp;
    size_t i;
    int r;

    if (depth > TYPE_DEPTH_MAX)
        return CHC_EPARSE;
    r = type_split(type, &tp);
    if (r == 0 && span_is(tp.name, "LowCardinality") && tp.n_args == 1) {
        r = strip_lc(out, tp.args[0], depth + 1);
        goto out;
    }
    if (r == 0 && !(span_is(tp.name, "Array") || span_is(tp.name, "Nullable") ||
                    span_is(tp.name, "Tuple") || span_is(tp.name, "Map"))) {
        r = add_span(out, trim(type)); /* no types inside, or none we touch */
        goto out;
    }
    if (r == 0)
        r = add_span(out, tp.name);
    if (r == 0)
        r = chc_buf_addch(out, '(');
    for (i = 0; r == 0 && i < tp.n_args; i++) {
        struct span el = element_type(tp.args[i]);
        if (i)
            r = chc_buf_addstr(out, ", ");
        if (r == 0 && el.p != tp.args[i].p) /* keep a named element's name */
            r = add_span(out, (struct span){tp.args[i].p, (size_t)(el.p - tp.args[i].p)});
        if (r == 0)
            r = strip_lc(out, el, depth + 1);
    }
    if (r == 0)
        r = chc_buf_addch(out, ')');
out:
    tparts_release(&tp);
    return r;
}

int sqlhash_strip_lc(const char *type, struct chc_buf *out, struct chc_err *err)
{
    size_t start = out->len;
    int r = strip_lc(out, (struct span){type, strlen(type)}, 0);

    if (r < 0) {
        chc_buf_setlen(out, start);
        return fail(r, type, err);
    }
    return 0;
}

int sqlhash_family(const char *type, char *name, size_t cap)
{
    struct tparts tp;
    int r = type_split((struct span){type, strlen(type)}, &tp);

    if (r == 0 && tp.name.n < cap) {
        memcpy(name, tp.name.p, tp.name.n);
        name[tp.name.n] = '\0';
    } else if (r == 0) {
        r = CHC_EPARSE;
    }
    tparts_release(&tp);
    return r < 0 ? CHC_EPARSE : 0;
}

int sqlhash_int_key(const char *type, unsigned *ret_bits, int *ret_signed)
{
    static const struct {
        const char *name;
        unsigned bits;
        int sign;
    } ints[] = {
        {"UInt8", 8, 0},  {"UInt16", 16, 0}, {"UInt32", 32, 0}, {"UInt64", 64, 0},
        {"Int8", 8, 1},   {"Int16", 16, 1},  {"Int32", 32, 1},  {"Int64", 64, 1},
    };
    struct tparts tp;
    struct span t = {type, strlen(type)};
    size_t i;
    int found = 0;

    if (type_split(t, &tp) == 0 && span_is(tp.name, "LowCardinality") && tp.n_args == 1)
        t = tp.args[0];
    tparts_release(&tp);
    t = trim(t);
    for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (span_is(t, ints[i].name)) {
            *ret_bits = ints[i].bits;
            *ret_signed = ints[i].sign;
            found = 1;
        }
    return found;
}
