/* xmlcfg.h — reading values out of a libxml2 document the way ClickHouse's
 * config does; private to src/config (task.c, tablexml.c, zkconf.c).
 *
 * Every getter takes a struct cfg_ctx: the document's name for messages and
 * the caller's chc_err. Errors name the document and the element path
 * ("task.xml: <tables/hits/number_of_splits> must be an integer in [1, 1024],
 * got 'x'") and say what to do. Text is trimmed of surrounding whitespace.
 * Only src/config includes libxml2; this header is how its files share it.
 */
#ifndef CHC_XMLCFG_H
#define CHC_XMLCFG_H

#include <stddef.h>

#include <libxml/tree.h>

#include "chcopier/base/err.h"

/* Largest task description or zookeeper.xml accepted. */
#define CFG_XML_MAX (16u << 20)

/* Where errors go: the document's name (a path or a ZooKeeper node) and the
 * caller's chc_err. */
struct cfg_ctx {
    const char *source;
    struct chc_err *err;
};

/* -ENOMEM with "<source>: out of memory". */
int cfg__ctx_oom(struct cfg_ctx *c);

/* Parse xml (len bytes) with libxml2 quietly; errors (CHC_ECONFIG) carry the
 * line number. Free *ret with xmlFreeDoc(). */
int cfg__parse_doc(struct cfg_ctx *c, const char *xml, size_t len, xmlDoc **ret);

/* n is an element; an element named name; an element whose name starts with
 * prefix (ClickHouse reads repeated keys "shard", "shard[1]"... so). */
int cfg__is_elem(const xmlNode *n);
int cfg__name_is(const xmlNode *n, const char *name);
int cfg__name_starts(const xmlNode *n, const char *prefix);
/* The first child element named name, or NULL. */
xmlNode *cfg__child(const xmlNode *parent, const char *name);
int cfg__has_element_children(const xmlNode *n);
/* Trimmed text content of a node; NULL on ENOMEM. */
char *cfg__text_of(const xmlNode *n);

/* Optional string element: *ret = NULL if absent. */
int cfg__get_str(struct cfg_ctx *c, const xmlNode *parent, const char *name, char **ret);
/* Required, non-empty string element <path/name>. */
int cfg__get_required(struct cfg_ctx *c, const xmlNode *parent, const char *path,
                      const char *name, char **ret);
/* The same, with an error that says what to put there. */
int cfg__get_required_hint(struct cfg_ctx *c, const xmlNode *parent, const char *path,
                           const char *name, const char *hint, char **ret);
/* Optional integer in [min, max]; def if absent. */
int cfg__get_ll(struct cfg_ctx *c, const xmlNode *parent, const char *path, const char *name,
                long long min, long long max, long long def, long long *ret);
/* Optional boolean (true/false, 1/0, ...); def if absent or empty. */
int cfg__get_bool(struct cfg_ctx *c, const xmlNode *parent, const char *path, const char *name,
                  int def, int *ret);

#endif
