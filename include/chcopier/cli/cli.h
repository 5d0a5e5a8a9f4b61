/* cli.h — the command line: clickhouse-copier's flags plus chcopier's own.
 *
 * cli_parse() is pure (no I/O): it fills struct chc_options or returns
 * CHC_EUSAGE with a one-line message naming the flag. Flags take
 * `--flag value` or `--flag=value`; boolean flags of the original that took a
 * value (`--task-upload-force=true`) also work bare.
 */
#ifndef CHC_CLI_H
#define CHC_CLI_H

#include "chcopier/base/err.h"
#include "chcopier/config/options.h"

void cli_options_init(struct chc_options *o);
int cli_parse(int argc, char **argv, struct chc_options *o, struct chc_err *err);
const char *cli_usage(void);

#endif
