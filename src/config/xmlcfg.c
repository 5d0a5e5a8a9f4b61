/* xmlcfg.c — reading values out of a libxml2 document (xmlcfg.h).
 *
 * Owns the quiet libxml2 parse (no network, no stderr; the error's line goes
 * into the message), the element lookups by name and prefix, and the typed
 * getters with their range checks. It knows no task or ZooKeeper element:
 * task.c, tablexml.c and zkconf.c say which elements they want. It never logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/err.h"
#include "config/xmlcfg.h"

#include "base/banned.h"

int cfg__is_elem(const xmlNode *n)
{
    return n && n->type == XML_ELEMENT_NODE;
}

int cfg__name_is(const xmlNode *n, const char *name)
{
    return cfg__is_elem(n) && !strcmp((const char *)n->name, name);
}

int cfg__name_starts(const xmlNode *n, const char *prefix)
{
    return cfg__is_elem(n) && !strncmp((const char *)n->name, prefix, strlen(prefix));
}

xmlNode *cfg__child(const xmlNode *parent, const char *name)
{
    xmlNode *c;

    for (c = parent ? parent->children : NULL; c; c = c->next)
        if (cfg__name_is(c, name))
            return c;
    return NULL;
}

int cfg__has_element_children(const xmlNode *n)
{
    const xmlNode *c;

    for (c = n->children; c; c = c->next)
        if (cfg__is_elem(c))
            return 1;
    return 0;
}

char *cfg__text_of(const xmlNode *n)
{
    xmlChar *x = xmlNodeGetContent(n);
    const char *s, *e;
    char *r;

    if (!x)
        return chc_strdup("");
    s = (const char *)x;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        e--;
    r = chc_strndup(s, (size_t)(e - s));
    xmlFree(x);
    return r;
}

int cfg__ctx_oom(struct cfg_ctx *c)
{
    return chc_err_set(c->err, -ENOMEM, "%s: out of memory", c->source);
}

int cfg__get_str(struct cfg_ctx *c, const xmlNode *parent, const char *name, char **ret)
{
    const xmlNode *n = cfg__child(parent, name);

    *ret = NULL;
    if (!n)
        return 0;
    *ret = cfg__text_of(n);
    return *ret ? 0 : cfg__ctx_oom(c);
}

int cfg__get_required(struct cfg_ctx *c, const xmlNode *parent, const char *path,
                      const char *name, char **ret)
{
    int r;

    r = cfg__get_str(c, parent, name, ret);
    if (r < 0)
        return r;
    if (!*ret || !**ret) {
        free(*ret);
        *ret = NULL;
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/%s> is required and missing or empty",
                           c->source, path, name);
    }
    return 0;
}

int cfg__get_required_hint(struct cfg_ctx *c, const xmlNode *parent, const char *path,
                           const char *name, const char *hint, char **ret)
{
    int r = cfg__get_str(c, parent, name, ret);

    if (r < 0)
        return r;
    if (!*ret || !**ret) {
        free(*ret);
        *ret = NULL;
        return chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/%s> is required: %s", c->source, path,
                           name, hint);
    }
    return 0;
}

int cfg__get_ll(struct cfg_ctx *c, const xmlNode *parent, const char *path, const char *name,
                long long min, long long max, long long def, long long *ret)
{
    char *s = NULL;
    int r;

    r = cfg__get_str(c, parent, name, &s);
    if (r < 0)
        return r;
    if (!s) {
        *ret = def;
        return 0;
    }
    r = chc_parse_ll(s, min, max, ret);
    if (r < 0)
        chc_err_set(c->err, CHC_ECONFIG,
                    "%s: <%s/%s> must be an integer in [%lld, %lld], got '%s'", c->source, path,
                    name, min, max, s);
    free(s);
    return r < 0 ? CHC_ECONFIG : 0;
}

int cfg__get_bool(struct cfg_ctx *c, const xmlNode *parent, const char *path, const char *name,
                  int def, int *ret)
{
    char *s = NULL;
    int r;

    r = cfg__get_str(c, parent, name, &s);
    if (r < 0)
        return r;
    if (!s || !*s) {
        *ret = def;
        free(s);
        return 0;
    }
    r = chc_parse_bool(s, ret);
    if (r < 0)
        chc_err_set(c->err, CHC_ECONFIG, "%s: <%s/%s> must be true/false or 1/0, got '%s'",
                    c->source, path, name, s);
    free(s);
    return r < 0 ? CHC_ECONFIG : 0;
}

int cfg__parse_doc(struct cfg_ctx *c, const char *xml, size_t len, xmlDoc **ret)
{
    const xmlError *e;
    xmlDoc *doc;

    if (len > CFG_XML_MAX)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: document too large", c->source);
    if (len == 0 || strspn(xml, " \t\r\n") == len)
        return chc_err_set(c->err, CHC_ECONFIG, "%s: empty document", c->source);
    xmlResetLastError();
    doc = xmlReadMemory(xml, (int)len, c->source, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                            XML_PARSE_NOBLANKS);
    if (!doc) {
        char msg[512] = "malformed XML";
        e = xmlGetLastError();
        if (e && e->message) {
            size_t n;
            snprintf(msg, sizeof(msg), "%s", e->message);
            n = strlen(msg);
            while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
                msg[--n] = '\0';
        }
        return chc_err_set(c->err, CHC_ECONFIG, "%s:%d: malformed XML: %s", c->source,
                           e ? e->line : 0, msg);
    }
    *ret = doc;
    return 0;
}
