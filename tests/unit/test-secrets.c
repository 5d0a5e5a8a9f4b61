/* test-secrets.c — the one masking function (src/secrets.c) and where it
 * applies: every form a password takes in chcopier's text (raw, SQL-escaped
 * as remote() carries it, escaped twice, TabSeparated, percent-encoded,
 * JSON, XML), a text cut inside a password, error messages (chc_err_set,
 * chc_err_prefix, a message longer than struct chc_err holds), log lines at
 * every level (the file under the log directory), and every replica
 * password of every cluster of a task.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "chcopier/base/file.h"
#include "chcopier/obs/log.h"
#include "chcopier/base/secrets.h"
#include "chcopier/config/task.h"
#include "tap.h"

/* The 8 characters s 3 c r ' e \ t 9. */
#define PW "s3cr'e\\t9"

static const char *masked(const struct chc_secrets *s, const char *in, int truncated)
{
    static char out[512];

    chc_secrets_mask(s, in, strlen(in), truncated, out, sizeof(out));
    return out;
}

TEST(every_form_is_masked)
{
    struct chc_secrets *s = chc_secrets_new();
    static const char *const forms[] = {
        PW,                       /* as is (an HTTP header, the XML) */
        "s3cr\\'e\\\\t9",         /* SQL-escaped: remote(..., 's3cr\'e\\t9') */
        "s3cr\\\\\\'e\\\\\\\\t9", /* escaped twice: a message quoting that literal */
        "s3cr%27e%5Ct9",          /* percent-encoded */
        "s3cr'e\\\\t9",           /* JSON */
        "s3cr&apos;e\\t9",        /* XML */
    };
    char in[128], want[128];
    size_t i;

    ASSERT_NOT_NULL(s);
    ASSERT_OK(chc_secrets_add(s, PW));
    for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        snprintf(in, sizeof(in), "remote('h:9000', db, t, 'u', '%s') failed", forms[i]);
        snprintf(want, sizeof(want), "remote('h:9000', db, t, 'u', '***') failed");
        ASSERT_STREQ(masked(s, in, 0), want);
    }
    ASSERT_STREQ(masked(s, PW PW " " PW, 0), "****** ***");
    ASSERT_STREQ(masked(s, "s3cr'e", 0), "s3cr'e"); /* half of it is not it */
    ASSERT_STREQ(masked(NULL, PW, 0), PW);           /* no set: no masking */
    chc_secrets_free(s);
}

TEST(forms_are_not_duplicated)
{
    struct chc_secrets *s = chc_secrets_new();

    ASSERT_OK(chc_secrets_add(s, "plainpw"));
    ASSERT_EQ(chc_secrets_count(s), 1); /* nothing to escape: one form */
    ASSERT_OK(chc_secrets_add(s, "plainpw"));
    ASSERT_OK(chc_secrets_add(s, ""));
    ASSERT_OK(chc_secrets_add(s, NULL));
    ASSERT_EQ(chc_secrets_count(s), 1);
    ASSERT_OK(chc_secrets_add(s, PW));
    ASSERT(chc_secrets_count(s) >= 6);
    chc_secrets_free(s);
}

TEST(a_text_cut_inside_a_password)
{
    struct chc_secrets *s = chc_secrets_new();
    char out[16];

    ASSERT_OK(chc_secrets_add(s, PW));
    /* The text went on: its end is the beginning of the password. */
    ASSERT_STREQ(masked(s, "error near 's3cr\\'e", 1), "error near '***");
    ASSERT_STREQ(masked(s, "error near 's3", 1), "error near '***");
    /* Complete texts keep their ends. */
    ASSERT_STREQ(masked(s, "error near 's3", 0), "error near 's3");
    /* Output capped, NUL-terminated, no piece of the password. */
    ASSERT_EQ(chc_secrets_mask(s, "0123456789" PW, strlen("0123456789" PW), 0, out,
                               sizeof(out)),
              13);
    ASSERT_STREQ(out, "0123456789***");
    ASSERT_EQ(chc_secrets_mask(s, "0123456789abcd" PW, strlen("0123456789abcd" PW), 0, out,
                               sizeof(out)),
              15);
    ASSERT_STREQ(out, "0123456789abcd*");
    chc_secrets_free(s);
}

TEST(error_messages_are_masked)
{
    struct chc_err err = CHC_ERR_INIT;
    char longer[3000];

    chc_secrets_clear_global();
    ASSERT_OK(chc_secrets_add_global(PW));
    chc_err_set(&err, CHC_ECH_PERMANENT, "INSERT ... FROM remote('h', db, t, 'u', 's3cr\\'e\\\\t9')");
    ASSERT_STREQ(err.msg, "INSERT ... FROM remote('h', db, t, 'u', '***')");
    chc_err_prefix(&err, "piece 1 with '%s'", PW);
    ASSERT_STREQ(err.msg, "piece 1 with '***': INSERT ... FROM remote('h', db, t, 'u', '***')");
    /* Longer than a message holds, the password across the cut: masked
     * before the cut, so no beginning of it survives. */
    memset(longer, 'x', sizeof(longer));
    memcpy(longer + CHC_ERR_MSG_MAX - 4, PW, strlen(PW));
    longer[sizeof(longer) - 1] = '\0';
    chc_err_set(&err, CHC_EPARSE, "%s", longer);
    ASSERT(!strstr(err.msg, "s3"));
    ASSERT_EQ(strlen(err.msg), CHC_ERR_MSG_MAX - 1);
    chc_secrets_clear_global();
    chc_err_set(&err, CHC_EPARSE, "%s", PW);
    ASSERT_STREQ(err.msg, PW); /* nothing registered, nothing masked */
}

