/* url.h — internals of url.c shared with the query code; the public part
 * (ch_build_url) is chcopier/ch/url.h.
 */
#ifndef CHC_SRC_CH_URL_H
#define CHC_SRC_CH_URL_H

#include "chcopier/base/buf.h"
#include "chcopier/config/task.h"

/* Append "host:port" of rep ("[host]:port" for an IPv6 address), as in its
 * URL and at the start of its messages. 0 or -ENOMEM/CHC_ETOOBIG. */
int ch__add_hostport(struct chc_buf *out, const struct cfg_replica *rep);

#endif
