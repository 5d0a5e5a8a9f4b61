/* metrics-internal.h — the registry's slot for its HTTP endpoint; shared by
 * metrics.c and metrics-http.c only.
 *
 * The registry does not know the server's code: chc_metrics_listen() attaches
 * the server with the function that closes it, and chc_metrics_free() calls
 * that function before it frees the families. So the endpoint depends on the
 * registry and never the other way round.
 */
#ifndef CHC_METRICS_INTERNAL_H
#define CHC_METRICS_INTERNAL_H

struct chc_metrics;
struct chc_metrics_server; /* metrics-http.c's */

/* The attached server, NULL if none. */
struct chc_metrics_server *chc__metrics_server(const struct chc_metrics *m);
/* Attach srv; chc_metrics_free() will call srv_close(srv) first thing. */
void chc__metrics_attach(struct chc_metrics *m, struct chc_metrics_server *srv,
                         void (*srv_close)(struct chc_metrics_server *srv));
/* The per-connection deadline in ms (chc_metrics_set_client_timeout()). */
unsigned chc__metrics_client_timeout(const struct chc_metrics *m);

#endif
