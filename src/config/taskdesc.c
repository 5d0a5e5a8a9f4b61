/* taskdesc.c — a task description's structs (taskdesc.h): freeing them,
 * looking things up in them, hiding their passwords.
 *
 * Owns every string a parsed task holds (passwords wiped before they are
 * freed). Nothing here reads XML (task.c and tablexml.c fill the structs),
 * talks to a server or logs.
 */
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/secrets.h"
#include "chcopier/config/engine.h"
#include "chcopier/config/taskdesc.h"

#include "base/banned.h"

static void replica_release(struct cfg_replica *r)
{
    free(r->host);
    free(r->user);
    if (r->password) {
        explicit_bzero(r->password, strlen(r->password));
        free(r->password);
    }
}

static void cluster_release(struct cfg_cluster *cl)
{
    size_t i, j;

    for (i = 0; i < cl->n_shards; i++) {
        for (j = 0; j < cl->shards[i].n_replicas; j++)
            replica_release(&cl->shards[i].replicas[j]);
        free(cl->shards[i].replicas);
    }
    free(cl->shards);
    free(cl->name);
}

static void settings_release(struct cfg_settings *s)
{
    size_t i;

    for (i = 0; i < s->n; i++) {
        free(s->items[i].name);
        free(s->items[i].value);
    }
    free(s->items);
    s->items = NULL;
    s->n = 0;
}

static void table_release(struct cfg_table *tb)
{
    size_t i;

    free(tb->name);
    free(tb->cluster_pull);
    free(tb->database_pull);
    free(tb->table_pull);
    free(tb->cluster_push);
    free(tb->database_push);
    free(tb->table_push);
    free(tb->engine_text);
    engine_free(tb->engine);
    free(tb->sharding_key);
    free(tb->where_condition);
    for (i = 0; i < tb->n_enabled_partitions; i++)
        free(tb->enabled_partitions[i]);
    free(tb->enabled_partitions);
}

const struct cfg_cluster *cfg_task_cluster(const struct cfg_task *t, const char *name)
{
    size_t i;

    for (i = 0; i < t->n_clusters; i++)
        if (!strcmp(t->clusters[i].name, name))
            return &t->clusters[i];
    return NULL;
}

unsigned cfg_cluster_total_weight(const struct cfg_cluster *c)
{
    unsigned w = 0;
    size_t i;

    for (i = 0; i < c->n_shards; i++)
        w += (unsigned)c->shards[i].weight;
    return w;
}

struct cfg_task *cfg_task_free(struct cfg_task *t)
{
    size_t i;

    if (!t)
        return NULL;
    for (i = 0; i < t->n_clusters; i++)
        cluster_release(&t->clusters[i]);
    free(t->clusters);
    for (i = 0; i < t->n_tables; i++)
        table_release(&t->tables[i]);
    free(t->tables);
    settings_release(&t->settings);
    settings_release(&t->settings_pull);
    settings_release(&t->settings_push);
    free(t);
    return NULL;
}

const char *cfg_settings_get(const struct cfg_settings *s, const char *name)
{
    size_t i;

    for (i = s->n; i > 0; i--)
        if (!strcmp(s->items[i - 1].name, name))
            return s->items[i - 1].value;
    return NULL;
}

int cfg_task_hide_passwords(const struct cfg_task *t)
{
    size_t c, s, i;
    int r;

    for (c = 0; c < t->n_clusters; c++)
        for (s = 0; s < t->clusters[c].n_shards; s++)
            for (i = 0; i < t->clusters[c].shards[s].n_replicas; i++) {
                r = chc_secrets_add_global(t->clusters[c].shards[s].replicas[i].password);
                if (r < 0)
                    return r;
            }
    return 0;
}
