/* cmd-status.c — `chcopier status`: what the task's ZooKeeper state says,
 * with no ClickHouse query: the workers and their notes, and per table its
 * partitions, pieces, rows, speed, ETA, claims in flight and the last
 * error; as text or (--json) one JSON object. Secrets masked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/options.h"
#include "chcopier/config/task.h"
#include "chcopier/copier/worker.h"
#include "chcopier/sql/plan.h"
#include "chcopier/state/codec.h"
#include "chcopier/state/layout.h"
#include "chcopier/state/taskstore.h"
#include "chcopier/zk/zk.h"
#include "cmd.h"
#include "tstate.h"
#include "wk.h"

#include "base/banned.h"

struct table_status {
    const char *state; /* not_started, copying, done */
    size_t parts_total, parts_done, parts_moving;
    size_t pieces_total, pieces_done;
    unsigned long long rows_verified, rows_staged;
    long long rows_total;  /* from discovery, -1 unknown */
    size_t failing;        /* pieces whose last attempt failed */
    char last_error[400];
    double elapsed;        /* seconds since the partition list was published */
    double rows_per_s;     /* average since then */
    double eta;            /* seconds, -1 unknown */
    struct chc_buf flight_text, flight_json;
    size_t n_flight;
    char routing[400];     /* <t>/routing, as the last worker to start chose */
};

/* The table's state with its partition list; CHC_EZK_NONODE before any
 * worker published one. pst gets the list's stat. */
static int status_open(struct worker *w, const struct cfg_table *tb, struct tstate **ret,
                       struct zk_stat *pst, struct chc_err *err)
{
    struct tstate *ts = calloc(1, sizeof(*ts));
    struct chc_buf b = CHC_BUF_INIT;
    int r;

    *ret = ts;
    if (!ts || st_path_table(w->o->task_path, tb, &b) < 0) {
        chc_buf_release(&b);
        return oom(err);
    }
    ts->w = w;
    ts->tb = tb;
    ts->splits = plan_splits(tb);
    ts->zroot = chc_buf_take(&b, NULL);
    r = tstate__parts_read(ts, pst, err);
    chc_buf_release(&b);
    return r;
}

/* The state nodes nodes[0..n) in one pipelined round (a table of 100 k
 * partitions: one round trip, not 100 k): outs[i] their text, "" when
 * absent (*absent[i] set). */
static int status_read(struct tstate *ts, const struct st_node *nodes, size_t n,
                       struct chc_buf **ret, unsigned char **absent, struct chc_err *err)
{
    struct st_table t = tstate__st(ts);
    struct chc_buf *outs = calloc(n + 1, sizeof(*outs));
    int *codes = calloc(n + 1, sizeof(*codes));
    size_t i;
    int r = outs && codes && (*absent = calloc(n + 1, 1)) ? 0 : oom(err);

    for (i = 0; outs && i < n; i++)
        chc_buf_init(&outs[i], 0);
    if (r == 0 && n)
        r = st_read_many(&t, nodes, n, outs, codes, err);
    for (i = 0; r == 0 && i < n; i++) {
        if (codes[i] == CHC_EZK_NONODE)
            (*absent)[i] = 1;
        else if (codes[i] < 0)
            r = chc_err_set(err, codes[i], "reading the state of partition %s failed",
                            nodes[i].part);
    }
    free(codes);
    *ret = outs;
    return r;
}

static void status_free(struct chc_buf *outs, size_t n, unsigned char *absent)
{
    size_t i;

    for (i = 0; outs && i < n; i++)
        chc_buf_release(&outs[i]);
    free(outs);
    free(absent);
}

