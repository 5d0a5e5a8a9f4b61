/* compat-gen.c — writes the check file (compat-run.c's format) of one phase
 * of scripts/compat: chcopier's own statement builders (src/sql), applied to
 * the destination definitions of compat-matrix.c. Nothing here types a
 * statement chcopier sends; it types only the fixtures (the source and
 * destination tables, their rows) and the reads of what the engine prints.
 *
 * Usage: compat-gen PHASE DIR   (DIR: where compat-run captured earlier
 * phases' answers)
 *   fixtures  the database, the tables, their rows; DESCRIBE, SHOW CREATE
 *             TABLE, system.columns, system.tables facts captured
 *   prepare   (reads describe-*.tsv) the preflight's checks, discovery, the
 *             destination and staging CREATE TABLEs, system.parts captured
 *   move      (reads hdr-*.tsv, discover-*.values) the piece copies (pull
 *             and pipe), every move step, the checksums, release, the drops
 *   xver      the checksums of the same rows, to compare across versions
 *             (compat-xver.c; also run on 18.16 by test_compat_xver.py)
 *   config    the task's clusters as a server config (remote_servers) for
 *             the engine, so that Distributed tables can be created
 * Where a statement needs a cluster, the in-process engine gets the local
 * table instead, and the check's note says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/file.h"
#include "chcopier/ch/rows.h"
#include "chcopier/config/task.h"
#include "chcopier/sql/check.h"
#include "chcopier/sql/copy.h"
#include "chcopier/sql/dialect.h"
#include "chcopier/sql/ddl.h"
#include "chcopier/sql/move.h"
#include "chcopier/sql/plan.h"
#include "chcopier/sql/route.h"
#include "chcopier/sql/sqlhash.h"
#include "compat-gen.h"
#include "compat-matrix.h"

const char *gen_dir;
unsigned gen_version;

void gen_fail(const char *what, const char *msg)
{
    fprintf(stderr, "compat-gen: %s: %s\n", what, msg);
    exit(1);
}

void gen_oom(int r)
{
    if (r < 0)
        gen_fail("builder", "out of memory");
}

void gen_emit(const char *name, const struct gen_rec *o, const char *sql)
{
    static const struct gen_rec none;

    if (!o)
        o = &none;
    printf("@check %s\n", name);
    if (o->note)
        printf("@note %s\n", o->note);
    if (o->format)
        printf("@format %s\n", o->format);
    if (o->expect)
        printf("@expect %s\n", o->expect);
    if (o->expect_error)
        printf("@expect-error %s\n", o->expect_error);
    if (o->save)
        printf("@save %s\n", o->save);
    if (o->same)
        printf("@same %s\n", o->same);
    if (o->capture)
        printf("@capture %s\n", o->capture);
    if (o->data)
        printf("@data %s\n", o->data);
    if (o->xfail)
        printf("@xfail %s\n", o->xfail);
    if (o->empty_data_error)
        printf("@empty-data-error %s\n", o->empty_data_error);
    printf("@sql\n%s\n@end\n", sql);
}

/* A builder that returns a plain status: emit its text or stop. */
void gen_emit_buf(const char *name, const struct gen_rec *o, struct chc_buf *b, int r)
{
    gen_oom(r);
    gen_emit(name, o, b->buf);
    chc_buf_reset(b);
}

/* The task of one entry: source cluster of one shard, destination cluster
 * of two shards with weights 1 and 2 (so that routing splits rows). */
struct cfg_task *gen_task(const struct compat_entry *e)
{
    struct chc_buf b = CHC_BUF_INIT, eng = CHC_BUF_INIT;
    struct chc_err err = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    const char *p;

    for (p = e->engine; *p; p++)
        gen_oom(*p == '&' ? chc_buf_addstr(&eng, "&amp;")
                : *p == '<' ? chc_buf_addstr(&eng, "&lt;")
                            : chc_buf_addch(&eng, *p));
    gen_oom(chc_buf_addf(
        &b,
        "<clickhouse><remote_servers>"
        "<src><shard><replica><host>127.0.0.1</host><port>9000</port></replica></shard></src>"
        "<dst><shard><weight>1</weight><replica><host>127.0.0.1</host><port>9000</port>"
        "</replica></shard><shard><weight>2</weight><replica><host>127.0.0.2</host>"
        "<port>9000</port></replica></shard></dst></remote_servers><max_workers>2</max_workers>"
        "<settings_pull><max_threads>1</max_threads><max_block_size>8192</max_block_size>"
        "<preferred_block_size_bytes>0</preferred_block_size_bytes></settings_pull>"
        "<tables><%s><cluster_pull>src</cluster_pull><database_pull>%s</database_pull>"
        "<table_pull>src_%s</table_pull><cluster_push>dst</cluster_push>"
        "<database_push>%s</database_push><table_push>dst_%s</table_push>"
        "<engine>%s</engine><sharding_key>%s</sharding_key>"
        "<where_condition>%s</where_condition><number_of_splits>%u</number_of_splits>"
        "</%s></tables></clickhouse>",
        e->name, COMPAT_DB, e->name, COMPAT_DB, e->name, eng.buf, e->key,
        e->where ? e->where : "", e->splits, e->name));
    if (cfg_task_parse(b.buf, b.len, e->name, &t, &err) < 0)
        gen_fail(e->name, err.msg);
    chc_buf_release(&b);
    chc_buf_release(&eng);
    return t;
}

