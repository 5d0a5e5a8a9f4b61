/* url.h — the request URL of a query (src/ch/url.c). Pure: no I/O;
 * unit-tested against golden strings.
 */
#ifndef CHC_CH_URL_H
#define CHC_CH_URL_H

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/ch/query.h"

/* The request URL: http[s]://host:port/?query_id=..&database=..&<settings>
 * [&wait_end_of_query=1], every name and value percent-encoded, IPv6 hosts in
 * brackets. Never contains user or password. Appends to out. */
int ch_build_url(const struct ch_query_params *p, struct chc_buf *out, struct chc_err *err);

#endif
