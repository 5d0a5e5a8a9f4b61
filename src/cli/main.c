/* main.c — parses the command line and dispatches; the only place that turns
 * an error into an exit code: 0 done, 1 runtime failure, 2 usage or
 * configuration error (nothing was changed anywhere).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chcopier/base/buf.h"
#include "chcopier/cli/cli.h"
#include "chcopier/obs/log.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/task.h"
#include "chcopier/config/zkconf.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/copier/worker.h"
#include "chcopier/zk/zk.h"
#include "config.h"

#include "base/banned.h"

static int exit_code(int r)
{
    if (r == 0)
        return 0;
    if (r == CHC_EUSAGE || r == CHC_ECONFIG)
        return 2;
    return 1;
}

/* Make a path absolute against the current directory, so --daemon (which
 * changes to /) keeps working with relative paths (clickhouse-copier #11526). */
static int absolutize(const char **path, char **owned, struct chc_err *err)
{
    struct chc_buf b = CHC_BUF_INIT;
    char cwd[PATH_MAX];
    int r;

    if (!*path || (*path)[0] == '/')
        return 0;
    if (!getcwd(cwd, sizeof(cwd)))
        return chc_err_set(err, -errno, "cannot get the current directory: %s", strerror(errno));
    r = chc_buf_addf(&b, "%s/%s", cwd, *path);
    if (r < 0)
        return chc_err_set(err, r, "out of memory");
    *owned = chc_buf_take(&b, NULL);
    *path = *owned;
    return 0;
}

static int daemonize(struct chc_err *err)
{
    pid_t pid;
    int fd;

    pid = fork();
    if (pid < 0)
        return chc_err_set(err, -errno, "--daemon: fork failed: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return chc_err_set(err, -errno, "--daemon: setsid failed: %s", strerror(errno));
    pid = fork();
    if (pid < 0)
        return chc_err_set(err, -errno, "--daemon: fork failed: %s", strerror(errno));
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0)
        return chc_err_set(err, -errno, "--daemon: chdir failed: %s", strerror(errno));
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (fd > STDERR_FILENO)
            close(fd);
    }
    return 0;
}

static int write_pid_file(const char *path, struct chc_err *err)
{
    char line[32];
    int fd, n;

    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return chc_err_set(err, -errno, "--pid-file: cannot write '%s': %s", path,
                           strerror(errno));
    n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());
    if (write(fd, line, (size_t)n) != n) {
        close(fd);
        return chc_err_set(err, -EIO, "--pid-file: cannot write '%s'", path);
    }
    close(fd);
    return 0;
}

