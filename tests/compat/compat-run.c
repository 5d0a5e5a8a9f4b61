/* compat-run.c — runs a check file on the ClickHouse engine of libchdb
 * (scripts/compat; the file comes from compat-gen.c). It loads libchdb.so
 * with dlopen, so it needs neither chdb.h nor the project's library, and is
 * built without sanitizers (the engine is a 566 MB C++ library).
 *
 * Usage: compat-run LIBCHDB DBPATH OUTDIR [CHECKFILE]
 *   no CHECKFILE: print "# engine: ClickHouse <version()>" and exit.
 *   env CHC_COMPAT_CONFIG: a server config file for the engine
 *   (--config-file: the task's clusters as remote_servers).
 *
 * A check file is a list of records:
 *   @check NAME        starts a check (one statement)
 *   @note TEXT         printed as "# TEXT" with the check
 *   @format FMT        output format (default TabSeparated)
 *   @expect TEXT       the output (trailing newline dropped) equals TEXT,
 *                      with \n \t \\ escapes
 *   @expect-error TEXT the statement must fail with TEXT in its error
 *   @save LABEL        keep the output under LABEL
 *   @same LABEL        the output equals the one saved as LABEL
 *   @capture FILE      write the output to OUTDIR/FILE
 *   @data LABEL        append "\n" and LABEL's saved output to the statement
 *                      (an INSERT ... FORMAT Native fed by an earlier SELECT)
 *   @empty-data-error TEXT  when @data's output is empty, expect the error
 *                      TEXT instead (the in-process client refuses an INSERT
 *                      without data; over HTTP the body is just empty)
 *   @xfail REASON      a known refusal: a failure counts as "xfail", not as
 *                      failed; a pass is reported as XPASS (remove the mark)
 *   @sql               the statement follows, up to the line "@end"
 * Every check prints "ok N - NAME" or "not ok N - NAME: why"; the last line
 * is "N passed, N failed" (exit 1 if any failed).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*connect_fn)(int, char **);
typedef void (*close_fn)(void *);
typedef void *(*query_fn)(void *, const char *, size_t, const char *, size_t);
typedef const char *(*buffer_fn)(void *);
typedef size_t (*length_fn)(void *);
typedef const char *(*error_fn)(void *);
typedef void (*destroy_fn)(void *);

static struct {
    connect_fn connect;
    close_fn close;
    query_fn query_n;
    buffer_fn buffer;
    length_fn length;
    error_fn error;
    destroy_fn destroy;
    void **conn; /* chdb_connection * */
} ch;

struct saved {
    char *label;
    char *data;
    size_t len;
};

static struct saved saves[512];
static size_t n_saves;

struct check {
    char name[512], note[512], format[64], expect_error[512], save[128], same[128];
    char capture[256], data[128], xfail[512], empty_data_error[128];
    char *expect; /* unescaped; NULL: none */
    char *sql;
    size_t sql_len;
};

static void *sym(void *h, const char *name)
{
    void *p = dlsym(h, name);

    if (!p) {
        fprintf(stderr, "compat-run: libchdb has no %s\n", name);
        exit(2);
    }
    return p;
}

static int load(const char *lib, const char *path)
{
    void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    char a0[] = "compat-run", a1[4096], a2[4096];
    char *argv[] = {a0, a1, a2};
    const char *config = getenv("CHC_COMPAT_CONFIG");

    if (!h) {
        fprintf(stderr, "compat-run: %s\n", dlerror());
        return -1;
    }
    ch.connect = (connect_fn)sym(h, "chdb_connect");
    ch.close = (close_fn)sym(h, "chdb_close_conn");
    ch.query_n = (query_fn)sym(h, "chdb_query_n");
    ch.buffer = (buffer_fn)sym(h, "chdb_result_buffer");
    ch.length = (length_fn)sym(h, "chdb_result_length");
    ch.error = (error_fn)sym(h, "chdb_result_error");
    ch.destroy = (destroy_fn)sym(h, "chdb_destroy_query_result");
    snprintf(a1, sizeof(a1), "--path=%s", path);
    if (config && *config)
        snprintf(a2, sizeof(a2), "--config-file=%s", config);
    ch.conn = ch.connect(config && *config ? 3 : 2, argv);
    if (!ch.conn || !*ch.conn) {
        fprintf(stderr, "compat-run: chdb_connect(--path=%s) failed\n", path);
        return -1;
    }
    return 0;
}

/* Run sql; *out and *out_len get the output (malloc'd), *err the error text
 * (malloc'd) or NULL. */
