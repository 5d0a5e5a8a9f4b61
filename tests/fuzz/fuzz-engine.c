/* fuzz-engine.c — libFuzzer target for the ENGINE clause parser.
 *
 * Feeds arbitrary bytes (NUL-terminated copy) to engine_parse() and, when it
 * accepts them, checks the rebuild invariants; any violation abort()s so
 * libFuzzer records the input:
 *   1. a rejection is CHC_EPARSE or CHC_ECONFIG (or -ENOMEM) with a one-line
 *      message;
 *   2. engine_build_clause(plain=0) parses back to an equal engine_info;
 *   3. engine_build_clause(plain=1) parses back to a non-replicated engine
 *      named base_name with the same args, clauses and key columns.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/config/engine.h"
#include "chcopier/base/err.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Everything but the replication must survive the plain rebuild. */
static int plain_matches(const struct engine_info *e, const struct engine_info *p)
{
    size_t i;

    if (p->replicated || p->zk_path || p->replica_name || !str_same(p->name, e->base_name) ||
        !str_same(p->base_name, e->base_name) || !str_same(p->args, e->args) ||
        !str_same(p->partition_by, e->partition_by) || !str_same(p->order_by, e->order_by) ||
        !str_same(p->primary_key, e->primary_key) || !str_same(p->sample_by, e->sample_by) ||
        !str_same(p->ttl, e->ttl) || !str_same(p->settings, e->settings) ||
        p->n_key_columns != e->n_key_columns)
        return 0;
    for (i = 0; i < e->n_key_columns; i++)
        if (!str_same(p->key_columns[i], e->key_columns[i]))
            return 0;
    return 1;
}

static void fail(const char *what, const char *input, const char *built, const char *msg)
{
    fprintf(stderr, "fuzz-engine: %s\n  input: %s\n  built: %s\n  error: %s\n", what, input,
            built ? built : "-", msg ? msg : "-");
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chc_err err = CHC_ERR_INIT;
    struct engine_info *e = NULL, *again = NULL, *plain = NULL;
    struct chc_buf b = CHC_BUF_INIT, pb = CHC_BUF_INIT;
    char *text;
    int r;

    text = malloc(size + 1);
    if (!text)
        return 0;
    if (size)
        memcpy(text, data, size);
    text[size] = '\0';

    r = engine_parse(text, &e, &err);
    if (r < 0) {
        if (r != CHC_EPARSE && r != CHC_ECONFIG && r != -ENOMEM)
            fail("unexpected error code", text, NULL, err.msg);
        if (e || err.code != r || !err.msg[0] || strchr(err.msg, '\n'))
            fail("bad rejection", text, NULL, err.msg);
        goto out;
    }
    if (!e || !e->name || !e->base_name || !e->args || !e->order_by)
        fail("accepted engine is incomplete", text, NULL, NULL);

    r = engine_build_clause(e, 0, &b, &err);
    if (r < 0)
        fail("build(plain=0) failed", text, NULL, err.msg);
    r = engine_parse(b.buf, &again, &err);
    if (r < 0)
        fail("re-parse of build(plain=0) failed", text, b.buf, err.msg);
    if (!engine_equal(e, again))
        fail("build(plain=0) did not round-trip", text, b.buf, NULL);

    r = engine_build_clause(e, 1, &pb, &err);
    if (r < 0)
        fail("build(plain=1) failed", text, NULL, err.msg);
    r = engine_parse(pb.buf, &plain, &err);
    if (r < 0)
        fail("re-parse of build(plain=1) failed", text, pb.buf, err.msg);
    if (!plain_matches(e, plain))
        fail("build(plain=1) changed more than the replication", text, pb.buf, NULL);

out:
    engine_free(plain);
    engine_free(again);
    engine_free(e);
    chc_buf_release(&pb);
    chc_buf_release(&b);
    free(text);
    return 0;
}
