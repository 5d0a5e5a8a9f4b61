/* fuzz-task.c — libFuzzer target for the task XML and zookeeper.xml parsers.
 *
 * Arbitrary bytes go to cfg_task_parse() and cfg_zk_parse(). Invariants (any
 * violation abort()s so libFuzzer keeps the input):
 *   1. a rejection is CHC_ECONFIG (or -ENOMEM) with a one-line message that
 *      names the source;
 *   2. an accepted task has at least one table, every table resolves both
 *      clusters, has 1..CFG_SPLITS_MAX splits and a parsed engine.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/err.h"
#include "chcopier/config/task.h"
#include "chcopier/config/zkconf.h"

#include "base/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(int r, const struct chc_err *e)
{
    if (r != CHC_ECONFIG && r != -ENOMEM)
        abort();
    if (strchr(e->msg, '\n') || !strstr(e->msg, "fuzz.xml"))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct chc_err e = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    struct cfg_zk *z = NULL;
    char *text;
    size_t i;
    int r;

    text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    r = cfg_task_parse(text, size, "fuzz.xml", &t, &e);
    if (r < 0) {
        check_err(r, &e);
    } else {
        if (t->n_tables == 0)
            abort();
        for (i = 0; i < t->n_tables; i++) {
            const struct cfg_table *tb = &t->tables[i];
            if (!tb->pull || !tb->push || !tb->engine || tb->number_of_splits < 1 ||
                tb->number_of_splits > CFG_SPLITS_MAX)
                abort();
        }
        cfg_task_free(t);
    }
    r = cfg_zk_parse(text, size, "fuzz.xml", &z, &e);
    if (r < 0) {
        check_err(r, &e);
    } else {
        if (!z->hosts || !*z->hosts)
            abort();
        cfg_zk_free(z);
    }
    free(text);
    return 0;
}
