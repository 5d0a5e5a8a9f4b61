/* file.c — reading a whole file into memory, capped: what the task XML
 * and zookeeper.xml loaders need. An unreadable file is a configuration
 * error (CHC_ECONFIG) naming the path. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/file.h"

#include "base/banned.h"

int chc_read_file(const char *path, size_t max, char **ret, size_t *ret_len,
                  struct chc_err *err)
{
    struct chc_buf b;
    char chunk[65536];
    int fd, r;

    chc_buf_init(&b, max);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    /* An unreadable file given by the operator is a configuration error. */
    if (fd < 0)
        return chc_err_set(err, CHC_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = chc_err_set(err, CHC_ECONFIG, "%s: cannot read: %s", path, strerror(errno));
            goto fail;
        }
        if (n == 0)
            break;
        r = chc_buf_add(&b, chunk, (size_t)n);
        if (r < 0) {
            chc_err_set(err, r, "%s: file too large (max %zu bytes)", path, max);
            goto fail;
        }
    }
    close(fd);
    *ret = chc_buf_take(&b, ret_len);
    return *ret ? 0 : chc_err_set(err, -ENOMEM, "out of memory");
fail:
    close(fd);
    chc_buf_release(&b);
    return r;
}
