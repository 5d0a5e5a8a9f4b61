/* engine.c — parses and rebuilds a destination table's ENGINE clause.
 *
 * Owns the clause splitter, the table of *MergeTree variants with their
 * argument counts, and the rebuilding of the clause for the destination and
 * its non-replicated staging twin. The tokens come from lex.c. It
 * does not understand expressions: it finds their boundaries and keeps their
 * source text, so what ClickHouse sees is what the user wrote.
 * Pure: no I/O, no logging, no regexes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/lex.h"

#include "base/banned.h"

/* ---------------------------------------------------------------------------
 * Clauses and engine variants
 * ------------------------------------------------------------------------- */

enum clause {
    CL_PARTITION,
    CL_ORDER,
    CL_PRIMARY,
    CL_SAMPLE,
    CL_TTL,
    CL_SETTINGS,
    CL_COMMENT,
    _CL_MAX,
};

static const struct {
    const char *w1, *w2; /* keyword words; w2 NULL for one-word keywords */
    const char *name;
    int single;          /* one expression: a top-level comma is an error */
} clauses[_CL_MAX] = {
    [CL_PARTITION] = {"PARTITION", "BY", "PARTITION BY", 1},
    [CL_ORDER] = {"ORDER", "BY", "ORDER BY", 1},
    [CL_PRIMARY] = {"PRIMARY", "KEY", "PRIMARY KEY", 1},
    [CL_SAMPLE] = {"SAMPLE", "BY", "SAMPLE BY", 1},
    [CL_TTL] = {"TTL", NULL, "TTL", 0},
    [CL_SETTINGS] = {"SETTINGS", NULL, "SETTINGS", 0},
    /* The table's comment, which SHOW CREATE TABLE prints after SETTINGS:
     * a clause of CREATE TABLE rather than of the engine, accepted so that
     * an engine copied from SHOW CREATE TABLE reads as written. */
    [CL_COMMENT] = {"COMMENT", NULL, "COMMENT", 1},
};

/* The clause keyword starting at token i, or -1; *ret_ntok gets its length.
 * At the first token of an expression only two-word keywords count, so
 * "ORDER BY ttl" orders by a column named ttl, as in ClickHouse. */
static int clause_at(const struct cfg_lexer *p, size_t i, int expr_start, size_t *ret_ntok)
{
    int c;

    if (i >= p->n || p->toks[i].type != CFG_TOK_WORD || p->toks[i].depth != 0)
        return -1;
    for (c = 0; c < _CL_MAX; c++) {
        if (!cfg_tok_is_word(p, i, clauses[c].w1))
            continue;
        if (clauses[c].w2) {
            if (i + 1 < p->n && cfg_tok_is_word(p, i + 1, clauses[c].w2)) {
                *ret_ntok = 2;
                return c;
            }
        } else if (!expr_start) {
            *ret_ntok = 1;
            return c;
        }
    }
    return -1;
}

/* ClickHouse's closed list of MergeTree variants (registerStorageMergeTree)
 * and how many engine arguments each takes in the extended syntax, not
 * counting the Replicated pair. */
static const struct family {
    const char *name;
    size_t min_args, max_args;
    const char *usage;
} families[] = {
    {"MergeTree", 0, 0, "MergeTree()"},
    {"ReplacingMergeTree", 0, 2, "ReplacingMergeTree([ver[, is_deleted]])"},
    {"SummingMergeTree", 0, 1, "SummingMergeTree([(columns)])"},
    {"AggregatingMergeTree", 0, 0, "AggregatingMergeTree()"},
    {"CollapsingMergeTree", 1, 1, "CollapsingMergeTree(sign)"},
    {"VersionedCollapsingMergeTree", 2, 2, "VersionedCollapsingMergeTree(sign, version)"},
    {"GraphiteMergeTree", 1, 1, "GraphiteMergeTree('config_section')"},
    {"CoalescingMergeTree", 0, 1, "CoalescingMergeTree([(columns)])"},
};