/* DIR/<prefix><entry><suffix>, read whole. */
char *gen_read(const char *prefix, const struct compat_entry *e, const char *suffix)
{
    struct chc_err err = CHC_ERR_INIT;
    char path[1024], *text = NULL;
    size_t len;

    snprintf(path, sizeof(path), "%s/%s%s%s", gen_dir, prefix, e->name, suffix);
    if (chc_read_file(path, 64u << 20, &text, &len, &err) < 0)
        gen_fail(path, err.msg);
    return text;
}

/* DESCRIBE's rows as chcopier reads them (src/copier/tables.c). */
struct gen_cols gen_describe(const char *prefix, const struct compat_entry *e)
{
    struct chc_err err = CHC_ERR_INIT;
    struct gen_cols c = {0};
    char *text = gen_read(prefix, e, ".tsv");
    size_t i;

    if (ch_tsv_parse(text, strlen(text), &c.rows, &err) < 0)
        gen_fail(e->name, err.msg);
    free(text);
    c.n = ch_rows_count(c.rows);
    c.v = calloc(c.n + 1, sizeof(*c.v));
    if (!c.v)
        gen_oom(-1);
    for (i = 0; i < c.n; i++)
        c.v[i] = (struct sql_column){.name = ch_rows_str(c.rows, i, 0),
                                     .type = ch_rows_str(c.rows, i, 1),
                                     .kind = ch_rows_str(c.rows, i, 2),
                                     .expr = ch_rows_str(c.rows, i, 3)};
    return c;
}

void gen_cols_free(struct gen_cols *c)
{
    free(c->v);
    ch_rows_free(c->rows);
    memset(c, 0, sizeof(*c));
}

/* DIR/engine.txt: "# engine: ClickHouse <version()>" (compat-run). */
static void read_version(void)
{
    struct chc_err err = CHC_ERR_INIT;
    char path[1024], *text = NULL, *v;
    size_t len;

    snprintf(path, sizeof(path), "%s/engine.txt", gen_dir);
    if (chc_read_file(path, 4096, &text, &len, &err) < 0)
        return; /* unknown: the statements of the tested default */
    v = strstr(text, "ClickHouse ");
    if (v && dialect_parse_version(v + strlen("ClickHouse "), &gen_version, &err) < 0)
        gen_fail(path, err.msg);
    free(text);
}

/* The clusters of the task (every entry's is the same) as the engine's
 * remote_servers, so that Distributed tables over them can be created. */
static void gen_config(void)
{
    struct cfg_task *t = gen_task(&compat_matrix[0]);
    size_t c, s, r;

    printf("<clickhouse>\n  <remote_servers>\n");
    for (c = 0; c < t->n_clusters; c++) {
        printf("    <%s>\n", t->clusters[c].name);
        for (s = 0; s < t->clusters[c].n_shards; s++) {
            const struct cfg_shard *sh = &t->clusters[c].shards[s];

            printf("      <shard><weight>%d</weight>", sh->weight);
            for (r = 0; r < sh->n_replicas; r++)
                printf("<replica><host>%s</host><port>%d</port></replica>",
                       sh->replicas[r].host, sh->replicas[r].port);
            printf("</shard>\n");
        }
        printf("    </%s>\n", t->clusters[c].name);
    }
    printf("  </remote_servers>\n</clickhouse>\n");
    cfg_task_free(t);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: compat-gen fixtures|prepare|move|xver|config DIR\n");
        return 2;
    }
    gen_dir = argv[2];
    read_version();
    if (strcmp(argv[1], "fixtures") == 0)
        gen_fixtures();
    else if (strcmp(argv[1], "prepare") == 0)
        gen_prepare();
    else if (strcmp(argv[1], "move") == 0)
        gen_move();
    else if (strcmp(argv[1], "xver") == 0)
        gen_xver();
    else if (strcmp(argv[1], "config") == 0)
        gen_config();
    else
        gen_fail(argv[1], "unknown phase (fixtures, prepare, move, xver, config)");
    return fflush(stdout) == 0 ? 0 : 1;
}
