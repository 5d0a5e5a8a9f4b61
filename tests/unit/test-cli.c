/* test-cli.c — clickhouse-copier's command lines parse unchanged; bad flags
 * give one line naming the flag. */
#include <stdlib.h>
#include <string.h>

#include "chcopier/cli/cli.h"
#include "tap.h"

static int parse(struct chc_options *o, struct chc_err *e, int argc, const char **argv)
{
    cli_options_init(o);
    return cli_parse(argc, (char **)argv, o, e);
}

#define ARGV(...) ((const char *[]){"chcopier", __VA_ARGS__})
#define NARGS(...) (int)(sizeof((const char *[]){"chcopier", __VA_ARGS__}) / sizeof(char *))
#define PARSE(o, e, ...) parse(o, e, NARGS(__VA_ARGS__), ARGV(__VA_ARGS__))

TEST(original_command_line)
{
    struct chc_options o;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(PARSE(&o, &e, "--config", "/etc/zk.xml", "--task-path", "/clickhouse/copier/task1",
                    "--base-dir", "/tmp/x", "--task-file", "task.xml",
                    "--task-upload-force=true", "--log-level=debug"));
    ASSERT_EQ(o.cmd, CHC_CMD_RUN);
    ASSERT_STREQ(o.config, "/etc/zk.xml");
    ASSERT_STREQ(o.task_path, "/clickhouse/copier/task1");
    ASSERT_STREQ(o.base_dir, "/tmp/x");
    ASSERT_STREQ(o.task_file, "task.xml");
    ASSERT_EQ(o.task_upload_force, 1);
    ASSERT_STREQ(o.log_level, "debug");
    ASSERT_EQ(o.max_table_tries, 3);
    ASSERT_EQ(o.max_shard_partition_tries, 3);
    ASSERT_EQ(o.max_piece_tries_alter, 10);
    ASSERT_EQ(o.retry_delay_ms, 1000);
}

TEST(upload_force_forms)
{
    struct chc_options o;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(PARSE(&o, &e, "--config-file=z.xml", "--task-path=/t", "--task-upload-force"));
    ASSERT_EQ(o.task_upload_force, 1);
    ASSERT_OK(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--task-upload-force", "1"));
    ASSERT_EQ(o.task_upload_force, 1);
    ASSERT_OK(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--task-upload-force", "false"));
    ASSERT_EQ(o.task_upload_force, 0);
    ASSERT_OK(PARSE(&o, &e, "--task-upload-force", "--config", "z", "--task-path", "/t"));
    ASSERT_EQ(o.task_upload_force, 1);
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--task-upload-force=perhaps"),
              CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--task-upload-force: expected true or false");
}

TEST(all_original_flags)
{
    struct chc_options o;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--daemon", "--pid-file", "p",
                    "--safe-mode", "--max-table-tries", "7", "--max-shard-partition-tries=8",
                    "--max-shard-partition-piece-tries-for-alter", "9", "--retry-delay-ms",
                    "250", "--copy-fault-probability", "0.5", "--move-fault-probability=1",
                    "--umask", "027", "--experimental-use-sample-offset", "0"));
    ASSERT_EQ(o.daemon, 1);
    ASSERT_STREQ(o.pid_file, "p");
    ASSERT_EQ(o.safe_mode, 1);
    ASSERT_EQ(o.max_table_tries, 7);
    ASSERT_EQ(o.max_shard_partition_tries, 8);
    ASSERT_EQ(o.max_piece_tries_alter, 9);
    ASSERT_EQ(o.retry_delay_ms, 250);
    ASSERT(o.copy_fault_probability == 0.5);
    ASSERT(o.move_fault_probability == 1.0);
    ASSERT_EQ(o.umask, 027);
}

TEST(status_flag_and_commands)
{
    struct chc_options o;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--status"));
    ASSERT_EQ(o.cmd, CHC_CMD_STATUS);
    ASSERT_OK(PARSE(&o, &e, "status", "--json", "--config", "z", "--task-path", "/t"));
    ASSERT_EQ(o.cmd, CHC_CMD_STATUS);
    ASSERT_EQ(o.json, 1);
    ASSERT_OK(PARSE(&o, &e, "upload", "--config", "z", "--task-path", "/t", "--task-file", "f"));
    ASSERT_EQ(o.cmd, CHC_CMD_UPLOAD);
    ASSERT_OK(PARSE(&o, &e, "--help"));
    ASSERT_EQ(o.cmd, CHC_CMD_HELP);
    ASSERT_OK(PARSE(&o, &e, "--version"));
    ASSERT_EQ(o.cmd, CHC_CMD_VERSION);
}

TEST(own_flags)
{
    struct chc_options o;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_OK(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--data-path", "pipe",
                    "--max-bytes-per-second", "1000000", "--min-piece-rows", "0"));
    ASSERT_EQ(o.data_path, CHC_PATH_PIPE);
    ASSERT_EQ(o.max_bytes_per_second, 1000000);
    ASSERT_EQ(o.min_piece_rows, 0);
    ASSERT_OK(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--max-pieces-in-flight", "6",
                    "--log-format", "json", "--log-stdout", "--fault-point", "after_claim"));
    ASSERT_EQ(o.max_pieces_in_flight, 6);
    ASSERT_EQ(o.log_json, 1);
    ASSERT_EQ(o.log_stdout, 1);
    ASSERT_STREQ(o.fault_point, "after_claim");
}

TEST(bad_flags_name_the_flag)
{
    struct chc_options o;
    struct chc_err e = CHC_ERR_INIT;

    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--bogus"), CHC_EUSAGE);
    ASSERT_STREQ(e.msg, "unknown flag '--bogus'; see --help");
    ASSERT_EQ(PARSE(&o, &e, "--task-path", "/t"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--config is required");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--task-path is required");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "relative"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--task-path: 'relative' is not a ZooKeeper path");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--max-table-tries", "0"),
              CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--max-table-tries: expected an integer in [1, 1000000], got '0'");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--retry-delay-ms", "5"),
              CHC_EUSAGE);
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--copy-fault-probability",
                    "2"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--copy-fault-probability: expected a probability");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--data-path", "push"),
              CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--data-path: expected pull or pipe, got 'push'");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--log-format", "xml"),
              CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--log-format: expected text or json");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--task-path needs a value");
    ASSERT_EQ(PARSE(&o, &e, "frobnicate", "--config", "z", "--task-path", "/t"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "unknown command 'frobnicate'");
    ASSERT_EQ(PARSE(&o, &e, "upload", "--config", "z", "--task-path", "/t"), CHC_EUSAGE);
    ASSERT_CONTAINS(e.msg, "--task-file is required");
    ASSERT_EQ(PARSE(&o, &e, "--config", "z", "--task-path", "/t", "--daemon=yes", "--umask", "9"),
              CHC_EUSAGE);
}

TEST(usage_lists_every_original_flag)
{
    const char *u = cli_usage();
    static const char *const names[] = {
        "--config", "--task-path", "--task-file", "--task-upload-force", "--base-dir",
        "--log-level", "--daemon", "--pid-file", "--safe-mode", "--status",
        "--max-table-tries", "--max-shard-partition-tries",
        "--max-shard-partition-piece-tries-for-alter", "--retry-delay-ms",
        "--copy-fault-probability", "--move-fault-probability"};
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ASSERT_CONTAINS(u, names[i]);
}

TAP_MAIN()
