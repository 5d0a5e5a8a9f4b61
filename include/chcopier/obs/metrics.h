/* metrics.h — counters and gauges, rendered in the Prometheus text format.
 *
 * A registry of metric families (name, type, help, expected label names) and
 * their series (one label set each, one double value). Serving it over HTTP
 * is metrics-http.h's. Everything runs on the loop's thread; no function
 * here may be called from another thread. Updates never fail visibly:
 * metrics must not stop a copy. An update that cannot be applied (bad name
 * or labels, wrong type, series cap reached, ENOMEM) is dropped and counted
 * in chcopier_metrics_dropped_total{reason}.
 *
 * Call sequence:
 *   1. chc_metrics_new(&m, err): registry only, no I/O. The built-in chcopier
 *      families (CHC_METRIC_* below, documented in docs/metrics.md) are
 *      described already and chcopier_up is set to 1.
 *   2. Optionally chc_metrics_listen(m, loop, "127.0.0.1", port, err) to serve
 *      it (metrics-http.h).
 *   3. chc_metrics_add()/chc_metrics_set() at any time, e.g.
 *          chc_metrics_add(m, CHC_METRIC_ROWS_COPIED, "table=\"hits\"", 1e6);
 *      Build label strings with chc_metrics_label(), which escapes values.
 *   4. Shutdown:
 *          m = chc_metrics_free(m);        (closes the server's handles)
 *          uv_run(loop, UV_RUN_DEFAULT);   (their close callbacks run here)
 *          uv_loop_close(loop);            (== 0)
 *      The registry is released at once; connection memory is released in
 *      the close callbacks, which do not touch the registry.
 *
 * Labels: a label string is `name="value",name2="value2"` exactly as it will
 * appear between the braces, values escaped (\\, \", \n). The same labels in
 * a different order would be a different series, so families with declared
 * label names (all built-in ones) require exactly those names in that order;
 * "" (or NULL) means no labels.
 */
#ifndef CHC_METRICS_H
#define CHC_METRICS_H

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

/* Built-in families, "labels" as they must be passed (see docs/metrics.md). */
#define CHC_METRIC_UP "chcopier_up"                          /* gauge, none */
#define CHC_METRIC_ROWS_COPIED "chcopier_rows_copied_total"  /* counter, table */
#define CHC_METRIC_BYTES_COPIED "chcopier_bytes_copied_total" /* counter, table */
#define CHC_METRIC_PIECES "chcopier_pieces"                  /* gauge, table,state */
#define CHC_METRIC_PARTITIONS "chcopier_partitions"          /* gauge, table,state */
#define CHC_METRIC_RETRIES "chcopier_retries_total"          /* counter, table */
#define CHC_METRIC_ERRORS "chcopier_errors_total"            /* counter, table,kind */
#define CHC_METRIC_SLOTS_IN_USE "chcopier_worker_slots_in_use" /* gauge, none */
#define CHC_METRIC_MAX_WORKERS "chcopier_max_workers"        /* gauge, none */
#define CHC_METRIC_ZK_SESSION "chcopier_zookeeper_session"   /* gauge, state */
#define CHC_METRIC_DROPPED "chcopier_metrics_dropped_total"  /* counter, reason */

#define CHC_METRICS_MAX_SERIES 10000
/* Default per-connection deadline of the endpoint (metrics-http.h). */
#define CHC_METRICS_CLIENT_TIMEOUT_MS 10000

enum chc_metric_type {
    CHC_METRIC_UNTYPED,
    CHC_METRIC_COUNTER,
    CHC_METRIC_GAUGE,
    _CHC_METRIC_TYPE_MAX,
};

struct chc_metrics;

int chc_metrics_new(struct chc_metrics **ret, struct chc_err *err);
/* Closes the server (if any) and frees the registry; accepts NULL; returns
 * NULL. Run the loop afterwards so the close callbacks can finish. */
struct chc_metrics *chc_metrics_free(struct chc_metrics *m);

/* Testing: the endpoint's per-connection deadline in ms instead of
 * CHC_METRICS_CLIENT_TIMEOUT_MS (before chc_metrics_listen()). */
void chc_metrics_set_client_timeout(struct chc_metrics *m, unsigned timeout_ms);

/* Declare a family before (or after) its first update. type: counter values
 * only go up (add with a negative delta and set are dropped); gauges take
 * both. label_names: "table,state" (every update must use exactly these, in
 * this order), "" (no labels) or NULL (any labels). help may be NULL.
 * Re-describing an existing family with a different type fails (-EINVAL). */
int chc_metrics_describe(struct chc_metrics *m, const char *name, enum chc_metric_type type,
                         const char *label_names, const char *help, struct chc_err *err);

/* Add delta to a counter or gauge; a series starts at 0. Undescribed names
 * become untyped families. */
void chc_metrics_add(struct chc_metrics *m, const char *name, const char *labels, double delta);
/* Set a gauge. */
void chc_metrics_set(struct chc_metrics *m, const char *name, const char *labels, double value);
/* Current value of a series, or NaN if it does not exist. */
double chc_metrics_get(const struct chc_metrics *m, const char *name, const char *labels);

/* Append `key="escaped value"` to a label string, with a comma before it if
 * b is not empty. -EINVAL for an invalid label name. */
int chc_metrics_label(struct chc_buf *b, const char *key, const char *value) CHC_WUR;

/* Append the whole registry in text exposition format 0.0.4: families in the
 * order they were described or first used, each as # HELP (if any), # TYPE
 * and its series in the order they were created; families without series are
 * left out. -ENOMEM / CHC_ETOOBIG (out's cap), out unchanged past its old
 * length on failure. */
int chc_metrics_render(const struct chc_metrics *m, struct chc_buf *out) CHC_WUR;

const char *chc_metric_type_to_string(enum chc_metric_type t);

#endif
