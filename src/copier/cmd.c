/* cmd.c — what the operator commands share (cmd.h): printing with the
 * task's secrets masked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/secrets.h"
#include "cmd.h"

#include "base/banned.h"

void cmd__print_masked(const char *indent, const char *text, const char *end)
{
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);

    if (!copy) {
        printf("%s(not shown: out of memory)%s", indent, end);
        return;
    }
    memcpy(copy, text, size);
    chc_secrets_mask_str(copy, size, 0);
    printf("%s%s%s", indent, copy, end);
    free(copy);
}

void cmd__print_sql(const char *indent, const char *sql)
{
    cmd__print_masked(indent, sql, ";\n");
}
