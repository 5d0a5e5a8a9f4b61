/* compat-gen.h — shared by compat-gen's phases (compat-gen.c: records, the
 * task of an entry, captured answers; compat-prepare.c: fixtures and
 * prepare; compat-move.c: copy, move, release). */
#ifndef CHC_COMPAT_GEN_H
#define CHC_COMPAT_GEN_H

#include <stddef.h>

#include "chcopier/base/buf.h"
#include "chcopier/sql/ddl.h"

struct ch_rows;
struct cfg_task;
struct compat_entry;

/* What compat-run checks about a statement (NULL: nothing). */
struct gen_rec {
    const char *note, *format, *expect, *expect_error, *save, *same, *capture, *data, *xfail;
    const char *empty_data_error; /* @data's output empty: expect this error instead */
};

struct gen_cols {
    struct ch_rows *rows;
    struct sql_column *v;
    size_t n;
};

extern const char *gen_dir;
/* The engine's version (sql/dialect.h), from DIR/engine.txt; 0 unknown. */
extern unsigned gen_version;

void gen_fail(const char *what, const char *msg) __attribute__((noreturn));
void gen_oom(int r);
void gen_emit(const char *name, const struct gen_rec *o, const char *sql);
void gen_emit_buf(const char *name, const struct gen_rec *o, struct chc_buf *b, int r);
struct cfg_task *gen_task(const struct compat_entry *e);
char *gen_read(const char *prefix, const struct compat_entry *e, const char *suffix);
struct gen_cols gen_describe(const char *prefix, const struct compat_entry *e);
void gen_cols_free(struct gen_cols *c);

void gen_fixtures(void);
void gen_prepare(void);
void gen_move(void);
void gen_xver(void);

#endif
