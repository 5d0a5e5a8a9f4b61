/* check.h — the statements of the preflight (docs/design.md, "Preflight"):
 * the task's expressions evaluated on the source with LIMIT 0, together
 * (with their types) or one at a time (to name the one at fault), and the
 * piece hash and route chcopier will generate. Pure, golden-tested.
 */
#ifndef CHC_SQL_CHECK_H
#define CHC_SQL_CHECK_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

struct cfg_table;
struct plan_key;

/* Does a node answer? (and which version: version-dependent SQL is chosen
 * by it) */
#define SQL_PROBE "SELECT version()"

/* SELECT (<sharding_key>), <ORDER BY elements>, (<PARTITION BY>) FROM
 * source [WHERE (<where_condition>)] LIMIT 0 FORMAT TSVWithNamesAndTypes */
int sql_check_exprs(const struct cfg_table *tb, struct chc_buf *out);

/* The task's elements, one at a time. */
enum sql_element {
    SQL_EL_WHERE,     /* <where_condition> */
    SQL_EL_KEY,       /* <sharding_key> */
    SQL_EL_PARTITION, /* PARTITION BY of <engine> */
    SQL_EL_ORDER,     /* ORDER BY element i of <engine> */
};
int sql_check_element(const struct cfg_table *tb, enum sql_element e, size_t i,
                      struct chc_buf *out);

/* SELECT <piece filter of 2 pieces>, <route filter of shard 1> FROM source
 * LIMIT 0; CHC_ECONFIG when the key cannot be routed (plan_route_filter). */
int sql_check_generated(const struct cfg_table *tb, const char *split_args,
                        const struct plan_key *key, struct chc_buf *out, struct chc_err *err);

#endif
