/* cli.h — the command line: clickhouse-copier's flags plus chcopier's own.
 *
 * cli_parse() is pure (no I/O): it fills struct chc_options or returns
 * CHC_EUSAGE with a one-line message naming the flag. Flags take
 * `--flag value` or `--flag=value`; boolean flags of the original that took a
 * value (`--task-upload-force=true`) also work bare.
 */
#ifndef CHC_CLI_H
#define CHC_CLI_H

#include "chcopier/base/err.h"

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
    long long max_bytes_per_second; /* pipe path throttle, 0 = none */
    long long min_piece_rows;       /* small partitions get fewer pieces */
    int progress;                   /* live progress line on a terminal (default on) */
    const char *fault_point;        /* --fault-point or CHC_FAULT_POINT */
    int allow_dead_replicas;        /* a non-replicated destination may skip a dead replica */
    long long fault_seed;           /* seeds the copy/move fault draws; -1 = from time/pid */
};

void cli_options_init(struct chc_options *o);
int cli_parse(int argc, char **argv, struct chc_options *o, struct chc_err *err);
const char *cli_usage(void);

#endif
