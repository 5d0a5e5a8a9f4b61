/* codec.h — the data of the task's ZooKeeper nodes, encoded and decoded
 * (pure; docs/design.md, "ZooKeeper layout"):
 *   1. a piece: "done 1,2\nstarted 3\nrows N\nms N\nerror TEXT\n" (source
 *      shards 1-based; unknown lines are skipped);
 *   2. the partition list: an optional "#sums <hex>\n", then per partition
 *      "<shards>\t<splits or =>\t<rows>\t<checksum>\t<literal>\n" ("=": a
 *      member of the copy group of the line before);
 *   3. a claim: "<worker id>\nhostkey <boot id>/<pid namespace>\n";
 *   4. a worker's registration: "host H\npid P\nhostkey K\n" and a
 *      "note <line>" per line of its note.
 */
#ifndef CHC_STATE_CODEC_H
#define CHC_STATE_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"

/* A piece's recorded state. */
struct piece_state {
    unsigned char *done; /* per source shard, the caller's array of n_shards */
    int started;         /* source shard index or -1 */
    long long rows;
    int version;         /* of the node (-1: not read) */
    int exists;
    long long ms;        /* duration of the last successful copy */
    char error[240];     /* last failure, "" if none */
};

/* Decode into ps (done cleared first); -EINVAL for a malformed "done". */
int st_piece_decode(const char *data, size_t n_shards, struct piece_state *ps);
int st_piece_encode(const struct piece_state *ps, size_t n_shards, struct chc_buf *out);
/* The state of a piece whose node does not exist. */
void st_piece_absent(struct piece_state *ps, size_t n_shards);

/* One line of the partition list. */
struct st_plist_entry {
    const char *lit;
    unsigned char *on_shard; /* n_shards flags */
    unsigned splits;         /* 0: in the copy group of the entry before */
    long long rows;          /* -1: not counted */
    unsigned long long hash;
};

int st_plist_encode(const struct st_plist_entry *e, size_t n, size_t n_shards, uint64_t sums_key,
                    struct chc_buf *out);
/* Calls each() per line, in order (e->on_shard is scratch, valid during
 * the call); *sums_key gets the "#sums" value or 0. CHC_ESTATE for a
 * malformed line; each()'s error is returned as it is. */
int st_plist_decode(const char *text, size_t n_shards, uint64_t *sums_key,
                    int (*each)(void *arg, const struct st_plist_entry *e), void *arg,
                    struct chc_err *err);

int st_claim_encode(const char *id, const char *hostkey, struct chc_buf *out);
/* The holder's id (first line) into id[cap]; the hostkey (or "") into
 * key[cap]. */
void st_claim_decode(const char *data, char *id, size_t id_cap, char *key, size_t key_cap);
int st_registration_encode(const char *host, long pid, const char *hostkey, const char *note,
                           struct chc_buf *out);

#endif
