/* main.c — parses the command line and dispatches; the only place that turns
 * an error into an exit code (0 ok, 1 runtime failure, 2 usage/config).
 */
#include <stdio.h>
#include <string.h>

#include "config.h"

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--version")) {
        printf("chcopier %s\n", CHC_VERSION);
        return 0;
    }
    return 0;
}