/* Partitions done (and their rows) or moving, from parts/<p>. */
static int status_parts(struct tstate *ts, struct table_status *st, struct chc_err *err)
{
    struct st_node *nodes = calloc(ts->n_parts + 1, sizeof(*nodes));
    struct chc_buf *outs = NULL;
    unsigned char *absent = NULL;
    size_t i;
    int r = nodes ? 0 : oom(err);

    st->parts_total = ts->n_parts;
    st->rows_total = 0;
    for (i = 0; i < ts->n_parts; i++)
        st->rows_total = ts->parts[i].rows < 0 || st->rows_total < 0
                             ? -1
                             : st->rows_total + ts->parts[i].rows;
    for (i = 0; nodes && i < ts->n_parts; i++)
        nodes[i] = (struct st_node){ts->parts[i].zname, ST_PART_STATE};
    if (r == 0)
        r = status_read(ts, nodes, ts->n_parts, &outs, &absent, err);
    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        unsigned long long rows = 0, hash = 0;
        if (absent[i])
            continue;
        if (sscanf(outs[i].buf, "done %llu %llu", &rows, &hash) == 2) {
            ts->parts[i].done = 1;
            st->parts_done++;
            st->rows_verified += rows;
        } else if (outs[i].len) {
            st->parts_moving++;
        }
    }
    status_free(outs, ts->n_parts, absent);
    free(nodes);
    return r;
}

/* One piece of a copy group not yet moved (data: its state, NULL when
 * absent): copied, staged rows, last failure. */
static int status_piece(struct tstate *ts, size_t lead, unsigned k, const char *data,
                        struct piece_state *ps, struct table_status *st, struct chc_err *err)
{
    size_t sh, S = ts->tb->pull->n_shards;

    if (!data)
        st_piece_absent(ps, S);
    else if (st_piece_decode(data, S, ps) < 0)
        return chc_err_set(err, CHC_ESTATE, "bad state of piece %u of partition %s", k,
                           ts->parts[lead].lit);
    for (sh = 0; sh < S; sh++)
        st->pieces_done += group_on_shard(ts, lead, sh) && ps->done[sh];
    st->rows_staged += (unsigned long long)(ps->rows > 0 ? ps->rows : 0);
    if (ps->error[0]) {
        chc_secrets_mask_str(ps->error, sizeof(ps->error), 0);
        st->failing++;
        snprintf(st->last_error, sizeof(st->last_error), "partition %.100s piece %u: %.240s",
                 ts->parts[lead].lit, k, ps->error);
    }
    return 0;
}

/* Rows of a group's members already moved: verified, not staged. */
static void status_unstage(const struct tstate *ts, size_t lead, unsigned long long before,
                           struct table_status *st)
{
    unsigned long long staged = st->rows_staged - before, moved = 0;
    size_t m;

    for (m = lead; m < lead + ts->parts[lead].n_group; m++)
        if (ts->parts[m].done && ts->parts[m].rows > 0)
            moved += (unsigned long long)ts->parts[m].rows;
    st->rows_staged = before + (staged > moved ? staged - moved : 0);
}

static int status_pieces(struct tstate *ts, struct table_status *st, struct chc_err *err)
{
    unsigned char *done = calloc(ts->tb->pull->n_shards, 1), *absent = NULL;
    struct piece_state ps = {.done = done, .started = -1, .version = -1};
    struct st_node *nodes = calloc(ts->n_parts * ts->splits + 1, sizeof(*nodes));
    struct chc_buf *outs = NULL;
    size_t i, n = 0, j = 0;
    unsigned k;
    int r = done && nodes ? 0 : oom(err);

    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        if (ts->parts[i].lead != i)
            continue;
        st->pieces_total += group_pieces(ts, i);
        if (group_done(ts, i))
            st->pieces_done += group_pieces(ts, i);
        else
            for (k = 0; k < ts->parts[i].splits; k++)
                nodes[n++] = (struct st_node){ts->parts[i].zname, k};
    }
    if (r == 0)
        r = status_read(ts, nodes, n, &outs, &absent, err);
    for (i = 0; r == 0 && i < ts->n_parts; i++) {
        unsigned long long before = st->rows_staged;
        if (ts->parts[i].lead != i || group_done(ts, i))
            continue;
        for (k = 0; r == 0 && k < ts->parts[i].splits; k++, j++)
            r = status_piece(ts, i, k, absent[j] ? NULL : outs[j].buf, &ps, st, err);
        status_unstage(ts, i, before, st);
    }
    status_free(outs, n, absent);
    free(nodes);
    free(done);
    return r;
}

