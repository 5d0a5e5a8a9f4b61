/* lex.h — ClickHouse's SQL tokens (src/config/lex.c): under the engine
 * parser (engine.c) and the staging twin of SHOW CREATE (sql/rewrite.c).
 *
 * cfg_lex() splits a SQL fragment into tokens the way ClickHouse's
 * Lexer.cpp does ('...', "...", `...` with backslash escapes and doubled
 * quotes; --, //, "# " and nested block comments; bracket nesting) and
 * matches every bracket with its partner. Tokens are byte ranges of the
 * text: an expression is kept as the exact source text from its first to its
 * last token. The helpers below answer questions about tokens and spans of
 * them; failing ones fill p->err. Nothing here knows clauses or engines.
 */
#ifndef CHC_CONFIG_LEX_H
#define CHC_CONFIG_LEX_H

#include <stddef.h>

#include "chcopier/base/err.h"

enum cfg_tok_type {
    CFG_TOK_WORD,   /* bare identifier, keyword or number: [A-Za-z0-9_$]+ */
    CFG_TOK_STRING, /* '...' */
    CFG_TOK_QIDENT, /* "..." or `...` */
    CFG_TOK_OPEN,   /* ( [ { */
    CFG_TOK_CLOSE,  /* ) ] } */
    CFG_TOK_COMMA,
    CFG_TOK_OP,     /* any other single ASCII character */
};

struct cfg_tok {
    enum cfg_tok_type type;
    size_t start, end; /* byte offsets into the text, end exclusive */
    size_t depth;      /* bracket depth around the token (brackets: outside) */
    size_t match;      /* CFG_TOK_OPEN: index of the matching CFG_TOK_CLOSE */
};

/* Set text, len and err; cfg_lex() fills toks (free them with free()). */
struct cfg_lexer {
    const char *text;
    size_t len;
    struct cfg_tok *toks;
    size_t n, alloc;
    struct chc_err *err;
};

/* A run of tokens [first, last], both inclusive. */
struct cfg_span {
    size_t first, last;
};

/* Room for a snippet: CFG_SNIP_MAX bytes, "..." and the NUL. */
#define CFG_SNIP_MAX 40

/* Tokenize p->text: 0, CHC_EPARSE (unterminated quote or comment, unbalanced
 * brackets, ';', a byte outside ASCII text) or -ENOMEM. Comments and
 * whitespace are dropped (they stay in the text between a span's tokens). */
int cfg_lex(struct cfg_lexer *p);

/* Copy at most CFG_SNIP_MAX bytes of s[0..n) into out (CFG_SNIP_MAX + 4 bytes) for an
 * error message, control bytes shown as '?'; returns out. */
const char *cfg_lex_snip(const char *s, size_t n, char *out);
/* cfg_lex_snip() of token i. */
const char *cfg_tok_snip(const struct cfg_lexer *p, size_t i, char *out);

/* Token i is the word w (case-insensitive). */
int cfg_tok_is_word(const struct cfg_lexer *p, size_t i, const char *w);
/* Token i is the single character c. */
int cfg_tok_is_char(const struct cfg_lexer *p, size_t i, char c);
/* An expression can end with token i: a word, a literal, a quoted identifier
 * or a closing bracket (not an operator or a comma). */
int cfg_tok_ends_expr(const struct cfg_lexer *p, size_t i);

/* The span is one literal in ClickHouse's sense, as far as engine arguments
 * go: a string or a number. */
int cfg_span_is_literal(const struct cfg_lexer *p, const struct cfg_span *a);
/* The span is one string literal. */
int cfg_span_is_string(const struct cfg_lexer *p, const struct cfg_span *a);
/* A copy of the source text of tokens [first, last]; NULL on ENOMEM. */
char *cfg_span_dup(const struct cfg_lexer *p, size_t first, size_t last);

/* Split tokens [from, to) at the commas of the given depth into *ret_items
 * (free() them). An empty range gives no items; an empty item is CHC_EPARSE
 * naming `what`. */
int cfg_lex_split(struct cfg_lexer *p, size_t from, size_t to, size_t depth,
                       const char *what, struct cfg_span **ret_items, size_t *ret_n);
/* Decode the string literal token i (quotes, backslash escapes, doubled
 * quotes) into a new string; a NUL byte in it is CHC_ECONFIG naming `what`. */
int cfg_lex_unquote(struct cfg_lexer *p, size_t i, const char *what, char **ret);

#endif
