/* errcode.c — names, descriptions and classes of the error codes (errcode.h).
 *
 * Owns the mapping from CHC_E* (and the few -errno values worth naming) to
 * text, and which codes are transient or permanent. It knows nothing about
 * ZooKeeper or curl (their codes are translated in src/zk and src/ch) and
 * nothing about messages (err.c).
 */
#include <errno.h>
#include <string.h>

#include "chcopier/base/errcode.h"

#include "base/banned.h"

const char *chc_err_name(int code)
{
    switch (code) {
#define XX(name, s) \
    case CHC_##name: return #name;
        CHC_ERRNO_MAP(XX)
#undef XX
    case 0: return "OK";
    case -ENOMEM: return "ENOMEM";
    case -ENOENT: return "ENOENT";
    case -EINVAL: return "EINVAL";
    case -EIO: return "EIO";
    case -ETIMEDOUT: return "ETIMEDOUT";
    case -EACCES: return "EACCES";
    default: return "EUNKNOWN";
    }
}

const char *chc_strerror(int code)
{
    switch (code) {
#define XX(name, s) \
    case CHC_##name: return s;
        CHC_ERRNO_MAP(XX)
#undef XX
    case 0: return "success";
    default:
        if (code < 0 && code > -4096)
            return strerror(-code);
        return "unknown error";
    }
}

int chc_err_is_transient(int code)
{
    switch (code) {
    case CHC_EZK_CONNLOSS:
    case CHC_ECH_CONN:
    case CHC_ECH_EXCEPTION:
    case CHC_EBUSY:
    case -ETIMEDOUT:
    case -ECONNREFUSED:
    case -ECONNRESET:
    case -EAGAIN:
        return 1;
    default:
        return 0;
    }
}

int chc_err_is_permanent(int code)
{
    switch (code) {
    case CHC_EUSAGE:
    case CHC_ECONFIG:
    case CHC_ECH_PERMANENT:
    case CHC_EPREFLIGHT:
    case CHC_ECH_AUTH:
    case CHC_EZK_NOAUTH:
        return 1;
    default:
        return 0;
    }
}