static char *read_all(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    struct chc_err err = CHC_ERR_INIT;

    if (chc_read_file(path, 1 << 20, &text, &len, &err) < 0)
        return NULL;
    return text;
}

static void remove_logdir(const char *dir)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/log.log", dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/log.err.log", dir);
    unlink(path);
    rmdir(dir);
}

TEST(log_lines_are_masked_at_every_level)
{
    struct chc_log_options lo = {NULL, 0, 0, NULL};
    struct chc_log_fields f = CHC_LOG_FIELDS_INIT;
    struct chc_err err = CHC_ERR_INIT;
    char base[] = "/tmp/chc-test-secrets.XXXXXX", path[512], *dir = NULL, *text;

    ASSERT_NOT_NULL(mkdtemp(base));
    lo.base_dir = base;
    chc_secrets_clear_global();
    ASSERT_OK(chc_secrets_add_global(PW));
    ASSERT_OK(chc_log_open(&lo, &dir, &err));
    chc_log_set_level(CHC_LOG_TRACE);
    chc_log_trace("127.0.0.1: INSERT INTO t SELECT * FROM remote('h', db, t, 'u', "
                  "'s3cr\\'e\\\\t9')");
    chc_log_error("failed: %s", PW);
    f.error = "source s3cr%27e%5Ct9";
    chc_log_at(CHC_LOG_WARN, &f, "piece failed");
    chc_log_close();
    snprintf(path, sizeof(path), "%s/log.log", dir);
    text = read_all(path);
    ASSERT_NOT_NULL(text);
    for (const char *l = text; *l;) { /* TAP: every line a comment */
        const char *nl = strchr(l, '\n');
        int n = nl ? (int)(nl - l) : (int)strlen(l);
        printf("# %.*s\n", n, l);
        l += n + (nl != NULL);
    }
    ASSERT(!strstr(text, "s3cr"));
    ASSERT_CONTAINS(text, "'u', '***')");
    ASSERT_CONTAINS(text, "failed: ***");
    free(text);
    remove_logdir(dir);
    /* JSON lines: the error field too. */
    lo.json = 1;
    free(dir);
    ASSERT_OK(chc_log_open(&lo, &dir, &err));
    chc_log_at(CHC_LOG_WARN, &f, "piece failed with %s", PW);
    chc_log_close();
    snprintf(path, sizeof(path), "%s/log.log", dir);
    text = read_all(path);
    ASSERT_NOT_NULL(text);
    ASSERT(!strstr(text, "s3cr"));
    ASSERT_CONTAINS(text, "\"error\":\"source ***\"");
    ASSERT_CONTAINS(text, "\"worker\":\"\""); /* before the worker has an id */
    free(text);
    remove_logdir(dir);
    rmdir(base);
    chc_log_set_level(CHC_LOG_INFO);
    chc_secrets_clear_global();
    free(dir);
}

TEST(every_replica_password_of_a_task)
{
    static const char xml[] =
        "<clickhouse><remote_servers>"
        "<src><shard><replica><host>h1</host><port>9000</port><user>a</user>"
        "<password>first&apos;pw</password></replica></shard>"
        "<shard><replica><host>h2</host><port>9000</port><user>b</user>"
        "<password>second\\pw</password></replica>"
        "<replica><host>h3</host><port>9000</port><user>c</user>"
        "<password>third pw</password></replica></shard></src>"
        "<dst><shard><replica><host>h4</host><port>9000</port><user>d</user>"
        "<password>fourth%pw</password></replica></shard></dst>"
        "<unused><shard><replica><host>h5</host><port>9000</port><user>e</user>"
        "<password>fifthpw</password></replica></shard></unused>"
        "</remote_servers><max_workers>2</max_workers><tables><t>"
        "<cluster_pull>src</cluster_pull><database_pull>db</database_pull>"
        "<table_pull>a</table_pull><cluster_push>dst</cluster_push>"
        "<database_push>db</database_push><table_push>b</table_push>"
        "<engine>ENGINE = MergeTree PARTITION BY d ORDER BY k</engine>"
        "<sharding_key>rand()</sharding_key></t></tables></clickhouse>";
    struct chc_err err = CHC_ERR_INIT;
    struct cfg_task *t = NULL;
    char text[256];

    chc_secrets_clear_global();
    ASSERT_OK(cfg_task_parse(xml, strlen(xml), "task.xml", &t, &err));
    ASSERT_OK(cfg_task_hide_passwords(t));
    snprintf(text, sizeof(text),
             "first'pw 'first\\'pw' second\\pw 'second\\\\pw' third pw third%%20pw "
             "fourth%%pw fourth%%25pw fifthpw");
    chc_secrets_mask_str(text, sizeof(text), 0);
    ASSERT_STREQ(text, "*** '***' *** '***' *** *** *** *** ***");
    cfg_task_free(t);
    chc_secrets_clear_global();
}

TAP_MAIN()
