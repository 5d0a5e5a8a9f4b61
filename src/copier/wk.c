/* wk.c — the worker's context (wk.h): opening and closing it, the
 * identity our claims carry, this worker's note in ZooKeeper, sleeping
 * while transfers flow, fault points and draws for tests, metrics
 * labelled with a table.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/hash.h"
#include "chcopier/ch/ch.h"
#include "chcopier/config/options.h"
#include "chcopier/config/task.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "chcopier/obs/metrics-http.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/layout.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/zk/zk.h"
#include "wk.h"

#include "base/banned.h"

/* Metrics: `table` label, plus one more (key, value) if key is not NULL. */
void wk__metric(struct worker *w, const char *table, const char *name, const char *key,
                const char *value, double v, enum wk_metric_op op)
{
    struct chc_buf l = CHC_BUF_INIT;

    if (!w->metrics)
        return;
    if ((table && chc_metrics_label(&l, "table", table) < 0) ||
        (key && chc_metrics_label(&l, key, value) < 0)) {
        chc_buf_release(&l);
        return;
    }
    if (op == WK_SET)
        chc_metrics_set(w->metrics, name, l.len ? l.buf : NULL, v);
    else
        chc_metrics_add(w->metrics, name, l.len ? l.buf : NULL, v);
    chc_buf_release(&l);
}

static void sleeper_cb(uv_timer_t *t)
{
    (void)t;
}

/* Sleep while keeping transfers flowing. */
void wk__sleep(struct worker *w, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    uv_timer_start(&w->sleeper, sleeper_cb, ms, 0);
    while (now_ms() < end)
        uv_run(&w->loop, UV_RUN_ONCE);
    uv_timer_stop(&w->sleeper);
}

int wk__fault_armed(const struct worker *w, const char *name)
{
    const char *fp = w->o->fault_point;
    size_t n = strlen(name);

    return fp && !strncmp(fp, name, n) && (!fp[n] || fp[n] == ':');
}

void wk__fault_point(const struct worker *w, const char *name)
{
    const char *fp = w->o->fault_point;
    size_t n = strlen(name);
    static int stopped;
    unsigned tries;

    if (!wk__fault_armed(w, name))
        return;
    if (!fp[n]) {
        chc_log_warn("fault point '%s' reached: exiting abruptly", name);
        _exit(99);
    }
    if ((!strcmp(fp + n, ":stop") || !strcmp(fp + n, ":stop-expired")) && !stopped) {
        /* A zombie: frozen with its claims in hand until someone sends
         * SIGCONT (after its session expired, say), then it carries on;
         * once per process. ":stop-expired" carries on only once the
         * ZooKeeper client has learnt that its session expired (up to
         * 10 s): what comes next then meets the expiry for certain, not by
         * a race. */
        stopped = 1;
        chc_log_warn("fault point '%s' reached: stopping (SIGSTOP) until continued", name);
        raise(SIGSTOP);
        chc_log_warn("fault point '%s': continued", name);
        for (tries = 0; !strcmp(fp + n, ":stop-expired") && w->zs && !zk_session_expired(w->zs) &&
                        tries < 200;
             tries++)
            usleep(50000);
    }
}

/* splitmix64's finaliser: a well-mixed 64-bit value from any input. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

int wk__fault_draw(const struct worker *w, double p, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    uint64_t h;

    if (p <= 0)
        return 0;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    h = mix64(w->fault_seed ^ chc_hash64(CHC_HASH64_INIT, what, strlen(what)));
    return (double)(h >> 11) / (double)(1ULL << 53) < p;
}

void wk__note(struct worker *w, const char *fmt, ...)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT, note = CHC_BUF_INIT;
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = chc_buf_addvf(&note, fmt, ap);
    va_end(ap);
    if (r < 0 || !strcmp(note.buf, w->note.buf) || !w->zs || w->o->cmd != CHC_CMD_RUN)
        goto out;
    chc_buf_reset(&w->note);
    if (chc_buf_addstr(&w->note, note.buf) < 0 || wk__registration(w, &data) < 0 ||
        st_path_task(w->o->task_path, ST_WORKERS, w->id, &path) < 0)
        goto out;
    if (zk_set(w->zs, path.buf, data.buf, data.len, ZK_ANY_VERSION, NULL, NULL) < 0)
        chc_log_debug("cannot update this worker's note in ZooKeeper, ignoring");
out:
    chc_buf_release(&path);
    chc_buf_release(&data);
    chc_buf_release(&note);
}

static void pause_cb(void *arg, unsigned ms)
{
    wk__sleep(arg, ms);
}

struct st_claimer wk__claimer(struct worker *w)
{
    struct st_claimer c = {.zs = w->zs, .id = w->id, .host = w->host, .hostkey = w->hostkey,
                           .data = w->claim.buf, .pause = pause_cb, .pause_arg = w};

    return c;
}

/* workers/<id>: "host H\npid P\n" and the worker's note ("note <line>"
 * per line), which `status` shows. */