/* Speed and ETA: rows verified or staged since the partition list
 * appeared; once the table is done, over the copy, not until now. And the
 * routing the last worker chose. */
static void status_speed(struct worker *w, struct tstate *ts, const struct zk_stat *pst,
                         struct table_status *st)
{
    double copied = (double)(st->rows_verified + st->rows_staged);
    struct chc_buf b = CHC_BUF_INIT, path = CHC_BUF_INIT;
    struct timespec now;
    struct zk_stat dst;

    clock_gettime(CLOCK_REALTIME, &now);
    st->elapsed = (double)now.tv_sec + (double)now.tv_nsec / 1e9 - (double)pst->ctime / 1000.0;
    if (st_path_tnode(ts->zroot, ST_DONE, NULL, &b) == 0 &&
        zk_exists(w->zs, b.buf, &dst, NULL) == 0) {
        st->state = "done";
        st->elapsed = (double)(dst.ctime - pst->ctime) / 1000.0;
    }
    if (st->elapsed < 0.001)
        st->elapsed = 0.001;
    st->rows_per_s = copied / st->elapsed;
    st->eta = st->rows_total >= 0 && st->rows_per_s > 0
                  ? ((double)st->rows_total - copied) / st->rows_per_s
                  : -1.0;
    if ((st->eta < 0 && st->rows_total >= 0) || !strcmp(st->state, "done"))
        st->eta = 0;
    chc_buf_reset(&b);
    if (st_path_tnode(ts->zroot, ST_ROUTING, NULL, &path) == 0 &&
        zk_get(w->zs, path.buf, &b, NULL, NULL) == 0)
        snprintf(st->routing, sizeof(st->routing), "%s", b.buf);
    chc_buf_release(&b);
    chc_buf_release(&path);
}

/* One claim in flight: locks/<part>#<what> held by the worker holder. */
struct flight {
    char *part;
    char what[24];   /* piece number or "move" */
    char holder[512];
};

static int flight_cmp(const void *a, const void *b)
{
    const struct flight *x = a, *y = b;
    int c = strcmp(x->holder, y->holder);

    if (c == 0)
        c = (strcmp(x->what, "move") == 0) - (strcmp(y->what, "move") == 0);
    return c ? c : strcmp(x->part, y->part);
}

static int flight_json(struct table_status *st, const struct flight *f)
{
    const char *kind = strcmp(f->what, "move") ? "piece " : "";
    int r = chc_buf_addf(&st->flight_json, "%s{\"partition\":\"", st->n_flight ? "," : "");

    if (r == 0)
        r = chc_buf_add_json(&st->flight_json, f->part);
    if (r == 0)
        r = chc_buf_addf(&st->flight_json, "\",\"what\":\"%s%s\",\"worker\":\"", kind, f->what);
    if (r == 0)
        r = chc_buf_add_json(&st->flight_json, f->holder);
    if (r == 0)
        r = chc_buf_addstr(&st->flight_json, "\"}");
    st->n_flight++;
    return r;
}

/* Text: a line per piece; a worker's moves (a batch of up to 32
 * partitions) on one line, naming the first few. fs sorted by flight_cmp. */
static int flight_text(struct table_status *st, const struct flight *fs, size_t n)
{
    size_t i = 0, j, k;
    int r = 0;

    while (r == 0 && i < n) {
        if (strcmp(fs[i].what, "move")) {
            r = chc_buf_addf(&st->flight_text, "    partition %s piece %s held by %s\n",
                             fs[i].part, fs[i].what, fs[i].holder);
            i++;
            continue;
        }
        for (j = i; j < n && !strcmp(fs[j].what, "move") && !strcmp(fs[j].holder, fs[i].holder);)
            j++;
        r = chc_buf_addf(&st->flight_text, "    moving %zu partition%s held by %s: ", j - i,
                         j - i == 1 ? "" : "s", fs[i].holder);
        for (k = i; r == 0 && k < j && k < i + 4; k++)
            r = chc_buf_addf(&st->flight_text, "%s%s", k > i ? ", " : "", fs[k].part);
        if (r == 0)
            r = chc_buf_addf(&st->flight_text, j - i > 4 ? ", ... (%zu more)\n" : "\n",
                             j - i - 4);
        i = j;
    }
    return r;
}

