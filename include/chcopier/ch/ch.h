/* ch.h — the ClickHouse HTTP client layer (src/ch), in one include.
 *
 * The only layer that speaks HTTP: the files of src/ch are the only ones that
 * include curl.h. Everything runs on the thread of one uv_loop_t. The
 * interface is split by the file that implements it:
 *   client.h    the client; starting, cancelling and waiting for queries
 *               (client.c)
 *   query.h     what a query sends, its outcome and its errors (query.c)
 *   pipe.h      a source SELECT streamed into a destination INSERT through
 *               this process (pipe.c)
 *   url.h       the request URL of a query (url.c)
 *   response.h  ClickHouse exception codes and texts (response.c)
 *   rows.h      TabSeparated results (tsv.c)
 */
#ifndef CHC_CH_H
#define CHC_CH_H

#include "chcopier/ch/client.h"
#include "chcopier/ch/pipe.h"
#include "chcopier/ch/query.h"
#include "chcopier/ch/response.h"
#include "chcopier/ch/rows.h"
#include "chcopier/ch/url.h"

#endif
