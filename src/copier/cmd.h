/* cmd.h — what the operator commands (status, plan, clean) share: output
 * with the task's secrets masked.
 */
#ifndef CHC_COPIER_CMD_H
#define CHC_COPIER_CMD_H

/* Print indent, text and end with every password of the task masked
 * (secrets.h: each replica's, in every form, e.g. SQL-escaped inside
 * remote()). Fails closed: what cannot be masked is not printed. */
void cmd__print_masked(const char *indent, const char *text, const char *end);
/* A statement, masked, ending with ";\n". */
void cmd__print_sql(const char *indent, const char *sql);

#endif