/* Claims in flight: locks/<partition>#<k|move> hold the worker's claim
 * (its id, then its host key). */
static int status_flight(struct worker *w, struct tstate *ts, struct table_status *st,
                         struct chc_err *err)
{
    struct chc_buf lp = CHC_BUF_INIT, holder = CHC_BUF_INIT, part = CHC_BUF_INIT;
    struct flight *fs = NULL;
    char **locks = NULL, key[128];
    size_t n_locks = 0, n = 0, i;
    int r = st_path_tnode(ts->zroot, ST_LOCKS, NULL, &lp) < 0 ? oom(err) : 0;

    if (r == 0)
        r = zk_children(w->zs, lp.buf, &locks, &n_locks, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    if (r == 0 && n_locks && !(fs = calloc(n_locks, sizeof(*fs))))
        r = oom(err);
    for (i = 0; r == 0 && i < n_locks; i++) {
        char *hash = strrchr(locks[i], '#');
        if (!hash)
            continue;
        chc_buf_reset(&part);
        if (st_node_unname(locks[i], &part) < 0 ||
            st_path_tnode(ts->zroot, ST_LOCKS, locks[i], &lp) < 0) {
            r = oom(err);
        } else if (zk_get(w->zs, lp.buf, &holder, NULL, NULL) == 0) {
            chc_buf_setlen(&part, (size_t)(strrchr(part.buf, '#') - part.buf));
            snprintf(fs[n].what, sizeof(fs[n].what), "%s", hash + 1);
            st_claim_decode(holder.buf, fs[n].holder, sizeof(fs[n].holder), key, sizeof(key));
            fs[n].part = chc_strdup(part.buf);
            r = fs[n++].part ? 0 : oom(err);
        }
    }
    if (n)
        qsort(fs, n, sizeof(*fs), flight_cmp);
    for (i = 0; r == 0 && i < n; i++)
        r = flight_json(st, &fs[i]) < 0 ? oom(err) : 0;
    if (r == 0 && flight_text(st, fs, n) < 0)
        r = oom(err);
    for (i = 0; i < n; i++)
        free(fs[i].part);
    free(fs);
    chc_strv_free(locks, n_locks);
    chc_buf_release(&part);
    chc_buf_release(&lp);
    chc_buf_release(&holder);
    return r;
}

static int status_table(struct worker *w, const struct cfg_table *tb, struct table_status *st,
                        struct chc_err *err)
{
    struct tstate *ts = NULL;
    struct zk_stat pst;
    int r;

    st->state = "not_started";
    st->rows_total = -1;
    st->eta = -1.0;
    r = status_open(w, tb, &ts, &pst, err);
    if (r == CHC_EZK_NONODE) {
        tstate__free(ts);
        return 0;
    }
    st->state = "copying";
    if (r == 0)
        r = status_parts(ts, st, err);
    if (r == 0)
        r = status_pieces(ts, st, err);
    if (r == 0)
        status_speed(w, ts, &pst, st);
    if (r == 0)
        r = status_flight(w, ts, st, err);
    tstate__free(ts);
    return r;
}

/* "  worker <id>\n    <note>\n..." and [{"worker":..,"note":..},...] from
 * each worker's workers/<id> node (wk__registration). */
static int worker_notes(struct zk_session *zs, const struct chc_options *o, char **workers,
                        size_t n, struct chc_buf *text, struct chc_buf *json, struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT, data = CHC_BUF_INIT;
    size_t i, m = 0, len = 0;
    int r = 0;

    for (i = 0; r == 0 && i < n; i++) {
        const char *p;
        r = chc_buf_addf(text, "  worker %s\n", workers[i]);
        if (r < 0 || st_path_task(o->task_path, ST_WORKERS, workers[i], &path) < 0 ||
            zk_get(zs, path.buf, &data, NULL, NULL) < 0)
            continue; /* gone meanwhile */
        for (p = data.buf; r == 0 && *p; p += len + (p[len] == '\n')) {
            char *line;
            len = strcspn(p, "\n");
            if (strncmp(p, "note ", 5))
                continue;
            line = chc_strndup(p + 5, len - 5);
            r = line ? chc_buf_addf(text, "    %s\n", line) : -ENOMEM;
            if (r == 0)
                r = chc_buf_addf(json, "%s{\"worker\":\"", m++ ? "," : "");
            if (r == 0)
                r = chc_buf_add_json(json, workers[i]);
            if (r == 0)
                r = chc_buf_addstr(json, "\",\"note\":\"");
            if (r == 0)
                r = chc_buf_add_json(json, line);
            if (r == 0)
                r = chc_buf_addstr(json, "\"}");
            free(line);
        }
    }
    chc_buf_release(&path);
    chc_buf_release(&data);
    return r < 0 ? chc_err_set(err, r, "out of memory") : 0;
}

static int table_json(const struct cfg_table *tb, const struct table_status *st, int first,
                      struct chc_buf *out)
{
    int r = chc_buf_addf(out, "%s{\"name\":\"", first ? "" : ",");

