/* log.c — writes log lines to the worker's log directory and stderr.
 * Owns the log files and the global level. Every line, at every level, is
 * masked with the process-wide secrets (secrets.h) before it is written, so
 * a password in a statement or a server message never reaches a log.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "chcopier/base/buf.h"
#include "chcopier/obs/log.h"
#include "chcopier/base/secrets.h"

#include "base/banned.h"

int chc_log__level = CHC_LOG_INFO;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int fd_all = -1;
static int fd_err = -1;
static int to_stderr = 1;
static int json_format;
static char worker_id[256];
static char status_line[256]; /* live progress on a terminal, redrawn under log lines */

static const char level_chars[] = "EWIDT";
static const char *const level_names[] = {"error", "warning", "info", "debug", "trace"};

void chc_log_set_level(int level)
{
    chc_log__level = level;
}

void chc_log_set_stderr(int on)
{
    to_stderr = on;
}

void chc_log_set_worker(const char *id)
{
    snprintf(worker_id, sizeof(worker_id), "%s", id ? id : "");
}

int chc_log_level_from_string(const char *s)
{
    static const struct {
        const char *name;
        int level;
    } map[] = {
        {"fatal", CHC_LOG_ERROR},   {"critical", CHC_LOG_ERROR}, {"error", CHC_LOG_ERROR},
        {"warning", CHC_LOG_WARN},  {"warn", CHC_LOG_WARN},      {"notice", CHC_LOG_INFO},
        {"information", CHC_LOG_INFO}, {"info", CHC_LOG_INFO},   {"debug", CHC_LOG_DEBUG},
        {"trace", CHC_LOG_TRACE},
    };
    size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcasecmp(s, map[i].name))
            return map[i].level;
    return -EINVAL;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t i, n = strlen(path);

    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
            return -errno;
        tmp[i] = path[i];
    }
    return 0;
}

int chc_log_open(const struct chc_log_options *opt, char **ret_dir, struct chc_err *err)
{
    struct chc_buf dir = CHC_BUF_INIT;
    struct chc_buf p = CHC_BUF_INIT;
    struct tm tm;
    time_t now = time(NULL);
    int r;

    to_stderr = opt->to_stderr;
    json_format = opt->json;
    chc_log_set_worker(opt->worker_id);
    if (!opt->base_dir) {
        if (ret_dir)
            *ret_dir = NULL;
        return 0;
    }
    localtime_r(&now, &tm);
    r = chc_buf_addf(&dir, "%s/chcopier_%04d%02d%02d%02d%02d%02d_%ld", opt->base_dir,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (long)getpid());
    if (r < 0)
        goto fail;
    r = mkdir_p(dir.buf);
    if (r < 0) {
        chc_err_set(err, r, "--base-dir: cannot create '%s': %s", dir.buf, strerror(-r));
        goto fail;
    }
    r = chc_buf_addf(&p, "%s/log.log", dir.buf);
    if (r < 0)
        goto fail;
    fd_all = open(p.buf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_all < 0) {
        r = -errno;
        chc_err_set(err, r, "--base-dir: cannot open '%s': %s", p.buf, strerror(errno));
        goto fail;
    }
    chc_buf_reset(&p);
    r = chc_buf_addf(&p, "%s/log.err.log", dir.buf);
    if (r < 0)
        goto fail;
    fd_err = open(p.buf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_err < 0) {
        r = -errno;
        chc_err_set(err, r, "--base-dir: cannot open '%s': %s", p.buf, strerror(errno));
        goto fail;
    }
    chc_buf_release(&p);
    if (ret_dir)
        *ret_dir = chc_buf_take(&dir, NULL);
    else
        chc_buf_release(&dir);
    return 0;
fail:
    if (r == -ENOMEM || r == CHC_ETOOBIG)
        chc_err_set(err, r, "out of memory opening logs");
    chc_log_close();
    chc_buf_release(&p);
    chc_buf_release(&dir);
    return r;
}

void chc_log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (fd_all >= 0)
        close(fd_all);
    if (fd_err >= 0)
        close(fd_err);
    fd_all = fd_err = -1;
    pthread_mutex_unlock(&log_lock);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static int format_text(struct chc_buf *b, const char *ts, int level,
                       const struct chc_log_fields *f, const char *msg)
{
    int r;

    r = chc_buf_addf(b, "%s %ld %c ", ts, (long)getpid(), level_chars[level]);
    if (r == 0 && f && f->table)
        r = chc_buf_addf(b, "[%s", f->table);
    if (r == 0 && f && f->table && f->partition)
        r = chc_buf_addf(b, " %s", f->partition);
    if (r == 0 && f && f->table && f->piece >= 0)
        r = chc_buf_addf(b, " piece %d", f->piece);
    if (r == 0 && f && f->table && f->shard >= 0)
        r = chc_buf_addf(b, " shard %d", f->shard);
    if (r == 0 && f && f->table)
        r = chc_buf_addstr(b, "] ");
    if (r == 0)
        r = chc_buf_addstr(b, msg);
    if (r == 0)
        r = chc_buf_addch(b, '\n');
    return r;
}

