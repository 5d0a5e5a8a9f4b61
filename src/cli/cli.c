/* cli.c — parses the command line into struct chc_options. Pure: no I/O, no
 * logging; main.c prints the error and exits 2. Owns the flag table, so the
 * usage text and the parser cannot drift apart.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/bug.h"
#include "chcopier/cli/cli.h"

#include "base/banned.h"

enum arg_kind {
    ARG_STR,    /* takes a value */
    ARG_FLAG,   /* takes no value */
    ARG_BOOL,   /* optional boolean value (original took one) */
    ARG_UINT,   /* integer value in [min,max] */
    ARG_PROB,   /* 0..1 */
    ARG_LL,
};

struct flag {
    const char *name;
    enum arg_kind kind;
    size_t offset;
    long long min, max;
    const char *help;
};

#define OFF(f) offsetof(struct chc_options, f)

static const struct flag flags[] = {
    {"config", ARG_STR, OFF(config), 0, 0, "FILE  zookeeper.xml (as for clickhouse-copier)"},
    {"config-file", ARG_STR, OFF(config), 0, 0, "FILE  same as --config"},
    {"task-path", ARG_STR, OFF(task_path), 0, 0, "PATH  ZooKeeper path of the task (required)"},
    {"task-file", ARG_STR, OFF(task_file), 0, 0,
     "FILE  upload this task XML to <task-path>/description first"},
    {"task-upload-force", ARG_BOOL, OFF(task_upload_force), 0, 0,
     "[BOOL]  overwrite an existing, different description"},
    {"base-dir", ARG_STR, OFF(base_dir), 0, 0,
     "DIR  where chcopier_<time>_<pid>/ log directories go (default: .)"},
    {"log-level", ARG_STR, OFF(log_level), 0, 0, "LEVEL  error|warning|info|debug|trace"},
    {"daemon", ARG_FLAG, OFF(daemon), 0, 0, "  run in the background"},
    {"pid-file", ARG_STR, OFF(pid_file), 0, 0, "FILE  write the process id here"},
    {"pidfile", ARG_STR, OFF(pid_file), 0, 0, "FILE  same as --pid-file"},
    {"umask", ARG_STR, -1, 0, 0, "OCTAL  umask for created files"},
    {"safe-mode", ARG_FLAG, OFF(safe_mode), 0, 0,
     "  never DROP PARTITION (dirty pieces cannot be cleaned)"},
    {"status", ARG_FLAG, -2, 0, 0, "  print the task's progress and exit (= chcopier status)"},
    {"max-table-tries", ARG_UINT, OFF(max_table_tries), 1, 1000000, "N  (default 3)"},
    {"max-shard-partition-tries", ARG_UINT, OFF(max_shard_partition_tries), 1, 1000000,
     "N  tries per piece (default 3)"},
    {"max-shard-partition-piece-tries-for-alter", ARG_UINT, OFF(max_piece_tries_alter), 1,
     1000000, "N  tries per partition move (default 10)"},
    {"retry-delay-ms", ARG_UINT, OFF(retry_delay_ms), 100, 3600000,
     "MS  pause between retries (default 1000, min 100)"},
    {"copy-fault-probability", ARG_PROB, OFF(copy_fault_probability), 0, 0,
     "P  testing: abort a piece copy with probability P"},
    {"move-fault-probability", ARG_PROB, OFF(move_fault_probability), 0, 0,
     "P  testing: abort a partition move with probability P"},
    {"experimental-use-sample-offset", ARG_BOOL, OFF(experimental_use_sample_offset), 0, 0,
     "[BOOL]  accepted for compatibility; ignored"},
    {"log-stdout", ARG_FLAG, OFF(log_stdout), 0, 0, "  also log to stderr"},
    {"log-format", ARG_STR, -3, 0, 0, "text|json  log line format (default text)"},
    {"json", ARG_FLAG, OFF(json), 0, 0, "  status: print JSON"},
    {"yes", ARG_FLAG, OFF(yes), 0, 0, "  clean: really delete"},
    {"max-pieces-in-flight", ARG_UINT, OFF(max_pieces_in_flight), 1, 1024,
     "N  pieces this worker copies at once (default 4)"},
    {"min-piece-rows", ARG_LL, OFF(min_piece_rows), 0, (1LL << 50),
     "N  a partition gets fewer pieces than number_of_splits when each would hold fewer "
     "than N source rows (default 1000000; 0: always number_of_splits)"},
    {"data-path", ARG_STR, -4, 0, 0,
     "pull|pipe  pull: destinations read the source with remote() (default); pipe: rows "
     "stream through this worker"},
    {"routing", ARG_STR, -8, 0, 0,
     "auto|distributed|filter  how rows reach their destination shard: a Distributed "
     "table where a server knows cluster_push exactly (one read of each piece), or one "
     "filtered read per destination shard (default auto: Distributed where it can)"},
    {"max-bytes-per-second", ARG_LL, OFF(max_bytes_per_second), 0, (1LL << 50),
     "N  throttle this worker's pipe transfers to N bytes/s (all of them together)"},
    {"no-progress", ARG_FLAG, -5, 0, 0, "  no live progress line on a terminal"},
    {"metrics-port", ARG_UINT, OFF(metrics_port), 1, 65535,
     "PORT  serve Prometheus metrics on 127.0.0.1:PORT"},
    {"fault-point", ARG_STR, OFF(fault_point), 0, 0,
     "NAME  testing: _exit at a named point (docs/operator-guide.md lists them)"},
    {"fault-seed", ARG_LL, OFF(fault_seed), 0, (1LL << 62),
     "N  testing: seed for the copy/move fault draws (default: from time and pid, logged)"},
    {"allow-dead-replicas", ARG_FLAG, OFF(allow_dead_replicas), 0, 0,
     "  copy into a non-replicated destination although a replica does not answer (that "
     "replica misses its copy)"},
    {"help", ARG_FLAG, -6, 0, 0, "  this text"},
    {"version", ARG_FLAG, -7, 0, 0, "  print the version"},
};