    if (r == 0)
        r = chc_buf_add_json(out, tb->name);
    if (r == 0)
        r = chc_buf_addf(out,
                         "\",\"definition\":\"%s\",\"state\":\"%s\","
                         "\"partitions_total\":%zu,\"partitions_done\":%zu,"
                         "\"partitions_moving\":%zu,\"pieces_total\":%zu,"
                         "\"pieces_done\":%zu,\"rows_verified\":%llu,"
                         "\"rows_staged\":%llu,\"rows_total\":%lld,"
                         "\"elapsed_s\":%.1f,\"rows_per_s\":%.0f,\"eta_s\":%.0f,"
                         "\"failing_pieces\":%zu,\"in_flight\":[%s],\"routing\":\"",
                         tb->def_hash_hex, st->state, st->parts_total, st->parts_done,
                         st->parts_moving, st->pieces_total, st->pieces_done, st->rows_verified,
                         st->rows_staged, st->rows_total, st->elapsed, st->rows_per_s, st->eta,
                         st->failing, st->flight_json.buf);
    if (r == 0)
        r = chc_buf_add_json(out, st->routing);
    if (r == 0)
        r = chc_buf_addstr(out, "\",\"last_error\":\"");
    if (r == 0)
        r = chc_buf_add_json(out, st->last_error);
    return r == 0 ? chc_buf_addstr(out, "\"}") : r;
}

static int table_text(const struct cfg_table *tb, const struct table_status *st,
                      struct chc_buf *out)
{
    char eta[32] = "unknown";

    if (st->eta >= 0)
        snprintf(eta, sizeof(eta), "%.0f s", st->eta);
    return chc_buf_addf(
        out,
        "table %s: %s.%s -> %s.%s.%s [%s] (definition %s)\n"
        "  partitions: %zu total, %zu done and verified, %zu moving\n"
        "  pieces:     %zu of %zu copied (%.0f%%)\n"
        "  rows:       %llu in verified partitions, %llu staged, %lld in the source\n"
        "  speed:      %.0f rows/s over %.0f s, ETA %s\n"
        "  routing:    %s\n%s%s%s%s%s",
        tb->name, tb->database_pull, tb->table_pull, tb->cluster_push, tb->database_push,
        tb->table_push, st->state, tb->def_hash_hex, st->parts_total, st->parts_done,
        st->parts_moving, st->pieces_done, st->pieces_total,
        st->pieces_total ? 100.0 * (double)st->pieces_done / (double)st->pieces_total : 0.0,
        st->rows_verified, st->rows_staged, st->rows_total, st->rows_per_s, st->elapsed, eta,
        st->routing[0] ? st->routing : "not chosen yet", st->n_flight ? "  in flight:\n" : "", st->flight_text.buf,
        st->failing ? "  failing:    " : "", st->failing ? st->last_error : "",
        st->failing ? "\n" : "");
}

/* The task's header: workers, slots in use, notes. */
static int task_header(struct worker *w, char **workers, size_t n_workers, int slots,
                       struct chc_buf *out, struct chc_err *err)
{
    struct chc_buf text = CHC_BUF_INIT, json = CHC_BUF_INIT;
    const struct chc_options *o = w->o;
    size_t i;
    int r = worker_notes(w->zs, o, workers, n_workers, &text, &json, err);

