/* engine-lex.h — the tokenizer under engine.c; private to src/config.
 *
 * engine__lex() splits a SQL fragment into tokens the way ClickHouse's
 * Lexer.cpp does ('...', "...", `...` with backslash escapes and doubled
 * quotes; --, //, "# " and nested block comments; bracket nesting) and
 * matches every bracket with its partner. Tokens are byte ranges of the
 * text: an expression is kept as the exact source text from its first to its
 * last token. The helpers below answer questions about tokens and spans of
 * them; failing ones fill p->err. Nothing here knows clauses or engines.
 */
#ifndef CHC_ENGINE_LEX_H
#define CHC_ENGINE_LEX_H

#include <stddef.h>

#include "chcopier/base/err.h"

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

/* Set text, len and err; engine__lex() fills toks (free them with free()). */
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

/* Room for a snippet: SNIP_MAX bytes, "..." and the NUL. */
#define SNIP_MAX 40

/* Tokenize p->text: 0, CHC_EPARSE (unterminated quote or comment, unbalanced
 * brackets, ';', a byte outside ASCII text) or -ENOMEM. Comments and
 * whitespace are dropped (they stay in the text between a span's tokens). */
int engine__lex(struct parser *p);

/* Copy at most SNIP_MAX bytes of s[0..n) into out (SNIP_MAX + 4 bytes) for an
 * error message, control bytes shown as '?'; returns out. */
const char *engine__snip(const char *s, size_t n, char *out);
/* engine__snip() of token i. */
const char *engine__tok_snip(const struct parser *p, size_t i, char *out);

/* Token i is the word w (case-insensitive). */
int engine__tok_is_word(const struct parser *p, size_t i, const char *w);
/* Token i is the single character c. */
int engine__tok_is_char(const struct parser *p, size_t i, char c);
/* An expression can end with token i: a word, a literal, a quoted identifier
 * or a closing bracket (not an operator or a comma). */
int engine__tok_ends_expr(const struct parser *p, size_t i);

/* The span is one literal in ClickHouse's sense, as far as engine arguments
 * go: a string or a number. */
int engine__span_is_literal(const struct parser *p, const struct span *a);
/* The span is one string literal. */
int engine__span_is_string(const struct parser *p, const struct span *a);
/* A copy of the source text of tokens [first, last]; NULL on ENOMEM. */
char *engine__span_dup(const struct parser *p, size_t first, size_t last);

/* Split tokens [from, to) at the commas of the given depth into *ret_items
 * (free() them). An empty range gives no items; an empty item is CHC_EPARSE
 * naming `what`. */
int engine__split_list(struct parser *p, size_t from, size_t to, size_t depth,
                       const char *what, struct span **ret_items, size_t *ret_n);
/* Decode the string literal token i (quotes, backslash escapes, doubled
 * quotes) into a new string; a NUL byte in it is CHC_ECONFIG naming `what`. */
int engine__unquote(struct parser *p, size_t i, const char *what, char **ret);

#endif
