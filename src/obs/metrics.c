/* metrics.c — the metrics registry.
 *
 * Owns: the families/series arrays (bounded by CHC_METRICS_MAX_SERIES), the
 * built-in catalog of chcopier families (kept in step with docs/metrics.md)
 * and the text exposition renderer. The HTTP endpoint is metrics-http.c's:
 * the registry only keeps a pointer to it and the function that closes it
 * (metrics-internal.h), so it never calls into the server's code by name.
 * Must not: log above debug, block, or let a metrics failure reach the
 * caller's work (updates return nothing).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/obs/log.h"
#include "chcopier/obs/metrics.h"
#include "obs/metrics-internal.h"

#include "base/banned.h"

#define NAME_MAX_LEN 200
#define LABELS_MAX_LEN 1024
#define LABELS_MAX_COUNT 16

enum drop_reason {
    DROP_INVALID,
    DROP_LIMIT,
    DROP_NOMEM,
    _DROP_REASON_MAX,
};

static const char *const drop_reason_names[_DROP_REASON_MAX] = {
    [DROP_INVALID] = "invalid",
    [DROP_LIMIT] = "limit",
    [DROP_NOMEM] = "nomem",
};

static const char *const metric_type_names[_CHC_METRIC_TYPE_MAX] = {
    [CHC_METRIC_UNTYPED] = "untyped",
    [CHC_METRIC_COUNTER] = "counter",
    [CHC_METRIC_GAUGE] = "gauge",
};

/* The built-in families, in render order. docs/metrics.md documents each. */
static const struct {
    const char *name;
    enum chc_metric_type type;
    const char *label_names;
    const char *help;
} catalog[] = {
    {CHC_METRIC_UP, CHC_METRIC_GAUGE, "", "1 while the chcopier process runs."},
    {CHC_METRIC_ROWS_COPIED, CHC_METRIC_COUNTER, "table",
     "Rows this worker copied to the destination."},
    {CHC_METRIC_BYTES_COPIED, CHC_METRIC_COUNTER, "table",
     "Bytes this worker wrote to the destination, as reported by ClickHouse."},
    {CHC_METRIC_PIECES, CHC_METRIC_GAUGE, "table,state",
     "Pieces by state: done and dirty task-wide as last seen, in_flight by this worker."},
    {CHC_METRIC_PARTITIONS, CHC_METRIC_GAUGE, "table,state",
     "Partitions of the table task-wide as last seen: done (moved) and total."},
    {CHC_METRIC_RETRIES, CHC_METRIC_COUNTER, "table",
     "Piece copies and partition moves this worker retried."},
    {CHC_METRIC_ERRORS, CHC_METRIC_COUNTER, "table,kind",
     "Errors this worker met, by error code name (chc_err_name)."},
    {CHC_METRIC_SLOTS_IN_USE, CHC_METRIC_GAUGE, "",
     "max_workers slots this worker holds (pieces it is copying)."},
    {CHC_METRIC_MAX_WORKERS, CHC_METRIC_GAUGE, "",
     "The task's max_workers, as last read from ZooKeeper."},
    {CHC_METRIC_ZK_SESSION, CHC_METRIC_GAUGE, "state",
     "1 for the current ZooKeeper session state (connected or expired), 0 for the other."},
};

#define DROPPED_HELP                                                                       \
    "Metric updates dropped: invalid name, labels or type use; series limit; out of memory."

struct series {
    char *labels; /* "" for none */
    double value;
};

struct family {
    char *name;
    char *help;        /* NULL: no # HELP line */
    char *label_names; /* NULL: any labels */
    enum chc_metric_type type;
    struct series *series;
    size_t n, alloc;
};

struct chc_metrics {
    struct family *fam;
    size_t nfam, afam;
    size_t nseries;
    double dropped[_DROP_REASON_MAX];
    struct chc_metrics_server *srv; /* NULL: not serving */
    void (*srv_close)(struct chc_metrics_server *srv);
    unsigned timeout_ms;
};

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

