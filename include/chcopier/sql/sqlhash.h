/* sqlhash.h — hashing rows and keys in SQL, for every ClickHouse type.
 *
 * chcopier hashes values in three places: the row checksum that verifies a
 * partition (sum of a row hash, on the source and on the destination), the
 * split of a partition into pieces (hash of the sorting key % n) and the
 * stand-in for a non-deterministic sharding key. cityHash64 accepts only some
 * types on some versions (18.16 rejects UUID, Decimal, AggregateFunction,
 * LowCardinality, Nullable inside an Array), so each value is first turned
 * into a form every supported server hashes the same way:
 *
 *   integers, floats, Date, DateTime, Enum, String, FixedString   as is
 *   UUID, Decimal                   reinterpretAsString(x): its bytes (toString
 *                                   is a trap: 18.16 prints 1.50 where 21.9+
 *                                   prints 1.5, and mangles big Decimal128)
 *   IPv4, IPv6, AggregateFunction states, unknown families  toString(x)
 *   Nullable(T)                     isNull(x), <T form of assumeNotNull(x)>
 *   LowCardinality(T)               the T form of CAST(x AS T)
 *   SimpleAggregateFunction(f, T)   the T form
 *   Array(T)                        x, or arrayMap(e -> cityHash64(<T form of e>), x)
 *   Tuple(T1, ...), Nested(...)     the forms of its elements, in order
 *   Map(K, V)                       arrayMap((k, v) -> cityHash64(<k>, <v>), keys, values)
 *
 * Pure: text in, text out; no I/O. The type text is what DESCRIBE or
 * TSVWithNamesAndTypes print (newlines and indentation of 24.x's pretty
 * type names are accepted).
 */
#ifndef CHC_SQLHASH_H
#define CHC_SQLHASH_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

/* Append the arguments for cityHash64(...) that stand for `expr` of type
 * `type` (one or more, comma-separated). CHC_EPARSE for a malformed type. */
int sqlhash_args(const char *expr, const char *type, struct chc_buf *out, struct chc_err *err);

/* Append "cityHash64(<sqlhash_args>)": a UInt64 per value. */
int sqlhash_u64(const char *expr, const char *type, struct chc_buf *out, struct chc_err *err);

/* Append `type` without LowCardinality wrappers, at any depth
 * ("Array(LowCardinality(String))" -> "Array(String)"). */
int sqlhash_strip_lc(const char *type, struct chc_buf *out, struct chc_err *err);

/* The family name of a type: "Array" for "Array(UInt8)", "DateTime" for
 * "DateTime('UTC')"; at most cap - 1 bytes. 0, or CHC_EPARSE. */
int sqlhash_family(const char *type, char *name, size_t cap);

/* 1 if a value of this type can be a sharding key of a Distributed table
 * (an integer, possibly LowCardinality); *ret_bits gets 8..64 and
 * *ret_signed whether it is signed. 0 otherwise. */
int sqlhash_int_key(const char *type, unsigned *ret_bits, int *ret_signed);

#endif