#define N_FLAGS (sizeof(flags) / sizeof(flags[0]))

void cli_options_init(struct chc_options *o)
{
    memset(o, 0, sizeof(*o));
    o->cmd = CHC_CMD_RUN;
    o->umask = -1;
    o->max_table_tries = 3;
    o->max_shard_partition_tries = 3;
    o->max_piece_tries_alter = 10;
    o->retry_delay_ms = 1000;
    o->min_piece_rows = 1000000;
    o->progress = 1;
    o->log_stdout = -1;
    o->fault_seed = -1;
}

const char *cli_usage(void)
{
    static char text[8192];
    struct chc_buf b = CHC_BUF_INIT;
    size_t i;
    int r;

    if (text[0])
        return text;
    r = chc_buf_addstr(&b,
                       "usage: chcopier [COMMAND] --config zookeeper.xml --task-path PATH "
                       "[options]\n\n"
                       "commands:\n"
                       "  run     (default) work on the task until every table is copied\n"
                       "  status  print progress from ZooKeeper (--json for scripts)\n"
                       "  plan    print partitions, pieces, DDL and SQL; writes nothing\n"
                       "  clean   drop staging tables and the task's state (--yes)\n"
                       "  upload  only upload --task-file to <task-path>/description\n\n"
                       "options:\n");
    for (i = 0; r == 0 && i < N_FLAGS; i++) {
        const char *h = flags[i].help;
        const char *sp = strstr(h, "  ");
        int argl = sp ? (int)(sp - h) : 0;
        r = chc_buf_addf(&b, "  --%s%s%.*s%*s%s\n", flags[i].name, argl ? " " : "", argl, h,
                         (int)(44 - strlen(flags[i].name) - (size_t)argl - (argl ? 1 : 0)),
                         "", sp ? sp + 2 : h);
    }
    if (r == 0)
        snprintf(text, sizeof(text), "%s", b.buf);
    chc_buf_release(&b);
    return text;
}

static const struct flag *find_flag(const char *name, size_t n)
{
    size_t i;

    for (i = 0; i < N_FLAGS; i++)
        if (strlen(flags[i].name) == n && !strncmp(flags[i].name, name, n))
            return &flags[i];
    return NULL;
}

