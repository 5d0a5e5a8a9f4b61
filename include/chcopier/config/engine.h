/* engine.h — the destination table's ENGINE clause, parsed and rebuilt.
 *
 * A clickhouse-copier task gives the destination engine as SQL text:
 *
 *   ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/hits', '{replica}')
 *   PARTITION BY toYYYYMM(EventDate) ORDER BY (CounterID, EventDate)
 *   SETTINGS index_granularity = 8192
 *
 * engine_parse() splits it into its parts without understanding expressions:
 * a tokenizer that knows ClickHouse quoting ('...', "...", `...`, backslash
 * escapes and doubled quotes), comments (--, //, "# ", nested block comments) and
 * bracket nesting finds the clause keywords at the top level, and every
 * expression is kept as the exact source text from its first to its last
 * token. Only *MergeTree engines with the new (extended) syntax are accepted,
 * because the copier must know the sorting key and must be able to create a
 * non-replicated staging twin of the table.
 *
 * Rules worth knowing (they follow ClickHouse's own parser):
 *   1. "ENGINE" and "=" are optional; clause keywords are case-insensitive and
 *      may come in any order; engine names are case-sensitive.
 *   2. Replicated engines take either two string literals first
 *      ('zookeeper_path', 'replica_name') or none (server defaults; then
 *      zk_path and replica_name are NULL and every argument is the engine's own).
 *   3. ORDER BY is required unless PRIMARY KEY is given, in which case
 *      order_by is a copy of primary_key (ClickHouse does the same).
 *   4. PARTITION BY, ORDER BY, PRIMARY KEY and SAMPLE BY are single
 *      expressions: a list must be wrapped in parentheses.
 *
 * Call sequence:
 *   1. engine_parse(text, &e, err)        -> 0 or CHC_EPARSE / CHC_ECONFIG
 *   2. engine_build_clause(e, plain, &buf, err) as often as needed
 *   3. e = engine_free(e)
 */
#ifndef CHC_ENGINE_H
#define CHC_ENGINE_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct engine_info {
    char *name;          /* "ReplicatedReplacingMergeTree" as written */
    char *base_name;     /* name without "Replicated": "ReplacingMergeTree" */
    int replicated;      /* 1 if name starts with Replicated */
    char *zk_path;       /* first Replicated arg, unquoted; NULL if arg-less Replicated */
    char *replica_name;  /* second Replicated arg, unquoted; NULL if arg-less */
    char *args;          /* the engine's own args after the replicated ones, raw text, e.g. "ver" or "" */
    char *partition_by;  /* raw expression text, NULL if absent */
    char *order_by;      /* raw expression text; never NULL after engine_parse() */
    char *primary_key;   /* raw text or NULL */
    char *sample_by;     /* raw text or NULL */
    char *ttl;           /* raw text or NULL */
    char *settings;      /* raw text after SETTINGS or NULL */
    char *comment;       /* the table's COMMENT literal as written ("'a b'"), or NULL:
                          * SHOW CREATE TABLE prints it after SETTINGS; rebuilt
                          * last, and only for the destination (plain=0) */
    /* Elements of PRIMARY KEY if present, else of ORDER BY: a parenthesised
     * list "(a, b)" or "tuple(a, b)" is unwrapped and split at its top-level
     * commas, anything else is one element; "tuple()" and "()" give none.
     * Elements are raw text, e.g. "intHash32(UserID)" or "b DESC". */
    char **key_columns;
    size_t n_key_columns;
};

/* Parse the text of a task's <engine> element. On success *ret is a new
 * engine_info (free with engine_free()); on failure *ret is untouched and err
 * says what is wrong and what to do: CHC_EPARSE for lexical and clause-level
 * syntax errors (with the byte offset), CHC_ECONFIG for valid SQL the copier
 * cannot use (not a *MergeTree, old MergeTree syntax, missing ORDER BY,
 * wrong number of engine arguments). */
int engine_parse(const char *text, struct engine_info **ret, struct chc_err *err);

/* NULL-safe; returns NULL. */
struct engine_info *engine_free(struct engine_info *e);

/* Append "ENGINE = <name>(<args>) [PARTITION BY ...] ORDER BY ... [PRIMARY KEY ...]
 * [SAMPLE BY ...] [TTL ...] [SETTINGS ...] [COMMENT ...]" to out, in that clause order.
 * plain=0 reproduces the original engine (zookeeper_path and replica_name
 * re-quoted, the COMMENT kept); plain=1 drops replication and the COMMENT:
 * base_name with only `args` (for the copier's non-replicated staging
 * tables). On failure out is left as it was. */
int engine_build_clause(const struct engine_info *e, int plain, struct chc_buf *out,
                        struct chc_err *err);

/* 1 if both describe the same engine (every field equal), else 0. */
int engine_equal(const struct engine_info *a, const struct engine_info *b);

#endif
