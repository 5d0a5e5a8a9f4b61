/* lex.c — the tokenizer for ClickHouse SQL fragments (config/lex.h).
 *
 * Owns the token rules of ClickHouse's Lexer.cpp as far as an ENGINE clause
 * needs them: quotes and their escapes, comments, bracket matching, and the
 * questions engine.c asks about tokens and spans (is it a word, a literal,
 * where does a list split). It finds boundaries only: it never interprets an
 * expression, so what ClickHouse sees is what the user wrote. Pure: no I/O,
 * no logging; errors go to the parser's chc_err with a byte offset.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/config/lex.h"

#include "base/banned.h"

static int is_word_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$';
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* See config/lex.h. */
const char *cfg_lex_snip(const char *s, size_t n, char *out)
{
    size_t i, k = n > CFG_SNIP_MAX ? CFG_SNIP_MAX : n;

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

const char *cfg_tok_snip(const struct cfg_lexer *p, size_t i, char *out)
{
    return cfg_lex_snip(p->text + p->toks[i].start, p->toks[i].end - p->toks[i].start, out);
}

static int push_tok(struct cfg_lexer *p, enum cfg_tok_type type, size_t start, size_t end,
                    size_t depth)
{
    struct cfg_tok *t;

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
static int lex_quoted(struct cfg_lexer *p, size_t *pos)
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

/* The open brackets of cfg_lex(): indexes of their tokens, innermost last. */
struct brackets {
    size_t *v;
    size_t n, alloc;
};

/* Skip the comment at *pos, if there is one: 1 if one was skipped (*pos is
 * past it), 0 if none starts there, CHC_EPARSE for an unterminated block
 * comment. p->text[p->len] is the terminating NUL, so looking one byte ahead
 * is safe. */
static int skip_comment(struct cfg_lexer *p, size_t *pos)
{
    const char *s = p->text;
    size_t i = *pos, st = i;
    unsigned char c = (unsigned char)s[i];

    if ((c == '-' && s[i + 1] == '-') || (c == '/' && s[i + 1] == '/') ||
        (c == '#' && (s[i + 1] == ' ' || s[i + 1] == '!'))) {
        while (i < p->len && s[i] != '\n')
            i++;
        *pos = i;
        return 1;
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
        if (nest)
            return chc_err_set(p->err, CHC_EPARSE,
                               "unterminated comment starting at byte offset %zu: close "
                               "it with */",
                               st);
        *pos = i;
        return 1;
    }
    return 0;
}

/* The opening bracket at byte st, at the given depth. */
static int open_bracket(struct cfg_lexer *p, struct brackets *b, size_t st, size_t depth)
{
    if (b->n == b->alloc) {
        size_t n = b->alloc ? b->alloc * 2 : 16;
        size_t *ns = realloc(b->v, n * sizeof(*ns));

        if (!ns)
            return chc_err_set(p->err, -ENOMEM, "out of memory");
        b->v = ns;
        b->alloc = n;
    }
    b->v[b->n++] = p->n;
    return push_tok(p, CFG_TOK_OPEN, st, st + 1, depth);
}

/* The closing bracket at byte st: it must match the innermost open one. */
static int close_bracket(struct cfg_lexer *p, struct brackets *b, size_t st, size_t *depth)
{
    const char *s = p->text;
    unsigned char c = (unsigned char)s[st];
    size_t open;

    if (!b->n)
        return chc_err_set(p->err, CHC_EPARSE,
                           "unbalanced parentheses: unexpected '%c' at byte offset %zu: "
                           "remove it or add the opening bracket",
                           c, st);
    open = b->v[--b->n];
    if (closer_of(s[p->toks[open].start]) != (char)c)
        return chc_err_set(p->err, CHC_EPARSE,
                           "unbalanced parentheses: '%c' at byte offset %zu is closed "
                           "by '%c' at byte offset %zu",
                           s[p->toks[open].start], p->toks[open].start, c, st);
    (*depth)--;
    p->toks[open].match = p->n;
    return push_tok(p, CFG_TOK_CLOSE, st, st + 1, *depth);
}

/* The innermost bracket still open at the end of the text. */
static int unclosed(struct cfg_lexer *p, const struct brackets *b)
{
    const char *s = p->text;
    size_t open = b->v[b->n - 1];
    char buf[CFG_SNIP_MAX + 4];

    return chc_err_set(p->err, CHC_EPARSE,
                       "unbalanced parentheses: '%c' at byte offset %zu is never closed "
                       "(near '%s'): add the closing '%c'",
                       s[p->toks[open].start], p->toks[open].start,
                       cfg_lex_snip(s + p->toks[open].start, p->len - p->toks[open].start, buf),
                       closer_of(s[p->toks[open].start]));
}

/* Any other byte at st: a comma, an operator, or an error. */
static int other_char(struct cfg_lexer *p, unsigned char c, size_t st, size_t depth)
{
    if (c == ';')
        return chc_err_set(p->err, CHC_EPARSE,
                           "unexpected ';' at byte offset %zu: the engine definition is "
                           "part of one statement, remove it",
                           st);
    if (c < 0x20 || c >= 0x7f)
        return chc_err_set(p->err, CHC_EPARSE,
                           "unexpected byte 0x%02x at byte offset %zu: only ASCII text is "
                           "allowed outside quotes",
                           c, st);
    return push_tok(p, c == ',' ? CFG_TOK_COMMA : CFG_TOK_OP, st, st + 1, depth);
}

int cfg_lex(struct cfg_lexer *p)
{
    const char *s = p->text;
    struct brackets b = {0};
    size_t i = 0, depth = 0;
    int r;

    while (i < p->len) {
        unsigned char c = (unsigned char)s[i];
        size_t st = i;

        if (is_space(c)) {
            i++;
            continue;
        }
        r = skip_comment(p, &i);
        if (r < 0)
            goto fail;
        if (r > 0)
            continue;
        if (c == '\'' || c == '"' || c == '`') {
            r = lex_quoted(p, &i);
            if (r == 0)
                r = push_tok(p, c == '\'' ? CFG_TOK_STRING : CFG_TOK_QIDENT, st, i, depth);
            if (r < 0)
                goto fail;
            continue;
        }
        if (is_word_char(c)) {
            while (i < p->len && is_word_char((unsigned char)s[i]))
                i++;
            r = push_tok(p, CFG_TOK_WORD, st, i, depth);
            if (r < 0)
                goto fail;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') {
            r = open_bracket(p, &b, st, depth);
            depth++;
        } else if (c == ')' || c == ']' || c == '}') {
            r = close_bracket(p, &b, st, &depth);
        } else {
            r = other_char(p, c, st, depth);
        }
        if (r < 0)
            goto fail;
        i++;
    }
    if (b.n) {
        r = unclosed(p, &b);
        goto fail;
    }
    free(b.v);
    return 0;

fail:
    free(b.v);
    return r;
}

/* ---------------------------------------------------------------------------
 * Token predicates and spans
 * ------------------------------------------------------------------------- */

int cfg_tok_is_word(const struct cfg_lexer *p, size_t i, const char *w)
{
    const struct cfg_tok *t = &p->toks[i];
    size_t n = strlen(w);

    return t->type == CFG_TOK_WORD && t->end - t->start == n &&
           strncasecmp(p->text + t->start, w, n) == 0;
}

int cfg_tok_is_char(const struct cfg_lexer *p, size_t i, char c)
{
    const struct cfg_tok *t = &p->toks[i];

    return t->end - t->start == 1 && p->text[t->start] == c;
}

/* Can an expression end with this token? Words, literals, quoted identifiers
 * and closing brackets can; operators and commas cannot. */
int cfg_tok_ends_expr(const struct cfg_lexer *p, size_t i)
{
    enum cfg_tok_type t = p->toks[i].type;

    return t == CFG_TOK_WORD || t == CFG_TOK_STRING || t == CFG_TOK_QIDENT || t == CFG_TOK_CLOSE;
}

/* A literal in ClickHouse's sense, as far as engine arguments go: a string
 * or a number. */
int cfg_span_is_literal(const struct cfg_lexer *p, const struct cfg_span *a)
{
    const struct cfg_tok *t = &p->toks[a->first];

    if (a->first != a->last)
        return 0;
    return t->type == CFG_TOK_STRING ||
           (t->type == CFG_TOK_WORD && p->text[t->start] >= '0' && p->text[t->start] <= '9');
}

int cfg_span_is_string(const struct cfg_lexer *p, const struct cfg_span *a)
{
    return a->first == a->last && p->toks[a->first].type == CFG_TOK_STRING;
}

char *cfg_span_dup(const struct cfg_lexer *p, size_t first, size_t last)
{
    return chc_strndup(p->text + p->toks[first].start,
                       p->toks[last].end - p->toks[first].start);
}

/* Split tokens [from, to) at commas of the given depth into *ret_items. An
 * empty range gives no items; an empty item is an error. */
int cfg_lex_split(struct cfg_lexer *p, size_t from, size_t to, size_t depth,
                       const char *what, struct cfg_span **ret_items, size_t *ret_n)
{
    struct cfg_span *items = NULL;
    size_t j, n = 0, ncommas = 0, cur = from;
    int r;

    if (from == to) {
        *ret_items = NULL;
        *ret_n = 0;
        return 0;
    }
    for (j = from; j < to; j++)
        if (p->toks[j].type == CFG_TOK_COMMA && p->toks[j].depth == depth)
            ncommas++;
    items = calloc(ncommas + 1, sizeof(*items));
    if (!items)
        return chc_err_set(p->err, -ENOMEM, "out of memory");
    for (j = from; j <= to; j++) {
        if (j < to && !(p->toks[j].type == CFG_TOK_COMMA && p->toks[j].depth == depth))
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
int cfg_lex_unquote(struct cfg_lexer *p, size_t i, const char *what, char **ret)
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
