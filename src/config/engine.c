/* engine.c — parses and rebuilds a destination table's ENGINE clause.
 *
 * Owns the tokenizer for ClickHouse SQL fragments (quotes, escapes,
 * comments, bracket nesting; the same rules as ClickHouse's Lexer.cpp), the
 * clause splitter and the table of *MergeTree variants with their argument
 * counts. It does not understand expressions: it finds their boundaries and
 * keeps their source text, so what ClickHouse sees is what the user wrote.
 * Pure: no I/O, no logging, no regexes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/base/err.h"

#include "base/banned.h"

/* ---------------------------------------------------------------------------
 * Tokens
 * ------------------------------------------------------------------------- */

enum tok_type {
    TOK_WORD,   /* bare identifier, keyword or number: [A-Za-z0-9_$]+ */
    TOK_STRING, /* '...' */
    TOK_QIDENT, /* "..." or `...` */
    TOK_OPEN,   /* ( [ { */
    TOK_CLOSE,  /* ) ] } */
    TOK_COMMA,
    TOK_OP,     /* any other single ASCII character */
};

struct tok {
    enum tok_type type;
    size_t start, end; /* byte offsets into the text, end exclusive */
    size_t depth;      /* bracket depth around the token (brackets: outside) */
    size_t match;      /* TOK_OPEN: index of the matching TOK_CLOSE */
};

struct parser {
    const char *text;
    size_t len;
    struct tok *toks;
    size_t n, alloc;
    struct chc_err *err;
};

/* A run of tokens [first, last], both inclusive. */
struct span {
    size_t first, last;
};

#define SNIP_MAX 40

static int is_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Copy at most SNIP_MAX bytes of s[0..n) into out (SNIP_MAX + 4 bytes) for an
 * error message, with control bytes shown as '?' so the message stays on one
 * line. */