static void run(const char *sql, size_t len, const char *format, char **out, size_t *out_len,
                char **err)
{
    void *res = ch.query_n(*ch.conn, sql, len, format, strlen(format));
    const char *e = res ? ch.error(res) : "no result";
    const char *b = res ? ch.buffer(res) : NULL;
    size_t n = res && b ? ch.length(res) : 0;
    char *p;

    *err = e && *e ? strdup(e) : NULL;
    for (p = *err; p && *p; p++) /* one line per error in the log */
        if (*p == '\n')
            *p = ' ';
    *out = malloc(n + 1);
    if (!*out) {
        perror("compat-run");
        exit(2);
    }
    if (n)
        memcpy(*out, b, n);
    (*out)[n] = '\0';
    *out_len = n;
    if (res)
        ch.destroy(res);
}

static char *unescape(const char *s)
{
    char *o = malloc(strlen(s) + 1), *p = o;

    if (!o)
        exit(2);
    for (; *s; s++) {
        if (*s != '\\' || !s[1]) {
            *p++ = *s;
            continue;
        }
        s++;
        *p++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
    }
    *p = '\0';
    return o;
}

static const struct saved *find_saved(const char *label)
{
    size_t i;

    for (i = 0; i < n_saves; i++)
        if (strcmp(saves[i].label, label) == 0)
            return &saves[i];
    return NULL;
}

static void save(const char *label, const char *data, size_t len)
{
    struct saved *s = (struct saved *)find_saved(label);

    if (!s) {
        if (n_saves == sizeof(saves) / sizeof(saves[0])) {
            fprintf(stderr, "compat-run: too many @save labels\n");
            exit(2);
        }
        s = &saves[n_saves++];
        s->label = strdup(label);
    } else {
        free(s->data);
    }
    s->data = malloc(len + 1);
    if (!s->label || !s->data)
        exit(2);
    memcpy(s->data, data, len);
    s->data[len] = '\0';
    s->len = len;
}

static void write_capture(const char *outdir, const char *file, const char *data, size_t len)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", outdir, file);
    f = fopen(path, "w");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(2);
    }
}

/* The statement with @data's bytes appended. */
static char *with_data(const struct check *c, size_t *len, const char **why)
{
    const struct saved *s = c->data[0] ? find_saved(c->data) : NULL;
    char *q;

    if (c->data[0] && !s) {
        *why = "no saved output for @data";
        return NULL;
    }
    *len = c->sql_len + (s ? 1 + s->len : 0);
    q = malloc(*len + 1);
    if (!q)
        exit(2);
    memcpy(q, c->sql, c->sql_len);
    if (s) {
        q[c->sql_len] = '\n';
        memcpy(q + c->sql_len + 1, s->data, s->len);
    }
    q[*len] = '\0';
    return q;
}

/* Why the outcome is wrong, or NULL. why_buf holds composed reasons. */
static const char *judge(const struct check *c, const char *out, size_t out_len, const char *err,
                         char *why_buf, size_t cap)
{
    const struct saved *s;
    size_t n = out_len;

    if (c->expect_error[0]) {
        if (!err)
            return "succeeded, expected an error";
        if (!strstr(err, c->expect_error)) {
            snprintf(why_buf, cap, "error without '%s': %.600s", c->expect_error, err);
            return why_buf;
        }
        return NULL;
    }
    if (err) {
        snprintf(why_buf, cap, "%.1500s", err);
        return why_buf;
    }
    if (n && out[n - 1] == '\n')
        n--;
    if (c->expect && (strlen(c->expect) != n || memcmp(c->expect, out, n) != 0)) {
        snprintf(why_buf, cap, "got '%.*s', expected '%s'", (int)(n > 600 ? 600 : n), out,
                 c->expect);
        return why_buf;
    }
    if (c->same[0]) {
        s = find_saved(c->same);
        if (!s)
            return "no saved output for @same";
        if (s->len != out_len || memcmp(s->data, out, out_len) != 0) {
            snprintf(why_buf, cap, "got '%.*s', '%s' was '%.*s'", (int)(n > 300 ? 300 : n), out,
                     c->same, (int)(s->len > 300 ? 300 : s->len), s->data);
            return why_buf;
        }
    }
    return NULL;
}

struct tally {
    unsigned n, passed, failed, xfail;
};