static int set_special(const struct flag *f, const char *val, struct chc_options *o,
                       struct chc_err *err)
{
    long long v;
    char *end;

    switch ((ptrdiff_t)f->offset) {
    case -1:
        errno = 0;
        v = strtoll(val, &end, 8);
        if (errno || *end || end == val || v < 0 || v > 0777)
            return chc_err_set(err, CHC_EUSAGE, "--umask: expected an octal mode, got '%s'",
                               val);
        o->umask = (int)v;
        return 0;
    case -2:
        o->cmd = CHC_CMD_STATUS;
        return 0;
    case -3:
        if (!strcmp(val, "json"))
            o->log_json = 1;
        else if (!strcmp(val, "text"))
            o->log_json = 0;
        else
            return chc_err_set(err, CHC_EUSAGE, "--log-format: expected text or json, got '%s'",
                               val);
        return 0;
    case -4:
        if (!strcmp(val, "pull"))
            o->data_path = CHC_PATH_PULL;
        else if (!strcmp(val, "pipe"))
            o->data_path = CHC_PATH_PIPE;
        else
            return chc_err_set(err, CHC_EUSAGE, "--data-path: expected pull or pipe, got '%s'",
                               val);
        return 0;
    case -8:
        if (!strcmp(val, "auto"))
            o->routing = CHC_ROUTING_AUTO;
        else if (!strcmp(val, "distributed"))
            o->routing = CHC_ROUTING_DISTRIBUTED;
        else if (!strcmp(val, "filter"))
            o->routing = CHC_ROUTING_FILTER;
        else
            return chc_err_set(err, CHC_EUSAGE,
                               "--routing: expected auto, distributed or filter, got '%s'", val);
        return 0;
    case -5:
        o->progress = 0;
        return 0;
    case -6:
        o->cmd = CHC_CMD_HELP;
        return 0;
    case -7:
        o->cmd = CHC_CMD_VERSION;
        return 0;
    default:
        CHC_BUG("flag --%s has no handler", f->name);
    }
}

static int set_value(const struct flag *f, const char *val, struct chc_options *o,
                     struct chc_err *err)
{
    char *base = (char *)o;
    long long v;
    double d;
    int b, r;

    if ((ptrdiff_t)f->offset < 0)
        return set_special(f, val, o, err);
    switch (f->kind) {
    case ARG_STR:
        if (!val || !*val)
            return chc_err_set(err, CHC_EUSAGE, "--%s: empty value", f->name);
        *(const char **)(base + f->offset) = val;
        return 0;
    case ARG_FLAG:
        *(int *)(base + f->offset) = 1;
        return 0;
    case ARG_BOOL:
        if (!val) {
            *(int *)(base + f->offset) = 1;
            return 0;
        }
        r = chc_parse_bool(val, &b);
        if (r < 0)
            return chc_err_set(err, CHC_EUSAGE, "--%s: expected true or false, got '%s'",
                               f->name, val);
        *(int *)(base + f->offset) = b;
        return 0;
    case ARG_UINT:
    case ARG_LL:
        r = chc_parse_ll(val, f->min, f->max, &v);
        if (r < 0)
            return chc_err_set(err, CHC_EUSAGE, "--%s: expected an integer in [%lld, %lld], got '%s'",
                               f->name, f->min, f->max, val);
        if (f->kind == ARG_LL)
            *(long long *)(base + f->offset) = v;
        else if (f->offset == OFF(metrics_port))
            *(int *)(base + f->offset) = (int)v;
        else
            *(unsigned *)(base + f->offset) = (unsigned)v;
        return 0;
    case ARG_PROB:
        r = chc_parse_double(val, &d);
        if (r < 0 || !(d >= 0.0 && d <= 1.0))
            return chc_err_set(err, CHC_EUSAGE,
                               "--%s: expected a probability between 0 and 1, got '%s'",
                               f->name, val);
        *(double *)(base + f->offset) = d;
        return 0;
    }
    CHC_BUG("unknown flag kind");
}

