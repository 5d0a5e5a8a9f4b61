/* log.h — the one logging module.
 *
 * Lines go to <base-dir>/chcopier_<YYYYMMDDhhmmss>_<pid>/log.log (everything at
 * or above the level) and log.err.log (warnings and errors), and optionally to
 * stderr. Two formats: text (redis-like: time with ms, pid, level char, tags,
 * message) and json (one object per line: time, level, pid, worker ("" until
 * chc_log_set_worker()), the set fields, message). The level is checked
 * before any formatting. Safe to call from any thread: each line is one
 * locked write().
 * Every line (message and error field) is masked with the process-wide
 * secrets (secrets.h) first, at every level.
 */
#ifndef CHC_LOG_H
#define CHC_LOG_H

#include "chcopier/base/err.h"

enum chc_log_level {
    CHC_LOG_ERROR,
    CHC_LOG_WARN,
    CHC_LOG_INFO,
    CHC_LOG_DEBUG,
    CHC_LOG_TRACE,
};

/* Optional structured fields of one log event (all may be NULL / -1). */
struct chc_log_fields {
    const char *table;
    const char *partition;
    int piece;             /* -1 = none */
    int shard;             /* -1 = none */
    const char *event;
    long long rows;        /* -1 = none */
    long long bytes;       /* -1 = none */
    double duration;       /* < 0 = none */
    const char *error;
};

#define CHC_LOG_FIELDS_INIT {NULL, NULL, -1, -1, NULL, -1, -1, -1.0, NULL}

extern int chc_log__level;

struct chc_log_options {
    const char *base_dir;  /* NULL: no files */
    int to_stderr;         /* mirror to stderr */
    int json;              /* one JSON object per line */
    const char *worker_id; /* tag on every line */
};

/* Create the log directory and open the files; ret_dir gets its path. */
int chc_log_open(const struct chc_log_options *opt, char **ret_dir, struct chc_err *err);
void chc_log_close(void);
void chc_log_set_level(int level);
void chc_log_set_stderr(int on);
void chc_log_set_worker(const char *worker_id);
/* "error", "warning"/"warn", "information"/"info", "debug", "trace"; -EINVAL */
int chc_log_level_from_string(const char *s);

/* A live status line on stderr (a terminal), kept below the log lines;
 * NULL clears it. */
void chc_log_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void chc__log(int level, const struct chc_log_fields *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define chc_log_at(level, f, ...)                                              \
    do {                                                                       \
        if (chc_log__level >= (level))                                         \
            chc__log((level), (f), __VA_ARGS__);                               \
    } while (0)

#define chc_log_error(...) chc_log_at(CHC_LOG_ERROR, NULL, __VA_ARGS__)
#define chc_log_warn(...) chc_log_at(CHC_LOG_WARN, NULL, __VA_ARGS__)
#define chc_log_info(...) chc_log_at(CHC_LOG_INFO, NULL, __VA_ARGS__)
#define chc_log_debug(...) chc_log_at(CHC_LOG_DEBUG, NULL, __VA_ARGS__)
#define chc_log_trace(...) chc_log_at(CHC_LOG_TRACE, NULL, __VA_ARGS__)

#endif
