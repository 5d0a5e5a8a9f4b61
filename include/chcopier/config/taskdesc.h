/* taskdesc.h — a clickhouse-copier task description as plain structs.
 *
 * What task.h's cfg_task_parse() returns: the clusters of <remote_servers>,
 * the settings, the table tasks with their parsed engines. Strings are owned
 * by the structs and freed by cfg_task_free(); pointers between them (a
 * table's pull/push cluster) point into the same task. The functions here
 * only look things up and free: reading XML is task.h's business.
 */
#ifndef CHC_TASKDESC_H
#define CHC_TASKDESC_H

#include <stddef.h>
#include <stdint.h>

struct engine_info;

struct cfg_replica {
    char *host;
    int port;       /* native TCP port (used by remote() in the pull path) */
    int http_port;  /* HTTP(S) port chcopier talks to */
    char *user;     /* NULL = default */
    char *password; /* NULL = none */
    int secure;
    int priority;
};

struct cfg_shard {
    int num; /* 1-based, as system.clusters.shard_num */
    int weight;
    int internal_replication;
    struct cfg_replica *replicas;
    size_t n_replicas;
};

struct cfg_cluster {
    char *name;
    struct cfg_shard *shards;
    size_t n_shards;
};

struct cfg_setting {
    char *name;
    char *value;
};

struct cfg_settings {
    struct cfg_setting *items;
    size_t n;
};

enum cfg_data_path {
    CFG_PATH_PULL, /* default: destinations read the source with remote() */
    CFG_PATH_PIPE, /* rows stream through the worker */
};

struct cfg_table {
    char *name; /* element name under <tables> (name_in_config) */
    char *cluster_pull, *database_pull, *table_pull;
    char *cluster_push, *database_push, *table_push;
    char *engine_text;
    struct engine_info *engine;
    char *sharding_key;
    char *where_condition; /* NULL if absent or empty */
    char **enabled_partitions;
    size_t n_enabled_partitions;
    int has_enabled_partitions;
    unsigned number_of_splits;
    int allow_alias_materialized;
    int allow_drop_target_partitions;
    enum cfg_data_path data_path; /* chcopier's <data_path>pull|pipe</data_path> */
    const struct cfg_cluster *pull; /* resolved, points into the task */
    const struct cfg_cluster *push;
    uint64_t def_hash; /* hash of everything that decides which rows go where */
    char def_hash_hex[17];
};

struct cfg_task {
    struct cfg_cluster *clusters;
    size_t n_clusters;
    unsigned max_workers;
    struct cfg_settings settings, settings_pull, settings_push;
    struct cfg_table *tables;
    size_t n_tables;
};

#define CFG_SPLITS_DEFAULT 3
#define CFG_SPLITS_MAX 1024

struct cfg_task *cfg_task_free(struct cfg_task *t);
const struct cfg_cluster *cfg_task_cluster(const struct cfg_task *t, const char *name);
/* Look a setting up (NULL if absent). */
const char *cfg_settings_get(const struct cfg_settings *s, const char *name);
/* Total weight of a cluster's shards. */
unsigned cfg_cluster_total_weight(const struct cfg_cluster *c);

/* Add every replica password of every cluster of t to the process-wide
 * secrets (base/secrets.h): they are masked in every text from then on. */
int cfg_task_hide_passwords(const struct cfg_task *t);

#endif