static void do_check(const struct check *c, const char *outdir, struct tally *t)
{
    struct check e;
    const struct saved *s;
    char *out = NULL, *err = NULL, *q;
    char why_buf[2400];
    const char *why = NULL;
    size_t out_len = 0, len = 0;

    t->n++;
    if (c->note[0])
        printf("# %s\n", c->note);
    s = c->data[0] && c->empty_data_error[0] ? find_saved(c->data) : NULL;
    if (s && s->len == 0) {
        e = *c;
        printf("# no rows: expecting %s from the in-process client\n", c->empty_data_error);
        memcpy(e.expect_error, c->empty_data_error, sizeof(c->empty_data_error));
        c = &e;
    }
    q = with_data(c, &len, &why);
    if (q) {
        run(q, len, c->format[0] ? c->format : "TabSeparated", &out, &out_len, &err);
        why = judge(c, out, out_len, err, why_buf, sizeof(why_buf));
    }
    if (!why && c->save[0])
        save(c->save, out, out_len);
    if (!why && c->capture[0])
        write_capture(outdir, c->capture, out, out_len);
    if (c->xfail[0] && why) {
        t->xfail++;
        printf("ok %u - %s # xfail: %s\n#   refused: %s\n", t->n, c->name, c->xfail, why);
    } else if (why) {
        t->failed++;
        printf("not ok %u - %s: %s\n#   statement: %.*s\n", t->n, c->name, why,
               (int)(c->sql_len > 2000 ? 2000 : c->sql_len), c->sql);
    } else {
        t->passed++;
        printf("ok %u - %s%s%s\n", t->n, c->name, c->xfail[0] ? " # XPASS, remove @xfail: " : "",
               c->xfail);
    }
    fflush(stdout);
    free(q);
    free(out);
    free(err);
}

static void check_reset(struct check *c)
{
    free(c->expect);
    free(c->sql);
    memset(c, 0, sizeof(*c));
}

static void field(char *dst, size_t cap, const char *v, const char *file, unsigned line)
{
    if (strlen(v) >= cap) {
        fprintf(stderr, "%s:%u: value too long\n", file, line);
        exit(2);
    }
    memcpy(dst, v, strlen(v) + 1);
}

/* One "@key value" line of a record; 1 when the record's SQL starts. */
static int directive(struct check *c, char *line, const char *file, unsigned ln)
{
    char *v = strchr(line, ' ');
    static const struct {
        const char *key;
        size_t off, cap;
    } keys[] = {
#define K(k, f) {k, offsetof(struct check, f), sizeof(((struct check *)0)->f)}
        K("@check", name),   K("@note", note), K("@format", format),
        K("@expect-error", expect_error), K("@save", save), K("@same", same),
        K("@capture", capture), K("@data", data), K("@xfail", xfail),
        K("@empty-data-error", empty_data_error),
#undef K
    };
    size_t i;

    if (v)
        *v++ = '\0';
    if (strcmp(line, "@sql") == 0)
        return 1;
    if (strcmp(line, "@expect") == 0) {
        free(c->expect);
        c->expect = unescape(v ? v : "");
        return 0;
    }
    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(line, keys[i].key) == 0) {
            field((char *)c + keys[i].off, keys[i].cap, v ? v : "", file, ln);
            return 0;
        }
    fprintf(stderr, "%s:%u: unknown directive %s\n", file, ln, line);
    exit(2);
}

static void append_sql(struct check *c, const char *line, size_t n)
{
    char *p = realloc(c->sql, c->sql_len + n + 2);

    if (!p)
        exit(2);
    c->sql = p;
    if (c->sql_len)
        c->sql[c->sql_len++] = '\n';
    memcpy(c->sql + c->sql_len, line, n);
    c->sql_len += n;
    c->sql[c->sql_len] = '\0';
}

static int run_file(const char *file, const char *outdir, struct tally *t)
{
    FILE *f = fopen(file, "r");
    struct check c = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    unsigned ln = 0;
    int in_sql = 0;

    if (!f) {
        perror(file);
        return -1;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        ln++;
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        if (in_sql && strcmp(line, "@end") != 0) {
            append_sql(&c, line, (size_t)n);
        } else if (in_sql) {
            do_check(&c, outdir, t);
            check_reset(&c);
            in_sql = 0;
        } else if (line[0] == '@') {
            in_sql = directive(&c, line, file, ln);
        }
    }
    free(line);
    check_reset(&c);
    fclose(f);
    return in_sql ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct tally t = {0};
    char *out, *err;
    size_t len;

    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: compat-run LIBCHDB DBPATH OUTDIR [CHECKFILE]\n");
        return 2;
    }
    if (load(argv[1], argv[2]) < 0)
        return 2;
    if (argc == 4) {
        run("SELECT version()", 16, "TabSeparated", &out, &len, &err);
        if (err || !len) {
            fprintf(stderr, "compat-run: SELECT version(): %s\n", err ? err : "no answer");
            return 2;
        }
        printf("# engine: ClickHouse %s", out);
        free(out);
        ch.close(ch.conn);
        return 0;
    }
    if (run_file(argv[4], argv[3], &t) < 0) {
        fprintf(stderr, "compat-run: %s: cannot read it, or its last record has no @end\n", argv[4]);
        return 2;
    }
    ch.close(ch.conn);
    printf("%u passed, %u failed", t.passed, t.failed);
    if (t.xfail)
        printf(" (%u known refusals marked xfail)", t.xfail);
    printf("\n");
    return t.failed ? 1 : 0;
}
