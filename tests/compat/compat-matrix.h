/* compat-matrix.h — the destination definitions scripts/compat runs
 * chcopier's statements against (compat-matrix.c), one table task each. */
#ifndef CHC_COMPAT_MATRIX_H
#define CHC_COMPAT_MATRIX_H

#include <stddef.h>

#define COMPAT_DB "chc_compat"

struct compat_entry {
    const char *name;       /* tables src_<name>, dst_<name>; the task's table */
    const char *cols;       /* column list of CREATE TABLE, with indices etc. */
    const char *engine;     /* the task's <engine> (and the tables' engine) */
    const char *dst_engine; /* NULL: engine; else what the tables get in-process */
    const char *comment;    /* table COMMENT or NULL */
    const char *key;        /* <sharding_key> */
    const char *where;      /* <where_condition> or NULL */
    unsigned splits;        /* <number_of_splits> */
    const char *insert;     /* "(cols) SELECT ..." for INSERT INTO src_<name> */
    const char *note;       /* what the in-process run substitutes, or NULL */
};

extern const struct compat_entry compat_matrix[];
extern const size_t compat_matrix_n;

#endif
