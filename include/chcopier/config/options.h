/* options.h — what a run of chcopier was asked to do: the command and the
 * values of its flags, as plain data. cli/cli.h fills it from argv; the
 * coordinator and the commands read it. Nothing here parses or prints. */
#ifndef CHC_OPTIONS_H
#define CHC_OPTIONS_H

enum chc_command {
    CHC_CMD_RUN,
    CHC_CMD_STATUS,
    CHC_CMD_PLAN,
    CHC_CMD_CLEAN,
    CHC_CMD_UPLOAD,
    CHC_CMD_HELP,
    CHC_CMD_VERSION,
};

enum chc_data_path {
    CHC_PATH_TASK, /* as the task says (default pull) */
    CHC_PATH_PULL,
    CHC_PATH_PIPE,
};

enum chc_routing {
    CHC_ROUTING_AUTO,        /* Distributed where a server knows cluster_push, else filter */
    CHC_ROUTING_DISTRIBUTED, /* Distributed or refuse */
    CHC_ROUTING_FILTER,      /* one filtered read per destination shard */
};

struct chc_options {
    enum chc_command cmd;
    /* clickhouse-copier's flags */
    const char *config;
    const char *task_path;
    const char *task_file;
    int task_upload_force;
    const char *base_dir;
    const char *log_level;
    int daemon;
    const char *pid_file;
    int umask; /* -1 = leave */
    int safe_mode;
    unsigned max_table_tries;
    unsigned max_shard_partition_tries;
    unsigned max_piece_tries_alter;
    unsigned retry_delay_ms;
    double copy_fault_probability;
    double move_fault_probability;
    int experimental_use_sample_offset;
    /* chcopier's own */
    int log_stdout;  /* -1 = auto (not daemon and stderr is a tty) */
    int log_json;
    int json;        /* status --json */
    int yes;         /* clean --yes */
    unsigned max_pieces_in_flight; /* 0 = auto */
    int metrics_port;               /* 0 = off */
    enum chc_data_path data_path;
    enum chc_routing routing;
    long long max_bytes_per_second; /* pipe path throttle, 0 = none */
    long long min_piece_rows;       /* small partitions get fewer pieces */
    int progress;                   /* live progress line on a terminal (default on) */
    const char *fault_point;        /* --fault-point or CHC_FAULT_POINT */
    int allow_dead_replicas;        /* a non-replicated destination may skip a dead replica */
    long long fault_seed;           /* seeds the copy/move fault draws; -1 = from time/pid */
};

#endif