int wk__registration(const struct worker *w, struct chc_buf *out)
{
    return st_registration_encode(w->host, (long)getpid(), w->hostkey, w->note.buf, out);
}

/* "<boot id>/<pid namespace>": processes with the same key see the same
 * pids (state/claims.c's takeover of dead local workers relies on it). */
static void host_key(char *out, size_t cap)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    ssize_t n;

    if (f) {
        if (!fgets(boot, sizeof(boot), f))
            boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';
    }
    n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
    ns[n > 0 ? n : 0] = '\0';
    snprintf(out, cap, "%s/%s", boot[0] ? boot : "?", ns[0] ? ns : "?");
}

/* Loop, ClickHouse client, identity: shared by run, plan and clean. The
 * task is taken from `task` if given, else fetched from ZooKeeper. */
int wk__open(struct worker *w, const struct chc_options *o, struct zk_session *zs,
                 const struct cfg_task *task, struct chc_err *err)
{
    struct tm tm;
    time_t now = time(NULL);
    int r;

    memset(w, 0, sizeof(*w));
    chc_buf_init(&w->note, 4096);
    chc_buf_init(&w->claim, 4096);
    w->o = o;
    w->zs = zs;
    w->cap = o->max_pieces_in_flight ? o->max_pieces_in_flight : 4;
    srand((unsigned)(now ^ getpid())); /* query id nonces */
    w->fault_seed = o->fault_seed >= 0 ? (uint64_t)o->fault_seed
                                       : ((uint64_t)now * 1000003u ^ (uint64_t)getpid()) &
                                             ((1ULL << 62) - 1);
    if (o->copy_fault_probability > 0 || o->move_fault_probability > 0)
        chc_log_info("fault injection: copy %.3f, move %.3f, --fault-seed %llu",
                     o->copy_fault_probability, o->move_fault_probability,
                     (unsigned long long)w->fault_seed);
    gethostname(w->host, sizeof(w->host) - 1);
    localtime_r(&now, &tm);
    snprintf(w->id, sizeof(w->id), "%s#%04d%02d%02d%02d%02d%02d_%ld", w->host,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)getpid());
    host_key(w->hostkey, sizeof(w->hostkey));
    if (st_claim_encode(w->id, w->hostkey, &w->claim) < 0)
        return chc_err_set(err, -ENOMEM, "out of memory");
    r = uv_loop_init(&w->loop);
    if (r < 0)
        return chc_err_set(err, r, "cannot start the event loop: %s", uv_strerror(r));
    w->loop_ok = 1;
    uv_timer_init(&w->loop, &w->sleeper);
    r = ch_client_new(&w->loop, &w->ch, err);
    if (r < 0)
        return r;
    if (o->max_bytes_per_second > 0)
        ch_client_set_rate(w->ch, o->max_bytes_per_second);
    if (o->cmd == CHC_CMD_RUN) {
        r = chc_metrics_new(&w->metrics, err);
        if (r == 0 && o->metrics_port > 0)
            r = chc_metrics_listen(w->metrics, &w->loop, "127.0.0.1", o->metrics_port, err);
        if (r < 0)
            return r;
    }
    if (task) {
        w->task_borrowed = task;
        w->task = (struct cfg_task *)task;
        return 0;
    }
    return taskstore_fetch(zs, o->task_path, &w->task, &w->desc_version, err);
}

int wk__version_set(struct worker *w, const struct cfg_replica *rep, unsigned ver)
{
    struct wk_version *v;
    size_t i;

    for (i = 0; i < w->n_versions; i++)
        if (w->versions[i].rep == rep) {
            w->versions[i].ver = ver;
            return 0;
        }
    v = realloc(w->versions, (w->n_versions + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    w->versions = v;
    w->versions[w->n_versions++] = (struct wk_version){.rep = rep, .ver = ver};
    return 0;
}

unsigned wk__version(const struct worker *w, const struct cfg_replica *rep)
{
    size_t i;

    for (i = 0; i < w->n_versions; i++)
        if (w->versions[i].rep == rep)
            return w->versions[i].ver;
    return 0;
}

void wk__close(struct worker *w)
{
    free(w->versions);
    w->versions = NULL;
    w->n_versions = 0;
    chc_buf_release(&w->note);
    chc_buf_release(&w->claim);
    if (!w->loop_ok)
        return;
    w->metrics = chc_metrics_free(w->metrics);
    w->ch = ch_client_free(w->ch);
    uv_close((uv_handle_t *)&w->sleeper, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    if (!w->task_borrowed)
        cfg_task_free(w->task);
    w->task = NULL;
}