    if (r == 0 && o->json) {
        r = chc_buf_addstr(out, "{\"task_path\":\"");
        if (r == 0)
            r = chc_buf_add_json(out, o->task_path);
        if (r == 0)
            r = chc_buf_addf(out, "\",\"max_workers\":%u,\"pieces_in_flight\":%d,\"workers\":[",
                             w->task->max_workers, slots);
        for (i = 0; r == 0 && i < n_workers; i++) {
            r = chc_buf_addf(out, "%s\"", i ? "," : "");
            if (r == 0)
                r = chc_buf_add_json(out, workers[i]);
            if (r == 0)
                r = chc_buf_addch(out, '"');
        }
        if (r == 0)
            r = chc_buf_addf(out, "],\"notes\":[%s],\"tables\":[", json.buf);
    } else if (r == 0) {
        r = chc_buf_addf(out, "task %s: %zu worker(s) running, %d piece(s) being copied "
                              "(max_workers %u)\n",
                         o->task_path, n_workers, slots, w->task->max_workers);
        if (r == 0)
            r = chc_buf_addstr(out, text.buf);
    }
    chc_buf_release(&text);
    chc_buf_release(&json);
    return r;
}

/* The registered workers and the number of slots in use. */
static int task_workers(struct worker *w, char ***workers, size_t *n_workers, int *slots,
                        struct chc_err *err)
{
    struct chc_buf path = CHC_BUF_INIT;
    struct zk_stat active = {0};
    int r = st_path_task(w->o->task_path, ST_WORKERS, NULL, &path) < 0 ? oom(err) : 0;

    if (r == 0)
        r = zk_children(w->zs, path.buf, workers, n_workers, err);
    if (r == CHC_EZK_NONODE)
        r = 0;
    if (r == 0)
        r = st_path_task(w->o->task_path, ST_ACTIVE, NULL, &path) < 0
                ? oom(err)
                : zk_exists(w->zs, path.buf, &active, err);
    if (r == CHC_EZK_NONODE)
        r = 0; /* no slot ever taken */
    *slots = active.num_children;
    chc_buf_release(&path);
    return r;
}

static int status_tables(struct worker *w, struct chc_buf *out, struct chc_err *err)
{
    size_t i;
    int r = 0;

    for (i = 0; r == 0 && i < w->task->n_tables; i++) {
        const struct cfg_table *tb = &w->task->tables[i];
        struct table_status st;
        memset(&st, 0, sizeof(st));
        chc_buf_init(&st.flight_text, 0);
        chc_buf_init(&st.flight_json, 0);
        r = status_table(w, tb, &st, err);
        if (r == 0)
            r = w->o->json ? table_json(tb, &st, i == 0, out) : table_text(tb, &st, out);
        chc_buf_release(&st.flight_text);
        chc_buf_release(&st.flight_json);
    }
    if (r == 0 && w->o->json)
        r = chc_buf_addstr(out, "]}\n");
    return r;
}

int worker_status(const struct chc_options *o, struct zk_session *zs, struct chc_err *err)
{
    struct worker w = {.o = o, .zs = zs};
    struct chc_buf out = CHC_BUF_INIT;
    char **workers = NULL;
    size_t n_workers = 0;
    int r, slots = 0;

    r = taskstore_fetch(zs, o->task_path, &w.task, NULL, err);
    if (r < 0)
        return r;
    r = task_workers(&w, &workers, &n_workers, &slots, err);
    if (r == 0)
        r = task_header(&w, workers, n_workers, slots, &out, err);
    if (r == 0)
        r = status_tables(&w, &out, err);
    if (r == 0)
        cmd__print_masked("", out.buf, "");
    if (r == -ENOMEM || r == CHC_ETOOBIG)
        chc_err_set(err, r, "out of memory");
    chc_strv_free(workers, n_workers);
    chc_buf_release(&out);
    cfg_task_free(w.task);
    return r;
}