/* The ZooKeeper identity "user:password" and its password are secrets too. */
static int add_identity_secret(const char *identity, struct chc_err *err)
{
    const char *colon;

    if (!identity)
        return 0;
    colon = strchr(identity, ':');
    if (chc_secrets_add_global(identity) < 0 ||
        (colon && chc_secrets_add_global(colon + 1) < 0))
        return chc_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

static void report_upload(enum taskstore_upload_result res, const char *task_path)
{
    switch (res) {
    case TASKSTORE_CREATED:
        chc_log_info("uploaded the task description to %s/description", task_path);
        break;
    case TASKSTORE_SAME:
        chc_log_info("task description at %s/description is already up to date", task_path);
        break;
    case TASKSTORE_REPLACED:
        chc_log_warn("replaced the different task description at %s/description "
                     "(--task-upload-force)",
                     task_path);
        break;
    case TASKSTORE_KEPT:
        chc_log_warn("a different task description exists at %s/description; keeping it "
                     "(use --task-upload-force to overwrite)",
                     task_path);
        break;
    }
}

/* The log level: --log-level, else zookeeper.xml's <logger><level>, else info. */
static int pick_level(const struct chc_options *o, const struct cfg_zk *z, int *ret,
                      struct chc_err *err)
{
    int level = CHC_LOG_INFO;

    if (o->log_level) {
        level = chc_log_level_from_string(o->log_level);
        if (level < 0)
            return chc_err_set(err, CHC_EUSAGE,
                               "--log-level: unknown level '%s' (error, warning, info, debug, "
                               "trace)",
                               o->log_level);
    } else if (z->log_level && chc_log_level_from_string(z->log_level) >= 0) {
        level = chc_log_level_from_string(z->log_level);
    }
    *ret = level;
    return 0;
}

/* Step 2: daemon, pid file, logs (files for run, stderr for the others). */
static int setup_process(struct chc_options *o, int level, char **ret_log_dir,
                         struct chc_err *err)
{
    struct chc_log_options lo = {o->base_dir ? o->base_dir : ".", 0, o->log_json, NULL};
    int r;

    if (o->daemon && o->cmd == CHC_CMD_RUN) {
        r = daemonize(err);
        if (r < 0)
            return r;
    }
    if (o->pid_file) {
        r = write_pid_file(o->pid_file, err);
        if (r < 0)
            return r;
    }
    if (o->cmd != CHC_CMD_RUN) {
        chc_log_set_stderr(1);
        if (!o->log_level && level > CHC_LOG_WARN && o->cmd != CHC_CMD_UPLOAD)
            chc_log_set_level(CHC_LOG_WARN);
        return 0;
    }
    if (o->log_stdout < 0)
        o->log_stdout = !o->daemon && isatty(STDERR_FILENO);
    lo.to_stderr = o->log_stdout;
    return chc_log_open(&lo, ret_log_dir, err);
}

/* Step 3: the ZooKeeper session; for run and upload the warning about an
 * open task and the upload of --task-file. */
static int open_zookeeper(const struct chc_options *o, const struct cfg_zk *zkcfg,
                          const char *task_text, struct zk_session **ret, struct chc_err *err)
{
    enum taskstore_upload_result res;
    int writes = o->cmd == CHC_CMD_RUN || o->cmd == CHC_CMD_UPLOAD;
    int r;

    r = zk_session_new(zkcfg, zkcfg->session_timeout_ms < 10000 ? zkcfg->session_timeout_ms
                                                                : 10000,
                       NULL, ret, err);
    if (r < 0)
        return r;
    if (!zkcfg->identity && writes)
        chc_log_warn("%s has no <identity>user:password</identity>: the task description at "
                     "%s/description, with its passwords, and the copy's state are readable "
                     "and writable by anyone who reaches ZooKeeper at %s",
                     o->config, o->task_path, zkcfg->hosts);
    if (!task_text || !writes)
        return 0;
    r = taskstore_upload(*ret, o->task_path, task_text, strlen(task_text), o->task_upload_force,
                         &res, err);
    if (r == 0)
        report_upload(res, o->task_path);
    return r;
}

/* Step 4. The worker takes over the session (it may replace it). */
static int dispatch(const struct chc_options *o, const struct cfg_zk *zkcfg,
                    struct zk_session **zs, const struct cfg_task *file_task,
                    const char *log_dir, struct chc_err *err)
{
    struct zk_session *s = *zs;

    switch (o->cmd) {
    case CHC_CMD_RUN:
        *zs = NULL;
        return worker_run(o, zkcfg, s, log_dir, err);
    case CHC_CMD_STATUS:
        return worker_status(o, s, err);
    case CHC_CMD_PLAN:
        return worker_plan(o, s, file_task, err);
    case CHC_CMD_CLEAN:
        return worker_clean(o, s, err);
    case CHC_CMD_UPLOAD:
    case CHC_CMD_HELP:
    case CHC_CMD_VERSION:
        break;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct chc_err err = CHC_ERR_INIT;
    struct chc_options o;
    struct cfg_zk *zkcfg = NULL;
    struct cfg_task *file_task = NULL;
    struct zk_session *zs = NULL;
    char *task_text = NULL, *log_dir = NULL;
    char *abs_base = NULL, *abs_pid = NULL;
    int r, level = CHC_LOG_INFO;

    cli_options_init(&o);
    r = cli_parse(argc, argv, &o, &err);
    if (r < 0) {
        fprintf(stderr, "chcopier: %s\n", err.msg);
        return 2;
    }
    if (o.cmd == CHC_CMD_HELP) {
        fputs(cli_usage(), stdout);
        return 0;
    }
    if (o.cmd == CHC_CMD_VERSION) {
        printf("chcopier %s\n", CHC_VERSION);
        return 0;
    }

    /* 1. Everything that can be validated locally, before any side effect.
     * The passwords join the secrets before anything can be logged. */
    r = cfg_zk_load_file(o.config, &zkcfg, &err);
    if (r == 0)
        r = add_identity_secret(zkcfg->identity, &err);
    if (r == 0)
        r = pick_level(&o, zkcfg, &level, &err);
    if (r < 0)
        goto fail;
    chc_log_set_level(level);
    if (o.task_file) {
        r = cfg_task_load_file(o.task_file, &file_task, &task_text, &err);
        if (r == 0 && cfg_task_hide_passwords(file_task) < 0)
            r = chc_err_set(&err, -ENOMEM, "out of memory");
        if (r < 0)
            goto fail;
    }
    r = absolutize(&o.base_dir, &abs_base, &err);
    if (r == 0)
        r = absolutize(&o.pid_file, &abs_pid, &err);
    if (r < 0)
        goto fail;
    if (o.umask >= 0)
        umask((mode_t)o.umask);

    /* 2.-4. */
    r = setup_process(&o, level, &log_dir, &err);
    if (r == 0)
        r = open_zookeeper(&o, zkcfg, task_text, &zs, &err);
    if (r == 0)
        r = dispatch(&o, zkcfg, &zs, file_task, log_dir, &err);
fail:
    if (r < 0) {
        /* One line on stderr, always; the log files get it too. */
        chc_log_set_stderr(0);
        chc_log_error("%s", err.msg);
        fprintf(stderr, "chcopier: %s\n", err.msg);
    }
    zk_session_free(zs);
    cfg_zk_free(zkcfg);
    cfg_task_free(file_task);
    free(task_text);
    free(log_dir);
    free(abs_base);
    free(abs_pid);
    chc_log_close();
    return exit_code(r);
}