static const char *snip(const char *s, size_t n, char *out)
{
    size_t i, k = n > SNIP_MAX ? SNIP_MAX : n;

    for (i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (k < n) {
        memcpy(out + k, "...", 3);
        k += 3;
    }
    out[k] = '\0';
    return out;
}

static const char *tok_snip(const struct parser *p, size_t i, char *out)
{
    return snip(p->text + p->toks[i].start, p->toks[i].end - p->toks[i].start, out);
}

static int push_tok(struct parser *p, enum tok_type type, size_t start, size_t end,
                    size_t depth)
{
    struct tok *t;

    if (p->n == p->alloc) {
        size_t n = p->alloc ? p->alloc * 2 : 64;

        t = realloc(p->toks, n * sizeof(*t));
        if (!t)
            return chc_err_set(p->err, -ENOMEM, "out of memory");
        p->toks = t;
        p->alloc = n;
    }
    t = &p->toks[p->n++];
    t->type = type;
    t->start = start;
    t->end = end;
    t->depth = depth;
    t->match = 0;
    return 0;
}

static char closer_of(char open)
{
    return open == '(' ? ')' : open == '[' ? ']' : '}';
}

/* Skip a quoted token starting at s[i] (the opening quote); ClickHouse rules:
 * a backslash escapes the next byte, a doubled quote stands for itself. */
static int lex_quoted(struct parser *p, size_t *pos)
{
    const char *s = p->text;
    size_t i = *pos + 1;
    char q = s[*pos];

    for (;;) {
        if (i >= p->len)
            return chc_err_set(p->err, CHC_EPARSE,
                               "unterminated %s starting at byte offset %zu: add the "
                               "closing %c",
                               q == '\'' ? "string literal" : "quoted identifier", *pos, q);
        if (s[i] == '\\') {
            i += 2;
            continue;
        }
        if (s[i] == q) {
            if (s[i + 1] == q) {
                i += 2;
                continue;
            }
            *pos = i + 1;
            return 0;
        }
        i++;
    }
}

/* Split p->text into p->toks, matching brackets. Comments and whitespace are
 * dropped (they stay in the text between a span's first and last token). */
static int lex(struct parser *p)
{
    const char *s = p->text;
    size_t i = 0, depth = 0, nstack = 0, astack = 0, *stack = NULL;
    char buf[SNIP_MAX + 4];
    int r;

    while (i < p->len) {
        unsigned char c = (unsigned char)s[i];
        size_t st = i;

        if (is_space(c)) {
            i++;
            continue;
        }
        /* s[len] is the terminating NUL, so looking one byte ahead is safe. */
        if ((c == '-' && s[i + 1] == '-') || (c == '/' && s[i + 1] == '/') ||
            (c == '#' && (s[i + 1] == ' ' || s[i + 1] == '!'))) {
            while (i < p->len && s[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && s[i + 1] == '*') {
            size_t nest = 1; /* ClickHouse nests block comments */

            i += 2;
            while (nest && i < p->len) {
                if (s[i] == '/' && s[i + 1] == '*') {
                    nest++;
                    i += 2;
                } else if (s[i] == '*' && s[i + 1] == '/') {
                    nest--;
                    i += 2;
                } else {
                    i++;
                }
            }
            if (nest) {
                r = chc_err_set(p->err, CHC_EPARSE,
                                "unterminated comment starting at byte offset %zu: close "
                                "it with */",
                                st);
                goto fail;
            }
            continue;
        }
        if (c == '\'' || c == '"' || c == '`') {
            r = lex_quoted(p, &i);
            if (r < 0)
                goto fail;
            r = push_tok(p, c == '\'' ? TOK_STRING : TOK_QIDENT, st, i, depth);
            if (r < 0)
                goto fail;
            continue;
        }
        if (is_word_char(c)) {
            while (i < p->len && is_word_char((unsigned char)s[i]))
                i++;
            r = push_tok(p, TOK_WORD, st, i, depth);
            if (r < 0)
                goto fail;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') {
            if (nstack == astack) {
                size_t n = astack ? astack * 2 : 16;
                size_t *ns = realloc(stack, n * sizeof(*ns));

                if (!ns) {
                    r = chc_err_set(p->err, -ENOMEM, "out of memory");
                    goto fail;
                }
                stack = ns;
                astack = n;
            }
            stack[nstack++] = p->n;
            r = push_tok(p, TOK_OPEN, st, i + 1, depth);
            if (r < 0)
                goto fail;
            depth++;
            i++;
            continue;
        }
        if (c == ')' || c == ']' || c == '}') {
            size_t open;

            if (!nstack) {
                r = chc_err_set(p->err, CHC_EPARSE,
                                "unbalanced parentheses: unexpected '%c' at byte offset %zu: "
                                "remove it or add the opening bracket",
                                c, st);
                goto fail;
            }
            open = stack[--nstack];
            if (closer_of(s[p->toks[open].start]) != (char)c) {
                r = chc_err_set(p->err, CHC_EPARSE,
                                "unbalanced parentheses: '%c' at byte offset %zu is closed "
                                "by '%c' at byte offset %zu",
                                s[p->toks[open].start], p->toks[open].start, c, st);
                goto fail;
            }
            depth--;
            p->toks[open].match = p->n;
            r = push_tok(p, TOK_CLOSE, st, i + 1, depth);
            if (r < 0)
                goto fail;
            i++;
            continue;
        }
        if (c == ';') {
            r = chc_err_set(p->err, CHC_EPARSE,
                            "unexpected ';' at byte offset %zu: the engine definition is "
                            "part of one statement, remove it",
                            st);
            goto fail;
        }
        if (c < 0x20 || c >= 0x7f) {
            r = chc_err_set(p->err, CHC_EPARSE,
                            "unexpected byte 0x%02x at byte offset %zu: only ASCII text is "
                            "allowed outside quotes",
                            c, st);
            goto fail;
        }
        r = push_tok(p, c == ',' ? TOK_COMMA : TOK_OP, st, i + 1, depth);
        if (r < 0)
            goto fail;
        i++;
    }
    if (nstack) {
        size_t open = stack[nstack - 1];

        r = chc_err_set(p->err, CHC_EPARSE,
                        "unbalanced parentheses: '%c' at byte offset %zu is never closed "
                        "(near '%s'): add the closing '%c'",
                        s[p->toks[open].start], p->toks[open].start,
                        snip(s + p->toks[open].start, p->len - p->toks[open].start, buf),
                        closer_of(s[p->toks[open].start]));
        goto fail;
    }
    free(stack);
    return 0;

fail:
    free(stack);
    return r;
}

/* ---------------------------------------------------------------------------
 * Token predicates
 * ------------------------------------------------------------------------- */

static int tok_is_word(const struct parser *p, size_t i, const char *w)
{
    const struct tok *t = &p->toks[i];
    size_t n = strlen(w);

    return t->type == TOK_WORD && t->end - t->start == n &&
           strncasecmp(p->text + t->start, w, n) == 0;
}

static int tok_is_char(const struct parser *p, size_t i, char c)
{
    const struct tok *t = &p->toks[i];

    return t->end - t->start == 1 && p->text[t->start] == c;
}

/* Can an expression end with this token? Words, literals, quoted identifiers
 * and closing brackets can; operators and commas cannot. */
static int tok_ends_expr(const struct parser *p, size_t i)
{
    enum tok_type t = p->toks[i].type;

    return t == TOK_WORD || t == TOK_STRING || t == TOK_QIDENT || t == TOK_CLOSE;
}

/* A literal in ClickHouse's sense, as far as engine arguments go: a string
 * or a number. */
static int span_is_literal(const struct parser *p, const struct span *a)
{
    const struct tok *t = &p->toks[a->first];

    if (a->first != a->last)
        return 0;
    return t->type == TOK_STRING ||
           (t->type == TOK_WORD && p->text[t->start] >= '0' && p->text[t->start] <= '9');
}

static int span_is_string(const struct parser *p, const struct span *a)
{
    return a->first == a->last && p->toks[a->first].type == TOK_STRING;
}

static char *span_dup(const struct parser *p, size_t first, size_t last)
{
    return chc_strndup(p->text + p->toks[first].start,
                       p->toks[last].end - p->toks[first].start);
}

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
};

/* The clause keyword starting at token i, or -1; *ret_ntok gets its length.
 * At the first token of an expression only two-word keywords count, so
 * "ORDER BY ttl" orders by a column named ttl, as in ClickHouse. */
static int clause_at(const struct parser *p, size_t i, int expr_start, size_t *ret_ntok)
{
    int c;

    if (i >= p->n || p->toks[i].type != TOK_WORD || p->toks[i].depth != 0)
        return -1;
    for (c = 0; c < _CL_MAX; c++) {
        if (!tok_is_word(p, i, clauses[c].w1))
            continue;
        if (clauses[c].w2) {
            if (i + 1 < p->n && tok_is_word(p, i + 1, clauses[c].w2)) {
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
 * Parsing helpers
 * ------------------------------------------------------------------------- */

/* Split tokens [from, to) at commas of the given depth into *ret_items. An
 * empty range gives no items; an empty item is an error. */
static int split_list(struct parser *p, size_t from, size_t to, size_t depth,
                      const char *what, struct span **ret_items, size_t *ret_n)
{
    struct span *items = NULL;
    size_t j, n = 0, ncommas = 0, cur = from;
    int r;

    if (from == to) {
        *ret_items = NULL;
        *ret_n = 0;
        return 0;
    }
    for (j = from; j < to; j++)
        if (p->toks[j].type == TOK_COMMA && p->toks[j].depth == depth)
            ncommas++;
    items = calloc(ncommas + 1, sizeof(*items));
    if (!items)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    for (j = from; j <= to; j++) {
        if (j < to && !(p->toks[j].type == TOK_COMMA && p->toks[j].depth == depth))
            continue;
        if (j == cur) {
            size_t at = j < to ? p->toks[j].start : p->toks[j - 1].end;

            r = chc_err_set(p->err, CHC_EPARSE,
                            "empty %s at byte offset %zu: remove the extra comma", what, at);
            goto fail;
        }
        items[n].first = cur;
        items[n].last = j - 1;
        n++;
        cur = j + 1;
    }
    *ret_items = items;
    *ret_n = n;
    return 0;

fail:
    free(items);
    return r;
}

/* Decode the string literal token i (quotes, backslash escapes, doubled
 * quotes) into a new string. */
static int unquote(struct parser *p, size_t i, const char *what, char **ret)
{
    const char *s = p->text + p->toks[i].start + 1;
    const char *end = p->text + p->toks[i].end - 1;
    struct chc_buf b = CHC_BUF_INIT;
    int r = 0;

    while (r == 0 && s < end) {
        char c = *s++;

        if (c == '\\') {
            /* The lexer guarantees a byte after the backslash before end. */
            c = *s++;
            switch (c) {
            case 'a': c = '\a'; break;
            case 'b': c = '\b'; break;
            case 'e': c = '\x1b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'v': c = '\v'; break;
            case '0': c = '\0'; break;
            case 'x': {
                int k, v = 0;

                for (k = 0; k < 2 && s + k < end; k++) {
                    char h = s[k];
                    int d = (h >= '0' && h <= '9') ? h - '0'
                          : (h >= 'a' && h <= 'f') ? h - 'a' + 10
                          : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
                    if (d < 0)
                        break;
                    v = v * 16 + d;
                }
                if (k == 2) {
                    c = (char)v;
                    s += 2;
                }
                break;
            }
            default: break;
            }
        } else if (c == '\'') {
            s++; /* a doubled quote stands for one */
        }
        if (c == '\0') {
            r = chc_err_set(p->err, CHC_ECONFIG,
                            "%s at byte offset %zu contains a NUL byte: remove the \\0 "
                            "escape",
                            what, p->toks[i].start);
            goto fail;
        }
        r = chc_buf_addch(&b, c);
    }
    if (r < 0) {
        r = chc_err_set(p->err, r, "out of memory");
        goto fail;
    }
    *ret = chc_buf_take(&b, NULL);
    if (!*ret)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    return 0;

fail:
    chc_buf_release(&b);
    return r;
}

/* Fill e->key_columns from the key expression tokens [first, last]. */
static int split_key(struct parser *p, size_t first, size_t last, const char *what,
                     struct engine_info *e)
{
    struct span *items = NULL;
    size_t n = 0, k, open = 0;
    int r, list = 0;

    if (p->toks[first].type == TOK_OPEN && tok_is_char(p, first, '(') &&
        p->toks[first].match == last) {
        open = first;
        list = 1;
    } else if (last > first + 1 && tok_is_word(p, first, "tuple") &&
               p->toks[first + 1].type == TOK_OPEN && tok_is_char(p, first + 1, '(') &&
               p->toks[first + 1].match == last) {
        open = first + 1;
        list = 1;
    }
    if (list) {
        r = split_list(p, open + 1, last, p->toks[open].depth + 1, what, &items, &n);
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
        e->key_columns[k] = span_dup(p, items[k].first, items[k].last);
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
 * Public API
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
    for (i = 0; i < e->n_key_columns; i++)
        free(e->key_columns[i]);
    free(e->key_columns);
    free(e);
    return NULL;
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
    struct parser p = {.text = text ? text : "", .err = err};
    struct engine_info *e = NULL;
    struct span *args = NULL;
    struct span ex[_CL_MAX] = {{0, 0}};
    size_t kw_at[_CL_MAX] = {0};
    int seen[_CL_MAX] = {0};
    const struct family *fam;
    size_t i, j, k, nargs = 0, own_first = 0, name_len;
    const char *name;
    char buf[SNIP_MAX + 4];
    int r, c;

    p.len = strlen(p.text);
    r = lex(&p);
    if (r < 0)
        goto fail;
    if (p.n == 0) {
        r = chc_err_set(err, CHC_EPARSE,
                        "engine definition is empty: write e.g. ENGINE = MergeTree "
                        "ORDER BY (key)");
        goto fail;
    }

    /* 2. ENGINE [=] name [(args)] */
    i = 0;
    if (tok_is_word(&p, 0, "ENGINE")) {
        i = 1;
        if (i < p.n && tok_is_char(&p, i, '='))
            i++;
    }
    if (i >= p.n || clause_at(&p, i, 0, &k) >= 0) {
        r = chc_err_set(err, CHC_EPARSE,
                        "missing engine name: write e.g. ENGINE = MergeTree ORDER BY (key)");
        goto fail;
    }
    name = p.text + p.toks[i].start;
    name_len = p.toks[i].end - p.toks[i].start;
    if (p.toks[i].type != TOK_WORD || (name[0] >= '0' && name[0] <= '9')) {
        r = chc_err_set(err, CHC_EPARSE,
                        "expected an engine name at byte offset %zu, got '%s': write e.g. "
                        "ENGINE = MergeTree ORDER BY (key)",
                        p.toks[i].start, tok_snip(&p, i, buf));
        goto fail;
    }
    e = calloc(1, sizeof(*e));
    if (!e) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    e->name = span_dup(&p, i, i);
    if (!e->name) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    if (name_len > strlen(REPLICATED) && strncmp(name, REPLICATED, strlen(REPLICATED)) == 0)
        e->replicated = 1;
    e->base_name = chc_strdup(e->name + (e->replicated ? strlen(REPLICATED) : 0));
    if (!e->base_name) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    fam = family_find(e->base_name);
    if (!fam) {
        const char *mt = "mergetree";
        size_t mtl = strlen(mt);

        if (name_len >= mtl && strncasecmp(name + name_len - mtl, mt, mtl) == 0)
            r = chc_err_set(err, CHC_ECONFIG,
                            "engine '%s' is not supported: not a known *MergeTree variant "
                            "(names are case-sensitive), use [Replicated]MergeTree, "
                            "ReplacingMergeTree, SummingMergeTree, AggregatingMergeTree, "
                            "CollapsingMergeTree, VersionedCollapsingMergeTree, "
                            "GraphiteMergeTree or CoalescingMergeTree",
                            snip(name, name_len, buf));
        else
            r = chc_err_set(err, CHC_ECONFIG,
                            "engine '%s' is not supported: only *MergeTree engines can be a "
                            "copy destination",
                            snip(name, name_len, buf));
        goto fail;
    }
    i++;
    if (i < p.n && p.toks[i].type == TOK_OPEN && tok_is_char(&p, i, '(')) {
        size_t close = p.toks[i].match;

        r = split_list(&p, i + 1, close, p.toks[i].depth + 1, "engine argument", &args,
                       &nargs);
        if (r < 0)
            goto fail;
        i = close + 1;
    }

    /* 3. the Replicated pair (registerStorageMergeTree's rules) */
    if (e->replicated) {
        if (nargs >= 2 && span_is_string(&p, &args[0]) && span_is_string(&p, &args[1])) {
            r = unquote(&p, args[0].first, "zookeeper_path", &e->zk_path);
            if (r < 0)
                goto fail;
            r = unquote(&p, args[1].first, "replica_name", &e->replica_name);
            if (r < 0)
                goto fail;
            if (!e->zk_path[0] || !e->replica_name[0]) {
                r = chc_err_set(err, CHC_ECONFIG,
                                "engine '%s' has an empty %s: give both 'zookeeper_path' "
                                "and 'replica_name', or neither to use the server defaults",
                                e->name, e->zk_path[0] ? "replica_name" : "zookeeper_path");
                goto fail;
            }
            own_first = 2;
        } else if (!(nargs == 0 || !span_is_literal(&p, &args[0]) ||
                     (nargs == 1 && strcmp(fam->name, "GraphiteMergeTree") == 0))) {
            r = chc_err_set(err, CHC_ECONFIG,
                            "engine '%s' needs two string arguments ('zookeeper_path', "
                            "'replica_name') or none, got %zu argument%s: give both, or "
                            "drop them to use the server defaults",
                            e->name, nargs, nargs == 1 ? "" : "s");
            goto fail;
        }
    }
    if (own_first < nargs)
        e->args = span_dup(&p, args[own_first].first, args[nargs - 1].last);
    else
        e->args = chc_strdup("");
    if (!e->args) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }

    /* 4. clauses */
    while (i < p.n) {
        c = clause_at(&p, i, 0, &k);
        if (c < 0) {
            r = chc_err_set(err, CHC_EPARSE,
                            "unexpected '%s' at byte offset %zu: expected PARTITION BY, "
                            "ORDER BY, PRIMARY KEY, SAMPLE BY, TTL or SETTINGS",
                            tok_snip(&p, i, buf), p.toks[i].start);
            goto fail;
        }
        if (seen[c]) {
            r = chc_err_set(err, CHC_EPARSE,
                            "duplicate %s at byte offset %zu (first at byte offset %zu): "
                            "give each clause once",
                            clauses[c].name, p.toks[i].start, kw_at[c]);
            goto fail;
        }
        seen[c] = 1;
        kw_at[c] = p.toks[i].start;
        i += k;
        for (j = i; j < p.n; j++) {
            if (p.toks[j].depth != 0)
                continue;
            if (j == i ? clause_at(&p, j, 1, &k) >= 0
                       : tok_ends_expr(&p, j - 1) && clause_at(&p, j, 0, &k) >= 0)
                break;
        }
        if (j == i) {
            r = chc_err_set(err, CHC_EPARSE,
                            "%s at byte offset %zu has no expression: write one after it or "
                            "remove the clause",
                            clauses[c].name, kw_at[c]);
            goto fail;
        }
        if (!tok_ends_expr(&p, j - 1)) {
            r = chc_err_set(err, CHC_EPARSE,
                            "%s expression ends with '%s' at byte offset %zu: complete the "
                            "expression",
                            clauses[c].name, tok_snip(&p, j - 1, buf), p.toks[j - 1].start);
            goto fail;
        }
        if (clauses[c].single) {
            for (k = i; k < j; k++) {
                if (p.toks[k].type == TOK_COMMA && p.toks[k].depth == 0) {
                    r = chc_err_set(err, CHC_EPARSE,
                                    "%s at byte offset %zu has a top-level comma at byte "
                                    "offset %zu: wrap a list in parentheses, e.g. %s (a, b)",
                                    clauses[c].name, kw_at[c], p.toks[k].start,
                                    clauses[c].name);
                    goto fail;
                }
            }
        }
        ex[c].first = i;
        ex[c].last = j - 1;
        i = j;
    }

    /* 5. semantic checks */
    if (!seen[CL_ORDER] && !seen[CL_PRIMARY]) {
        if (nargs - own_first >= 3)
            r = chc_err_set(err, CHC_ECONFIG,
                            "old-syntax MergeTree(date, key, granularity) is not supported: "
                            "rewrite the engine with PARTITION BY toYYYYMM(date) ORDER BY "
                            "(key)");
        else
            r = chc_err_set(err, CHC_ECONFIG,
                            "engine '%s' has no ORDER BY clause: add ORDER BY (key columns), "
                            "or ORDER BY tuple() for an unsorted table",
                            e->name);
        goto fail;
    }
    if (nargs - own_first < fam->min_args || nargs - own_first > fam->max_args) {
        r = chc_err_set(err, CHC_ECONFIG,
                        "engine '%s' has %zu engine argument%s, expected %s%s%s", e->name,
                        nargs - own_first, nargs - own_first == 1 ? "" : "s",
                        e->replicated ? REPLICATED : "", fam->usage,
                        e->replicated ? " after the optional 'zookeeper_path', "
                                        "'replica_name' pair"
                                      : "");
        goto fail;
    }

    {
        char **fields[_CL_MAX] = {
            [CL_PARTITION] = &e->partition_by, [CL_ORDER] = &e->order_by,
            [CL_PRIMARY] = &e->primary_key,    [CL_SAMPLE] = &e->sample_by,
            [CL_TTL] = &e->ttl,                [CL_SETTINGS] = &e->settings,
        };

        for (c = 0; c < _CL_MAX; c++) {
            if (!seen[c])
                continue;
            *fields[c] = span_dup(&p, ex[c].first, ex[c].last);
            if (!*fields[c]) {
                r = chc_err_set(err, -ENOMEM, "out of memory");
                goto fail;
            }
        }
    }
    /* PRIMARY KEY without ORDER BY sorts by the primary key (ClickHouse). */
    if (!e->order_by) {
        e->order_by = chc_strdup(e->primary_key);
        if (!e->order_by) {
            r = chc_err_set(err, -ENOMEM, "out of memory");
            goto fail;
        }
    }
    c = seen[CL_PRIMARY] ? CL_PRIMARY : CL_ORDER;
    r = split_key(&p, ex[c].first, ex[c].last,
                  c == CL_PRIMARY ? "PRIMARY KEY element" : "ORDER BY element", e);
    if (r < 0)
        goto fail;

    free(args);
    free(p.toks);
    *ret = e;
    return 0;

fail:
    free(args);
    free(p.toks);
    engine_free(e);
    return r;
}

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
        !str_equal(a->settings, b->settings))
        return 0;
    for (i = 0; i < a->n_key_columns; i++)
        if (!str_equal(a->key_columns[i], b->key_columns[i]))
            return 0;
    return 1;
}
