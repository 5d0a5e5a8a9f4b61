/* url.c — the request URL of a query: scheme, host and port (IPv6 in
 * brackets) and the URL parameters (query_id, database, settings sets with
 * later sets overriding earlier ones, wait_end_of_query), percent-encoded.
 * Refuses names the server would read as something other than a setting;
 * user and password never go into a URL (they travel in headers, query.c).
 * Pure: builds text, no I/O.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/query.h"
#include "chcopier/ch/url.h"
#include "chcopier/config/task.h"
#include "ch/url.h"

#include "base/banned.h"

static const char *const reserved_params[] = {
    "query", "query_id", "database", "user", "password", "quota_key", "compress", "decompress",
};

static int add_param(struct chc_buf *out, char *sep, const char *name, const char *value)
{
    int r;

    r = chc_buf_addch(out, *sep);
    if (r == 0)
        r = chc_buf_add_urlenc(out, name);
    if (r == 0)
        r = chc_buf_addch(out, '=');
    if (r == 0)
        r = chc_buf_add_urlenc(out, value ? value : "");
    *sep = '&';
    return r;
}

/* Is settings item (set si, index ii) overridden by a later one? */
static int overridden(const struct ch_query_params *p, size_t si, size_t ii)
{
    const char *name = p->settings[si]->items[ii].name;
    size_t s, i;

    for (s = si; s < CH_SETTINGS_MAX && p->settings[s]; s++)
        for (i = s == si ? ii + 1 : 0; i < p->settings[s]->n; i++)
            if (p->settings[s]->items[i].name && !strcmp(p->settings[s]->items[i].name, name))
                return 1;
    return 0;
}

static int check_host(const char *host)
{
    const char *s;

    if (!host || !*host)
        return -EINVAL;
    for (s = host; *s; s++)
        if ((unsigned char)*s <= ' ' || *s == 0x7f || strchr("/?#@\\", *s))
            return -EINVAL;
    return 0;
}

int ch__add_hostport(struct chc_buf *out, const struct cfg_replica *rep)
{
    int v6 = strchr(rep->host, ':') && rep->host[0] != '[';

    return chc_buf_addf(out, "%s%s%s:%d", v6 ? "[" : "", rep->host, v6 ? "]" : "",
                        rep->http_port);
}

int ch_build_url(const struct ch_query_params *p, struct chc_buf *out, struct chc_err *err)
{
    const struct cfg_replica *rep = p ? p->replica : NULL;
    size_t start = out->len, s, i, k;
    int explicit_wait = 0;
    char sep = '?';
    int r;

    if (!rep) {
        r = chc_err_set(err, -EINVAL, "no replica given for the query");
        goto fail;
    }
    if (check_host(rep->host) < 0) {
        r = chc_err_set(err, -EINVAL, "invalid ClickHouse host '%s'", rep->host ? rep->host : "");
        goto fail;
    }
    if (rep->http_port <= 0 || rep->http_port > 65535) {
        r = chc_err_set(err, -EINVAL, "%s: invalid HTTP port %d", rep->host, rep->http_port);
        goto fail;
    }
    r = chc_buf_addstr(out, rep->secure ? "https://" : "http://");
    if (r == 0)
        r = ch__add_hostport(out, rep);
    if (r == 0)
        r = chc_buf_addch(out, '/');
    if (r == 0 && p->query_id && *p->query_id)
        r = add_param(out, &sep, "query_id", p->query_id);
    if (r == 0 && p->database && *p->database)
        r = add_param(out, &sep, "database", p->database);
    for (s = 0; r == 0 && s < CH_SETTINGS_MAX && p->settings[s]; s++) {
        for (i = 0; r == 0 && i < p->settings[s]->n; i++) {
            const struct cfg_setting *it = &p->settings[s]->items[i];

            if (!it->name || !*it->name) {
                r = chc_err_set(err, -EINVAL, "%s: setting without a name", rep->host);
                goto fail;
            }
            for (k = 0; k < sizeof(reserved_params) / sizeof(reserved_params[0]); k++) {
                if (!strcmp(it->name, reserved_params[k])) {
                    r = chc_err_set(err, -EINVAL,
                                    "setting '%s' cannot be passed as a URL parameter", it->name);
                    goto fail;
                }
            }
            if (!strcmp(it->name, "wait_end_of_query"))
                explicit_wait = 1;
            if (!overridden(p, s, i))
                r = add_param(out, &sep, it->name, it->value);
        }
    }
    if (r == 0 && !p->stream && !explicit_wait)
        r = add_param(out, &sep, "wait_end_of_query", "1");
    if (r < 0) {
        r = chc_err_set(err, r, "%s: cannot build the query URL: %s", rep->host, chc_strerror(r));
        goto fail;
    }
    return 0;
fail:
    if (out->alloc)
        chc_buf_setlen(out, start);
    return r;
}
