/* secrets.h — passwords never shown: one masking function for every text
 * chcopier writes.
 *
 * A set holds strings (passwords) that must not appear in logs, error
 * messages, ZooKeeper state or command output. Each is kept in every form it
 * can take in chcopier's text, and any of them is replaced by "***":
 *   1. as is;
 *   2. SQL-escaped, as inside '...' of a statement (\' and \\; remote()
 *      carries the source password so), and escaped twice (a server message
 *      quoting such a literal);
 *   3. TabSeparated-escaped (a value read back from ClickHouse);
 *   4. percent-encoded (a URL);
 *   5. JSON-escaped, also of the SQL form (a JSON log line or status);
 *   6. XML-escaped, fully or only & < > (the task XML).
 * A text cut short may end inside a secret: masking a truncated text also
 * masks a trailing beginning of any form.
 *
 * The process-wide set is fed once with the task's passwords (every replica
 * of every cluster: cfg_task_hide_passwords() when a description is read) and
 * with the ZooKeeper identity. chc_err_set()/chc_err_prefix() and the log
 * module apply it to every message and line, so no call site masks by hand;
 * output that bypasses both (status, plan) calls chc_secrets_mask_str().
 * The global functions are thread-safe (ZooKeeper's threads log).
 */
#ifndef CHC_SECRETS_H
#define CHC_SECRETS_H

#include <stddef.h>

struct chc_secrets;

#define CHC_SECRETS_MASK "***"

/* ---- a set of one's own (e.g. per ClickHouse query) ---- */
struct chc_secrets *chc_secrets_new(void);
/* NULL-safe; wipes the strings. Returns NULL. */
struct chc_secrets *chc_secrets_free(struct chc_secrets *s);
/* Add secret in every form (no-op for NULL or ""). 0 or -ENOMEM. */
int chc_secrets_add(struct chc_secrets *s, const char *secret);
/* Number of distinct forms held (for tests). */
size_t chc_secrets_count(const struct chc_secrets *s);
/* Copy n bytes of in to out (size > 0 bytes, always NUL-terminated, cut
 * short if needed) with every form of every secret replaced by "***".
 * truncated: in is the beginning of a longer text, so a trailing beginning
 * of a form is masked too. Returns the length written. s may be NULL. */
size_t chc_secrets_mask(const struct chc_secrets *s, const char *in, size_t n, int truncated,
                        char *out, size_t size);

/* ---- the process-wide set ---- */
int chc_secrets_add_global(const char *secret);
/* Mask str (NUL-terminated, in a buffer of size bytes) in place with the
 * process-wide set; truncated as for chc_secrets_mask(). */
void chc_secrets_mask_str(char *str, size_t size, int truncated);
/* Forget every global secret (tests). */
void chc_secrets_clear_global(void);

#endif