static int json_str(struct chc_buf *b, const char *key, const char *v)
{
    int r;

    if (!v)
        return 0;
    r = chc_buf_addf(b, ",\"%s\":\"", key);
    if (r == 0)
        r = chc_buf_add_json(b, v);
    if (r == 0)
        r = chc_buf_addch(b, '"');
    return r;
}

static int format_json(struct chc_buf *b, const char *ts, int level,
                       const struct chc_log_fields *f, const char *msg)
{
    int r;

    r = chc_buf_addf(b, "{\"time\":\"%s\",\"level\":\"%s\",\"pid\":%ld", ts,
                     level_names[level], (long)getpid());
    /* Always there, "" until the worker has its id: lines logged before it
     * (the open-task warning, an upload) keep the schema. */
    if (r == 0)
        r = json_str(b, "worker", worker_id);
    if (r == 0 && f) {
        r = json_str(b, "table", f->table);
        if (r == 0)
            r = json_str(b, "partition", f->partition);
        if (r == 0 && f->piece >= 0)
            r = chc_buf_addf(b, ",\"piece\":%d", f->piece);
        if (r == 0 && f->shard >= 0)
            r = chc_buf_addf(b, ",\"shard\":%d", f->shard);
        if (r == 0)
            r = json_str(b, "event", f->event);
        if (r == 0 && f->rows >= 0)
            r = chc_buf_addf(b, ",\"rows\":%lld", f->rows);
        if (r == 0 && f->bytes >= 0)
            r = chc_buf_addf(b, ",\"bytes\":%lld", f->bytes);
        if (r == 0 && f->duration >= 0)
            r = chc_buf_addf(b, ",\"duration\":%.3f", f->duration);
        if (r == 0)
            r = json_str(b, "error", f->error);
    }
    if (r == 0)
        r = json_str(b, "message", msg);
    if (r == 0)
        r = chc_buf_addstr(b, "}\n");
    return r;
}

void chc__log(int level, const struct chc_log_fields *f, const char *fmt, ...)
{
    struct chc_buf line = CHC_BUF_INIT;
    struct chc_log_fields masked;
    char msg[8192], error[2048];
    char ts[64];
    struct timeval tv;
    struct tm tm;
    va_list ap;
    int r, n;

    if (level < CHC_LOG_ERROR || level > CHC_LOG_TRACE)
        level = CHC_LOG_INFO;
    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    chc_secrets_mask_str(msg, sizeof(msg), n >= (int)sizeof(msg));
    if (f && f->error) {
        masked = *f;
        n = snprintf(error, sizeof(error), "%s", f->error);
        chc_secrets_mask_str(error, sizeof(error), n >= (int)sizeof(error));
        masked.error = error;
        f = &masked;
    }
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02d %02d:%02d:%02d.%03ld", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));
    r = json_format ? format_json(&line, ts, level, f, msg) : format_text(&line, ts, level, f, msg);
    if (r < 0)
        return;
    pthread_mutex_lock(&log_lock);
    if (fd_all >= 0)
        write_all(fd_all, line.buf, line.len);
    if (fd_err >= 0 && level <= CHC_LOG_WARN)
        write_all(fd_err, line.buf, line.len);
    if (to_stderr) {
        if (status_line[0])
            write_all(STDERR_FILENO, "\r\033[K", 4);
        write_all(STDERR_FILENO, line.buf, line.len);
        if (status_line[0])
            write_all(STDERR_FILENO, status_line, strlen(status_line));
    }
    pthread_mutex_unlock(&log_lock);
    chc_buf_release(&line);
}

void chc_log_status(const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&log_lock);
    if (!fmt) {
        if (status_line[0])
            write_all(STDERR_FILENO, "\r\033[K", 4);
        status_line[0] = '\0';
    } else {
        va_start(ap, fmt);
        vsnprintf(status_line, sizeof(status_line), fmt, ap);
        va_end(ap);
        write_all(STDERR_FILENO, "\r\033[K", 4);
        write_all(STDERR_FILENO, status_line, strlen(status_line));
    }
    pthread_mutex_unlock(&log_lock);
}