#define REPLICATED "Replicated"
#define N_FAMILIES (sizeof(families) / sizeof(families[0]))

static const struct family *family_find(const char *base)
{
    size_t i;

    for (i = 0; i < N_FAMILIES; i++)
        if (strcmp(families[i].name, base) == 0)
            return &families[i];
    return NULL;
}

/* ---------------------------------------------------------------------------
 * Key columns
 * ------------------------------------------------------------------------- */

/* Fill e->key_columns from the key expression tokens [first, last]. */
static int split_key(struct cfg_lexer *p, size_t first, size_t last, const char *what,
                     struct engine_info *e)
{
    struct cfg_span *items = NULL;
    size_t n = 0, k, open = 0;
    int r, list = 0;

    if (p->toks[first].type == CFG_TOK_OPEN && cfg_tok_is_char(p, first, '(') &&
        p->toks[first].match == last) {
        open = first;
        list = 1;
    } else if (last > first + 1 && cfg_tok_is_word(p, first, "tuple") &&
               p->toks[first + 1].type == CFG_TOK_OPEN && cfg_tok_is_char(p, first + 1, '(') &&
               p->toks[first + 1].match == last) {
        open = first + 1;
        list = 1;
    }
    if (list) {
        r = cfg_lex_split(p, open + 1, last, p->toks[open].depth + 1, what, &items, &n);
        if (r < 0)
            goto fail;
    } else {
        items = calloc(1, sizeof(*items));
        if (!items) {
            r = chc_err_set(p->err, -ENOMEM, "out of memory");
            goto fail;
        }
        items[0].first = first;
        items[0].last = last;
        n = 1;
    }
    if (n) {
        e->key_columns = calloc(n, sizeof(*e->key_columns));
        if (!e->key_columns) {
            r = chc_err_set(p->err, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    for (k = 0; k < n; k++) {
        e->key_columns[k] = cfg_span_dup(p, items[k].first, items[k].last);
        if (!e->key_columns[k]) {
            r = chc_err_set(p->err, -ENOMEM, "out of memory");
            goto fail;
        }
        e->n_key_columns++;
    }
    free(items);
    return 0;

fail:
    free(items);
    return r;
}

/* ---------------------------------------------------------------------------
 * The parsed engine
 * ------------------------------------------------------------------------- */

struct engine_info *engine_free(struct engine_info *e)
{
    size_t i;

    if (!e)
        return NULL;
    free(e->name);
    free(e->base_name);
    free(e->zk_path);
    free(e->replica_name);
    free(e->args);
    free(e->partition_by);
    free(e->order_by);
    free(e->primary_key);
    free(e->sample_by);
    free(e->ttl);
    free(e->settings);
    free(e->comment);
    for (i = 0; i < e->n_key_columns; i++)
        free(e->key_columns[i]);
    free(e->key_columns);
    free(e);
    return NULL;
}

/* ---------------------------------------------------------------------------
 * engine_parse(), step by step
 * ------------------------------------------------------------------------- */

/* What engine_parse() has found so far. */
struct found {
    struct cfg_lexer p;
    struct engine_info *e;
    const struct family *fam;
    struct cfg_span *args;        /* the list after the engine name */
    size_t nargs;
    size_t own_first;         /* args[own_first..] are the engine's own */
    int seen[_CL_MAX];        /* each clause: given */
    size_t kw_at[_CL_MAX];    /* each clause: byte offset of its keyword */
    struct cfg_span ex[_CL_MAX];  /* each clause: its expression */
};

/* The variant of e (a known *MergeTree), or an error naming what was written. */
static int find_family(struct found *f, const char *name, size_t name_len)
{
    const char *mt = "mergetree";
    size_t mtl = strlen(mt);
    char buf[CFG_SNIP_MAX + 4];

    f->fam = family_find(f->e->base_name);
    if (f->fam)
        return 0;
    if (name_len >= mtl && strncasecmp(name + name_len - mtl, mt, mtl) == 0)
        return chc_err_set(f->p.err, CHC_ECONFIG,
                           "engine '%s' is not supported: not a known *MergeTree variant "
                           "(names are case-sensitive), use [Replicated]MergeTree, "
                           "ReplacingMergeTree, SummingMergeTree, AggregatingMergeTree, "
                           "CollapsingMergeTree, VersionedCollapsingMergeTree, "
                           "GraphiteMergeTree or CoalescingMergeTree",
                           cfg_lex_snip(name, name_len, buf));
    return chc_err_set(f->p.err, CHC_ECONFIG,
                       "engine '%s' is not supported: only *MergeTree engines can be a "
                       "copy destination",
                       cfg_lex_snip(name, name_len, buf));
}

/* Step 2: "ENGINE [=] name"; *pos is left on the token after the name. */
static int parse_name(struct found *f, size_t *pos)
{
    struct cfg_lexer *p = &f->p;
    struct engine_info *e;
    const char *name;
    size_t i = 0, k, name_len;
    char buf[CFG_SNIP_MAX + 4];

    if (cfg_tok_is_word(p, 0, "ENGINE")) {
        i = 1;
        if (i < p->n && cfg_tok_is_char(p, i, '='))
            i++;
    }
    if (i >= p->n || clause_at(p, i, 0, &k) >= 0)
        return chc_err_set(p->err, CHC_EPARSE,
                           "missing engine name: write e.g. ENGINE = MergeTree ORDER BY (key)");
    name = p->text + p->toks[i].start;
    name_len = p->toks[i].end - p->toks[i].start;
    if (p->toks[i].type != CFG_TOK_WORD || (name[0] >= '0' && name[0] <= '9'))
        return chc_err_set(p->err, CHC_EPARSE,
                           "expected an engine name at byte offset %zu, got '%s': write e.g. "
                           "ENGINE = MergeTree ORDER BY (key)",
                           p->toks[i].start, cfg_tok_snip(p, i, buf));
    e = f->e = calloc(1, sizeof(*e));
    if (!e)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    e->name = cfg_span_dup(p, i, i);
    if (!e->name)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    if (name_len > strlen(REPLICATED) && strncmp(name, REPLICATED, strlen(REPLICATED)) == 0)
        e->replicated = 1;
    e->base_name = chc_strdup(e->name + (e->replicated ? strlen(REPLICATED) : 0));
    if (!e->base_name)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    *pos = i + 1;
    return find_family(f, name, name_len);
}

/* Step 3: the optional argument list at *pos, the Replicated pair split off
 * it (registerStorageMergeTree's rules), and e->args. */
static int parse_args(struct found *f, size_t *pos)
{
    struct cfg_lexer *p = &f->p;
    struct engine_info *e = f->e;
    size_t i = *pos, nargs;
    int r;

    if (i < p->n && p->toks[i].type == CFG_TOK_OPEN && cfg_tok_is_char(p, i, '(')) {
        size_t close = p->toks[i].match;

        r = cfg_lex_split(p, i + 1, close, p->toks[i].depth + 1, "engine argument",
                               &f->args, &f->nargs);
        if (r < 0)
            return r;
        *pos = close + 1;
    }
    nargs = f->nargs;
    if (e->replicated) {
        if (nargs >= 2 && cfg_span_is_string(p, &f->args[0]) &&
            cfg_span_is_string(p, &f->args[1])) {
            r = cfg_lex_unquote(p, f->args[0].first, "zookeeper_path", &e->zk_path);
            if (r < 0)
                return r;
            r = cfg_lex_unquote(p, f->args[1].first, "replica_name", &e->replica_name);
            if (r < 0)
                return r;
            if (!e->zk_path[0] || !e->replica_name[0])
                return chc_err_set(p->err, CHC_ECONFIG,
                                   "engine '%s' has an empty %s: give both 'zookeeper_path' "
                                   "and 'replica_name', or neither to use the server defaults",
                                   e->name, e->zk_path[0] ? "replica_name" : "zookeeper_path");
            f->own_first = 2;
        } else if (!(nargs == 0 || !cfg_span_is_literal(p, &f->args[0]) ||
                     (nargs == 1 && strcmp(f->fam->name, "GraphiteMergeTree") == 0))) {
            return chc_err_set(p->err, CHC_ECONFIG,
                               "engine '%s' needs two string arguments ('zookeeper_path', "
                               "'replica_name') or none, got %zu argument%s: give both, or "
                               "drop them to use the server defaults",
                               e->name, nargs, nargs == 1 ? "" : "s");
        }
    }
    if (f->own_first < nargs)
        e->args = cfg_span_dup(p, f->args[f->own_first].first, f->args[nargs - 1].last);
    else
        e->args = chc_strdup("");
    if (!e->args)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    return 0;
}

/* The expression of clause c starts at token i: *ret_end gets the token
 * after it, where the next top-level clause keyword that follows something
 * an expression can end with begins (or the end). */
static int clause_expr(struct found *f, int c, size_t i, size_t *ret_end)
{
    struct cfg_lexer *p = &f->p;
    size_t j, k;
    char buf[CFG_SNIP_MAX + 4];

    for (j = i; j < p->n; j++) {
        if (p->toks[j].depth != 0)
            continue;
        if (j == i ? clause_at(p, j, 1, &k) >= 0
                   : cfg_tok_ends_expr(p, j - 1) && clause_at(p, j, 0, &k) >= 0)
            break;
    }
    if (j == i)
        return chc_err_set(p->err, CHC_EPARSE,
                           "%s at byte offset %zu has no expression: write one after it or "
                           "remove the clause",
                           clauses[c].name, f->kw_at[c]);
    if (!cfg_tok_ends_expr(p, j - 1))
        return chc_err_set(p->err, CHC_EPARSE,
                           "%s expression ends with '%s' at byte offset %zu: complete the "
                           "expression",
                           clauses[c].name, cfg_tok_snip(p, j - 1, buf),
                           p->toks[j - 1].start);
    if (clauses[c].single) {
        for (k = i; k < j; k++) {
            if (p->toks[k].type == CFG_TOK_COMMA && p->toks[k].depth == 0)
                return chc_err_set(p->err, CHC_EPARSE,
                                   "%s at byte offset %zu has a top-level comma at byte "
                                   "offset %zu: wrap a list in parentheses, e.g. %s (a, b)",
                                   clauses[c].name, f->kw_at[c], p->toks[k].start,
                                   clauses[c].name);
        }
    }
    *ret_end = j;
    return 0;
}

/* Step 4: clauses from token i to the end, each once, in any order. */
static int parse_clauses(struct found *f, size_t i)
{
    struct cfg_lexer *p = &f->p;
    char buf[CFG_SNIP_MAX + 4];
    size_t j = 0, k;
    int r, c;

    while (i < p->n) {
        c = clause_at(p, i, 0, &k);
        if (c < 0)
            return chc_err_set(p->err, CHC_EPARSE,
                               "unexpected '%s' at byte offset %zu: expected PARTITION BY, "
                               "ORDER BY, PRIMARY KEY, SAMPLE BY, TTL, SETTINGS or COMMENT",
                               cfg_tok_snip(p, i, buf), p->toks[i].start);
        if (f->seen[c])
            return chc_err_set(p->err, CHC_EPARSE,
                               "duplicate %s at byte offset %zu (first at byte offset %zu): "
                               "give each clause once",
                               clauses[c].name, p->toks[i].start, f->kw_at[c]);
        f->seen[c] = 1;
        f->kw_at[c] = p->toks[i].start;
        i += k;
        r = clause_expr(f, c, i, &j);
        if (r < 0)
            return r;
        f->ex[c].first = i;
        f->ex[c].last = j - 1;
        i = j;
    }
    return 0;
}

/* Step 5a: ORDER BY (or PRIMARY KEY) present, old syntax recognised, the
 * engine's argument count right. */
static int check_engine(const struct found *f)
{
    const struct engine_info *e = f->e;
    size_t own = f->nargs - f->own_first;

    if (!f->seen[CL_ORDER] && !f->seen[CL_PRIMARY]) {
        if (own >= 3)
            return chc_err_set(f->p.err, CHC_ECONFIG,
                               "old-syntax MergeTree(date, key, granularity) is not "
                               "supported: rewrite the engine with PARTITION BY "
                               "toYYYYMM(date) ORDER BY (key)");
        return chc_err_set(f->p.err, CHC_ECONFIG,
                           "engine '%s' has no ORDER BY clause: add ORDER BY (key columns), "
                           "or ORDER BY tuple() for an unsorted table",
                           e->name);
    }
    if (own < f->fam->min_args || own > f->fam->max_args)
        return chc_err_set(f->p.err, CHC_ECONFIG,
                           "engine '%s' has %zu engine argument%s, expected %s%s%s", e->name,
                           own, own == 1 ? "" : "s", e->replicated ? REPLICATED : "",
                           f->fam->usage,
                           e->replicated ? " after the optional 'zookeeper_path', "
                                           "'replica_name' pair"
                                         : "");
    return 0;
}

/* Step 5b: every clause's text into e, ORDER BY defaulted, the key columns. */
static int store_clauses(struct found *f)
{
    struct engine_info *e = f->e;
    char **fields[_CL_MAX] = {
        [CL_PARTITION] = &e->partition_by, [CL_ORDER] = &e->order_by,
        [CL_PRIMARY] = &e->primary_key,    [CL_SAMPLE] = &e->sample_by,
        [CL_TTL] = &e->ttl,                [CL_SETTINGS] = &e->settings,
        [CL_COMMENT] = &e->comment,
    };
    int c;

    for (c = 0; c < _CL_MAX; c++) {
        if (!f->seen[c])
            continue;
        *fields[c] = cfg_span_dup(&f->p, f->ex[c].first, f->ex[c].last);
        if (!*fields[c])
            return chc_err_set(f->p.err, -ENOMEM, "out of memory");
    }
    /* PRIMARY KEY without ORDER BY sorts by the primary key (ClickHouse). */
    if (!e->order_by) {
        e->order_by = chc_strdup(e->primary_key);
        if (!e->order_by)
            return chc_err_set(f->p.err, -ENOMEM, "out of memory");
    }
    c = f->seen[CL_PRIMARY] ? CL_PRIMARY : CL_ORDER;
    return split_key(&f->p, f->ex[c].first, f->ex[c].last,
                     c == CL_PRIMARY ? "PRIMARY KEY element" : "ORDER BY element", e);
}

/* Steps:
 *   1. tokenize (quotes, comments, brackets are checked here);
 *   2. optional "ENGINE [=]", the engine name, the optional argument list;
 *   3. the variant must be a known *MergeTree; a Replicated one has its
 *      ('zookeeper_path', 'replica_name') pair split off;
 *   4. clauses until the end, each expression running to the next top-level
 *      clause keyword that follows something an expression can end with;
 *   5. semantic checks: ORDER BY (or PRIMARY KEY) present, old syntax
 *      recognised, engine argument count right; then the key columns. */
int engine_parse(const char *text, struct engine_info **ret, struct chc_err *err)
{
    struct found f = {.p = {.text = text ? text : "", .err = err}};
    size_t i = 0;
    int r;

    f.p.len = strlen(f.p.text);
    r = cfg_lex(&f.p);
    if (r < 0)
        goto fail;
    if (f.p.n == 0) {
        r = chc_err_set(err, CHC_EPARSE,
                        "engine definition is empty: write e.g. ENGINE = MergeTree "
                        "ORDER BY (key)");
        goto fail;
    }
    r = parse_name(&f, &i);
    if (r < 0)
        goto fail;
    r = parse_args(&f, &i);
    if (r < 0)
        goto fail;
    r = parse_clauses(&f, i);
    if (r < 0)
        goto fail;
    r = check_engine(&f);
    if (r < 0)
        goto fail;
    r = store_clauses(&f);
    if (r < 0)
        goto fail;
    free(f.args);
    free(f.p.toks);
    *ret = f.e;
    return 0;

fail:
    free(f.args);
    free(f.p.toks);
    engine_free(f.e);
    return r;
}

/* ---------------------------------------------------------------------------
 * Rebuilding and comparing
 * ------------------------------------------------------------------------- */

int engine_build_clause(const struct engine_info *e, int plain, struct chc_buf *out,
                        struct chc_err *err)
{
    static const struct {
        size_t off;
        const char *kw;
    } order[] = {
        {offsetof(struct engine_info, partition_by), "PARTITION BY"},
        {offsetof(struct engine_info, order_by), "ORDER BY"},
        {offsetof(struct engine_info, primary_key), "PRIMARY KEY"},
        {offsetof(struct engine_info, sample_by), "SAMPLE BY"},
        {offsetof(struct engine_info, ttl), "TTL"},
        {offsetof(struct engine_info, settings), "SETTINGS"},
    };
    size_t len0 = out->len, i;
    int r;

    if (!e || !e->name || !e->base_name || !e->args || !e->order_by ||
        (!e->zk_path != !e->replica_name))
        return chc_err_set(err, -EINVAL, "cannot build the ENGINE clause: incomplete engine");

    r = chc_buf_addf(out, "ENGINE = %s(", plain ? e->base_name : e->name);
    if (r == 0 && !plain && e->replicated && e->zk_path) {
        r = chc_buf_add_sqlstr(out, e->zk_path);
        if (r == 0)
            r = chc_buf_addstr(out, ", ");
        if (r == 0)
            r = chc_buf_add_sqlstr(out, e->replica_name);
        if (r == 0 && e->args[0])
            r = chc_buf_addstr(out, ", ");
    }
    if (r == 0)
        r = chc_buf_addf(out, "%s)", e->args);
    for (i = 0; r == 0 && i < sizeof(order) / sizeof(order[0]); i++) {
        const char *v = *(char *const *)((const char *)e + order[i].off);

        if (v)
            r = chc_buf_addf(out, " %s %s", order[i].kw, v);
    }
    if (r == 0 && !plain && e->comment)
        r = chc_buf_addf(out, " COMMENT %s", e->comment);
    if (r < 0)
        goto fail;
    return 0;

fail:
    chc_buf_setlen(out, len0);
    return chc_err_set(err, r, "cannot build the ENGINE clause: %s", chc_strerror(r));
}

static int str_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int engine_equal(const struct engine_info *a, const struct engine_info *b)
{
    size_t i;

    if (!a || !b)
        return a == b;
    if (a->replicated != b->replicated || a->n_key_columns != b->n_key_columns)
        return 0;
    if (!str_equal(a->name, b->name) || !str_equal(a->base_name, b->base_name) ||
        !str_equal(a->zk_path, b->zk_path) || !str_equal(a->replica_name, b->replica_name) ||
        !str_equal(a->args, b->args) || !str_equal(a->partition_by, b->partition_by) ||
        !str_equal(a->order_by, b->order_by) || !str_equal(a->primary_key, b->primary_key) ||
        !str_equal(a->sample_by, b->sample_by) || !str_equal(a->ttl, b->ttl) ||
        !str_equal(a->settings, b->settings) || !str_equal(a->comment, b->comment))
        return 0;
    for (i = 0; i < a->n_key_columns; i++)
        if (!str_equal(a->key_columns[i], b->key_columns[i]))
            return 0;
    return 1;
}