static int parse_command(const char *s, enum chc_command *ret)
{
    static const struct {
        const char *name;
        enum chc_command cmd;
    } cmds[] = {
        {"run", CHC_CMD_RUN},       {"status", CHC_CMD_STATUS}, {"upload", CHC_CMD_UPLOAD},
        {"plan", CHC_CMD_PLAN},     {"clean", CHC_CMD_CLEAN},
        {"help", CHC_CMD_HELP},     {"version", CHC_CMD_VERSION},
    };
    size_t i;

    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(s, cmds[i].name)) {
            *ret = cmds[i].cmd;
            return 0;
        }
    return -EINVAL;
}

int cli_parse(int argc, char **argv, struct chc_options *o, struct chc_err *err)
{
    int i = 1, r, have_cmd = 0;
    enum chc_command cmd_flag = CHC_CMD_RUN;
    const char *env;

    for (; i < argc; i++) {
        const char *a = argv[i], *name, *eq, *val = NULL;
        const struct flag *f;
        size_t n;

        if (a[0] != '-') {
            if (have_cmd || i != 1)
                return chc_err_set(err, CHC_EUSAGE, "unexpected argument '%s'; see --help", a);
            r = parse_command(a, &o->cmd);
            if (r < 0)
                return chc_err_set(err, CHC_EUSAGE, "unknown command '%s'; see --help", a);
            have_cmd = 1;
            continue;
        }
        name = a + (a[1] == '-' ? 2 : 1);
        eq = strchr(name, '=');
        n = eq ? (size_t)(eq - name) : strlen(name);
        f = find_flag(name, n);
        if (!f)
            return chc_err_set(err, CHC_EUSAGE, "unknown flag '%.*s'; see --help",
                               (int)(n + (size_t)(name - a)), a);
        if (eq) {
            val = eq + 1;
            if (f->kind == ARG_FLAG) {
                int b;
                if (chc_parse_bool(val, &b) < 0)
                    return chc_err_set(err, CHC_EUSAGE, "--%s takes no value", f->name);
                if (!b)
                    continue;
            }
        } else if (f->kind == ARG_BOOL) {
            int b;
            /* Bare, or followed by an explicit boolean (Poco style). */
            if (i + 1 < argc && chc_parse_bool(argv[i + 1], &b) == 0)
                val = argv[++i];
        } else if (f->kind != ARG_FLAG) {
            if (i + 1 >= argc)
                return chc_err_set(err, CHC_EUSAGE, "--%s needs a value", f->name);
            val = argv[++i];
        }
        if (f->kind == ARG_FLAG && (ptrdiff_t)f->offset >= 0) {
            *(int *)((char *)o + f->offset) = 1;
            continue;
        }
        r = set_value(f, val, o, err);
        if (r < 0)
            return r;
        if (o->cmd == CHC_CMD_HELP || o->cmd == CHC_CMD_VERSION || o->cmd == CHC_CMD_STATUS)
            cmd_flag = o->cmd;
    }
    if (cmd_flag != CHC_CMD_RUN)
        o->cmd = cmd_flag;
    if (o->cmd == CHC_CMD_HELP || o->cmd == CHC_CMD_VERSION)
        return 0;
    if (!o->fault_point) {
        env = getenv("CHC_FAULT_POINT");
        if (env && *env)
            o->fault_point = env;
    }
    if (!o->config)
        return chc_err_set(err, CHC_EUSAGE,
                           "--config is required: the zookeeper.xml file with the ZooKeeper "
                           "hosts");
    if (!o->task_path)
        return chc_err_set(err, CHC_EUSAGE,
                           "--task-path is required: the ZooKeeper path of the task");
    if (o->task_path[0] != '/' || (strlen(o->task_path) > 1 && o->task_path[strlen(o->task_path) - 1] == '/') ||
        strstr(o->task_path, "//"))
        return chc_err_set(err, CHC_EUSAGE,
                           "--task-path: '%s' is not a ZooKeeper path like /copier/task1",
                           o->task_path);
    if (o->cmd == CHC_CMD_UPLOAD && !o->task_file)
        return chc_err_set(err, CHC_EUSAGE, "upload: --task-file is required");
    return 0;
}