static int is_alpha_(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int valid_metric_name(const char *s)
{
    size_t i;

    if (!s || !(is_alpha_(s[0]) || s[0] == ':'))
        return 0;
    for (i = 1; s[i]; i++)
        if (!(is_alpha_(s[i]) || is_digit(s[i]) || s[i] == ':') || i >= NAME_MAX_LEN)
            return 0;
    return 1;
}

/* Length of the label name at s (0 if none); names starting "__" are reserved. */
static size_t label_name_len(const char *s)
{
    size_t i;

    if (!is_alpha_(s[0]) || (s[0] == '_' && s[1] == '_'))
        return 0;
    for (i = 1; is_alpha_(s[i]) || is_digit(s[i]); i++)
        ;
    return i;
}

/* "a,b,c" of valid, distinct label names, or "" (none). */
static int valid_label_names(const char *s)
{
    const char *seen[LABELS_MAX_COUNT];
    size_t seen_len[LABELS_MAX_COUNT];
    size_t n = 0, len, j;

    if (!*s)
        return 1;
    for (;;) {
        len = label_name_len(s);
        if (!len || n == LABELS_MAX_COUNT)
            return 0;
        for (j = 0; j < n; j++)
            if (seen_len[j] == len && !memcmp(seen[j], s, len))
                return 0;
        seen[n] = s;
        seen_len[n++] = len;
        s += len;
        if (!*s)
            return 1;
        if (*s++ != ',')
            return 0;
    }
}

/* Check `k="v",k2="v2"`: valid names, distinct, values with only \\ \" \n
 * escapes and no raw newline; if want is not NULL, the names must be exactly
 * the comma-separated list want, in order. */
static int valid_labels(const char *s, const char *want)
{
    const char *seen[LABELS_MAX_COUNT];
    size_t seen_len[LABELS_MAX_COUNT];
    size_t n = 0, len, j;

    if (strlen(s) > LABELS_MAX_LEN)
        return 0;
    while (*s) {
        len = label_name_len(s);
        if (!len || n == LABELS_MAX_COUNT)
            return 0;
        for (j = 0; j < n; j++)
            if (seen_len[j] == len && !memcmp(seen[j], s, len))
                return 0;
        if (want) {
            if (strncmp(want, s, len) != 0 || (want[len] != ',' && want[len] != '\0'))
                return 0;
            want += len + (want[len] == ',');
        }
        seen[n] = s;
        seen_len[n++] = len;
        s += len;
        if (s[0] != '=' || s[1] != '"')
            return 0;
        for (s += 2; *s != '"'; s++) {
            if (*s == '\0' || *s == '\n')
                return 0;
            if (*s == '\\') {
                s++;
                if (*s != '\\' && *s != '"' && *s != 'n')
                    return 0;
            }
        }
        s++;
        if (*s == ',') {
            s++;
            if (!*s)
                return 0;
        } else if (*s) {
            return 0;
        }
    }
    return !want || !*want;
}

int chc_metrics_label(struct chc_buf *b, const char *key, const char *value)
{
    size_t old = b->len;
    const char *p;
    int r;

    if (!key || !*key || label_name_len(key) != strlen(key) || !value)
        return -EINVAL;
    r = 0;
    if (b->len)
        r = chc_buf_addch(b, ',');
    if (r == 0)
        r = chc_buf_addf(b, "%s=\"", key);
    for (p = value; r == 0 && *p; p++) {
        if (*p == '\\')
            r = chc_buf_addstr(b, "\\\\");
        else if (*p == '"')
            r = chc_buf_addstr(b, "\\\"");
        else if (*p == '\n')
            r = chc_buf_addstr(b, "\\n");
        else
            r = chc_buf_addch(b, *p);
    }
    if (r == 0)
        r = chc_buf_addch(b, '"');
    if (r < 0)
        chc_buf_setlen(b, old);
    return r;
}

const char *chc_metric_type_to_string(enum chc_metric_type t)
{
    if ((unsigned)t >= _CHC_METRIC_TYPE_MAX)
        return NULL;
    return metric_type_names[t];
}

/* ------------------------------------------------------------------------ */
/* Registry                                                                 */
/* ------------------------------------------------------------------------ */

static struct family *find_family(const struct chc_metrics *m, const char *name)
{
    size_t i;

    for (i = 0; i < m->nfam; i++)
        if (!strcmp(m->fam[i].name, name))
            return &m->fam[i];
    return NULL;
}

static struct series *find_series(const struct family *f, const char *labels)
{
    size_t i;

    for (i = 0; i < f->n; i++)
        if (!strcmp(f->series[i].labels, labels))
            return &f->series[i];
    return NULL;
}

static void family_release(struct family *f)
{
    size_t i;

    for (i = 0; i < f->n; i++)
        free(f->series[i].labels);
    free(f->series);
    free(f->name);
    free(f->help);
    free(f->label_names);
}

/* Append a family; the returned pointer is valid until the next append. */
static int family_add(struct chc_metrics *m, const char *name, enum chc_metric_type type,
                      struct family **ret)
{
    struct family *f;
    size_t n;

    if (m->nfam == m->afam) {
        n = m->afam ? m->afam * 2 : 16;
        f = realloc(m->fam, n * sizeof(*f));
        if (!f)
            return -ENOMEM;
        m->fam = f;
        m->afam = n;
    }
    f = &m->fam[m->nfam];
    memset(f, 0, sizeof(*f));
    f->name = chc_strdup(name);
    if (!f->name)
        return -ENOMEM;
    f->type = type;
    m->nfam++;
    *ret = f;
    return 0;
}

static int family_set_text(struct family *f, const char *label_names, const char *help)
{
    char *ln = NULL, *h = NULL;

    if (label_names) {
        ln = chc_strdup(label_names);
        if (!ln)
            return -ENOMEM;
    }
    if (help) {
        h = chc_strdup(help);
        if (!h) {
            free(ln);
            return -ENOMEM;
        }
    }
    if (label_names) {
        free(f->label_names);
        f->label_names = ln;
    }
    if (help) {
        free(f->help);
        f->help = h;
    }
    return 0;
}

int chc_metrics_describe(struct chc_metrics *m, const char *name, enum chc_metric_type type,
                         const char *label_names, const char *help, struct chc_err *err)
{
    struct family *f;
    size_t i;
    int r;

    if (!valid_metric_name(name) || !strcmp(name, CHC_METRIC_DROPPED))
        return chc_err_set(err, -EINVAL, "invalid or reserved metric name '%s'",
                           name ? name : "(null)");
    if ((unsigned)type >= _CHC_METRIC_TYPE_MAX)
        return chc_err_set(err, -EINVAL, "metric '%s': invalid type %d", name, (int)type);
    if (label_names && !valid_label_names(label_names))
        return chc_err_set(err, -EINVAL, "metric '%s': invalid label names '%s'", name,
                           label_names);
    f = find_family(m, name);
    if (f && f->type != CHC_METRIC_UNTYPED && f->type != type)
        return chc_err_set(err, -EINVAL, "metric '%s' is already a %s", name,
                           metric_type_names[f->type]);
    if (f && label_names) {
        for (i = 0; i < f->n; i++)
            if (!valid_labels(f->series[i].labels, label_names))
                return chc_err_set(err, -EINVAL,
                                   "metric '%s' already has series with labels other than '%s'",
                                   name, label_names);
    }
    if (!f) {
        r = family_add(m, name, type, &f);
        if (r < 0)
            return chc_err_set(err, r, "out of memory");
    }
    r = family_set_text(f, label_names, help);
    if (r < 0)
        return chc_err_set(err, r, "out of memory");
    f->type = type;
    return 0;
}

int chc_metrics_new(struct chc_metrics **ret, struct chc_err *err)
{
    struct chc_metrics *m;
    size_t i;
    int r;

    m = calloc(1, sizeof(*m));
    if (!m)
        return chc_err_set(err, -ENOMEM, "out of memory");
    m->timeout_ms = CHC_METRICS_CLIENT_TIMEOUT_MS;
    for (i = 0; i < sizeof(catalog) / sizeof(catalog[0]); i++) {
        r = chc_metrics_describe(m, catalog[i].name, catalog[i].type, catalog[i].label_names,
                                 catalog[i].help, err);
        if (r < 0)
            goto fail;
    }
    chc_metrics_set(m, CHC_METRIC_UP, "", 1);
    if (m->dropped[DROP_NOMEM] > 0) {
        r = chc_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    *ret = m;
    return 0;

fail:
    chc_metrics_free(m);
    return r;
}

static void drop(struct chc_metrics *m, enum drop_reason why, const char *name)
{
    m->dropped[why] += 1;
    chc_log_debug("metrics: dropped an update of '%s' (%s)", name ? name : "(null)",
                  drop_reason_names[why]);
}

/* The series for (name, labels), created at 0 if needed; NULL = dropped. */
static struct series *series_get(struct chc_metrics *m, const char *name, const char *labels,
                                 int is_set)
{
    struct family *f;
    struct series *s;
    size_t n;

    if (!m)
        return NULL;
    if (!labels)
        labels = "";
    if (!valid_metric_name(name) || !strcmp(name, CHC_METRIC_DROPPED)) {
        drop(m, DROP_INVALID, name);
        return NULL;
    }
    f = find_family(m, name);
    if (f && is_set && f->type == CHC_METRIC_COUNTER) {
        drop(m, DROP_INVALID, name);
        return NULL;
    }
    if (f) {
        s = find_series(f, labels);
        if (s)
            return s;
    }
    if (!valid_labels(labels, f ? f->label_names : NULL)) {
        drop(m, DROP_INVALID, name);
        return NULL;
    }
    if (m->nseries >= CHC_METRICS_MAX_SERIES) {
        drop(m, DROP_LIMIT, name);
        return NULL;
    }
    if (!f && family_add(m, name, CHC_METRIC_UNTYPED, &f) < 0) {
        drop(m, DROP_NOMEM, name);
        return NULL;
    }
    if (f->n == f->alloc) {
        n = f->alloc ? f->alloc * 2 : 4;
        s = realloc(f->series, n * sizeof(*s));
        if (!s) {
            drop(m, DROP_NOMEM, name);
            return NULL;
        }
        f->series = s;
        f->alloc = n;
    }
    s = &f->series[f->n];
    s->labels = chc_strdup(labels);
    if (!s->labels) {
        drop(m, DROP_NOMEM, name);
        return NULL;
    }
    s->value = 0;
    f->n++;
    m->nseries++;
    return s;
}

void chc_metrics_add(struct chc_metrics *m, const char *name, const char *labels, double delta)
{
    const struct family *f;
    struct series *s;

    if (!m)
        return;
    f = valid_metric_name(name) ? find_family(m, name) : NULL;
    if (f && f->type == CHC_METRIC_COUNTER && !(delta >= 0)) {
        drop(m, DROP_INVALID, name);
        return;
    }
    s = series_get(m, name, labels, 0);
    if (s)
        s->value += delta;
}

void chc_metrics_set(struct chc_metrics *m, const char *name, const char *labels, double value)
{
    struct series *s;

    s = series_get(m, name, labels, 1);
    if (s)
        s->value = value;
}

double chc_metrics_get(const struct chc_metrics *m, const char *name, const char *labels)
{
    const struct family *f;
    const struct series *s;
    size_t i;

    if (!m || !name)
        return NAN;
    if (!labels)
        labels = "";
    if (!strcmp(name, CHC_METRIC_DROPPED)) {
        for (i = 0; i < _DROP_REASON_MAX; i++)
            if (!strncmp(labels, "reason=\"", 8) &&
                !strncmp(labels + 8, drop_reason_names[i], strlen(drop_reason_names[i])) &&
                !strcmp(labels + 8 + strlen(drop_reason_names[i]), "\""))
                return m->dropped[i];
        return NAN;
    }
    f = find_family(m, name);
    s = f ? find_series(f, labels) : NULL;
    return s ? s->value : NAN;
}

/* ------------------------------------------------------------------------ */
/* Text exposition format 0.0.4                                             */
/* ------------------------------------------------------------------------ */

static void format_value(char *out, size_t n, double v)
{
    double back;

    if (isnan(v)) {
        snprintf(out, n, "NaN");
    } else if (isinf(v)) {
        snprintf(out, n, "%sInf", v > 0 ? "+" : "-");
    } else if (v == 0) {
        snprintf(out, n, "0"); /* also for -0 */
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, n, "%.0f", v);
    } else {
        /* Shortest of %.15g / %.17g that reads back exactly. */
        snprintf(out, n, "%.15g", v);
        back = strtod(out, NULL);
        if (back != v)
            snprintf(out, n, "%.17g", v);
    }
}

static int add_help(struct chc_buf *out, const char *name, const char *help)
{
    const char *p;
    int r;

    r = chc_buf_addf(out, "# HELP %s ", name);
    for (p = help; r == 0 && *p; p++) {
        if (*p == '\\')
            r = chc_buf_addstr(out, "\\\\");
        else if (*p == '\n')
            r = chc_buf_addstr(out, "\\n");
        else
            r = chc_buf_addch(out, *p);
    }
    if (r == 0)
        r = chc_buf_addch(out, '\n');
    return r;
}

static int add_sample(struct chc_buf *out, const char *name, const char *labels, double v)
{
    char val[64];

    format_value(val, sizeof(val), v);
    if (*labels)
        return chc_buf_addf(out, "%s{%s} %s\n", name, labels, val);
    return chc_buf_addf(out, "%s %s\n", name, val);
}

int chc_metrics_render(const struct chc_metrics *m, struct chc_buf *out)
{
    const struct family *f;
    size_t old = out->len, i, j;
    int r = 0;

    for (i = 0; i < m->nfam && r == 0; i++) {
        f = &m->fam[i];
        if (f->n == 0)
            continue;
        if (f->help)
            r = add_help(out, f->name, f->help);
        if (r == 0)
            r = chc_buf_addf(out, "# TYPE %s %s\n", f->name, metric_type_names[f->type]);
        for (j = 0; j < f->n && r == 0; j++)
            r = add_sample(out, f->name, f->series[j].labels, f->series[j].value);
    }
    if (r == 0)
        r = add_help(out, CHC_METRIC_DROPPED, DROPPED_HELP);
    if (r == 0)
        r = chc_buf_addf(out, "# TYPE %s counter\n", CHC_METRIC_DROPPED);
    for (i = 0; i < _DROP_REASON_MAX && r == 0; i++) {
        char labels[64];

        snprintf(labels, sizeof(labels), "reason=\"%s\"", drop_reason_names[i]);
        r = add_sample(out, CHC_METRIC_DROPPED, labels, m->dropped[i]);
    }
    if (r < 0)
        chc_buf_setlen(out, old);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Lifetime and the endpoint's slot                                         */
/* ------------------------------------------------------------------------ */

void chc_metrics_set_client_timeout(struct chc_metrics *m, unsigned timeout_ms)
{
    m->timeout_ms = timeout_ms;
}

struct chc_metrics *chc_metrics_free(struct chc_metrics *m)
{
    size_t i;

    if (!m)
        return NULL;
    if (m->srv)
        m->srv_close(m->srv);
    for (i = 0; i < m->nfam; i++)
        family_release(&m->fam[i]);
    free(m->fam);
    free(m);
    return NULL;
}

struct chc_metrics_server *chc__metrics_server(const struct chc_metrics *m)
{
    return m->srv;
}

void chc__metrics_attach(struct chc_metrics *m, struct chc_metrics_server *srv,
                         void (*srv_close)(struct chc_metrics_server *srv))
{
    m->srv = srv;
    m->srv_close = srv_close;
}

unsigned chc__metrics_client_timeout(const struct chc_metrics *m)
{
    return m->timeout_ms;
}
