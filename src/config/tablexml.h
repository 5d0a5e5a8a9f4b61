/* tablexml.h — the <tables> section of a task description; private to
 * src/config (task.c calls it once the clusters are known).
 */
#ifndef CHC_TABLEXML_H
#define CHC_TABLEXML_H

#include <libxml/tree.h>

#include "chcopier/config/taskdesc.h"
#include "config/xmlcfg.h"

/* Append every <tables>/<name> child of root to t->tables, each validated
 * and resolved against t->clusters; CHC_ECONFIG if <tables> is missing or
 * empty, a table task is defined twice, or two copy the same source into the
 * same destination. On failure t holds what was parsed so far (freed with
 * the task). */
int cfg__tables_parse(struct cfg_ctx *c, const xmlNode *root, struct cfg_task *t);

#endif
