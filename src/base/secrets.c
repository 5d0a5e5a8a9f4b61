/* secrets.c — the sets of strings never shown, and the one masking function
 * (see secrets.h). Owns the process-wide set and its lock. Knows nothing of
 * where text goes: err.c and log.c call it; it never logs and never sets a
 * struct chc_err (err.c calls here, so that would recurse).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chcopier/base/buf.h"
#include "chcopier/base/secrets.h"

#include "base/banned.h"

struct chc_secrets {
    char **forms;
    size_t *lens;
    size_t n, cap;
    unsigned char first[256 / 8]; /* bitmap of the forms' first bytes */
};

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chc_secrets *global;

struct chc_secrets *chc_secrets_new(void)
{
    return calloc(1, sizeof(struct chc_secrets));
}

struct chc_secrets *chc_secrets_free(struct chc_secrets *s)
{
    size_t i;

    if (!s)
        return NULL;
    for (i = 0; i < s->n; i++) {
        explicit_bzero(s->forms[i], s->lens[i]);
        free(s->forms[i]);
    }
    free(s->forms);
    free(s->lens);
    free(s);
    return NULL;
}

size_t chc_secrets_count(const struct chc_secrets *s)
{
    return s ? s->n : 0;
}

/* Take ownership of form (len bytes), unless an equal one is there. */
static int add_form(struct chc_secrets *s, char *form, size_t len)
{
    size_t i;

    for (i = 0; i < s->n; i++)
        if (s->lens[i] == len && !memcmp(s->forms[i], form, len))
            goto drop;
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 8;
        char **f = realloc(s->forms, ncap * sizeof(*f));
        size_t *l;

        if (!f)
            goto oom;
        s->forms = f;
        l = realloc(s->lens, ncap * sizeof(*l));
        if (!l)
            goto oom;
        s->lens = l;
        s->cap = ncap;
    }
    s->forms[s->n] = form;
    s->lens[s->n] = len;
    s->n++;
    s->first[(unsigned char)form[0] / 8] |= (unsigned char)(1u << ((unsigned char)form[0] % 8));
    return 0;
oom:
    explicit_bzero(form, len);
    free(form);
    return -ENOMEM;
drop:
    explicit_bzero(form, len);
    free(form);
    return 0;
}

enum form_kind { F_RAW, F_SQL, F_TSV, F_URL, F_JSON, F_XML, F_XML_MIN };

/* One escaping of s into b (no surrounding quotes). */
static int escape(struct chc_buf *b, const char *s, enum form_kind kind)
{
    static const char tsv_from[] = "\b\f\n\r\t\\'", tsv_to[] = "bfnrt\\'";
    const char *p;
    int r = 0;

    if (kind == F_URL)
        return chc_buf_add_urlenc(b, s);
    if (kind == F_JSON)
        return chc_buf_add_json(b, s);
    for (; r == 0 && *s; s++) {
        switch (kind) {
        case F_SQL:
            if (*s == '\'' || *s == '\\')
                r = chc_buf_addch(b, '\\');
            break;
        case F_TSV:
            p = strchr(tsv_from, *s);
            if (p) {
                r = chc_buf_addch(b, '\\');
                if (r == 0)
                    r = chc_buf_addch(b, tsv_to[p - tsv_from]);
                continue;
            }
            break;
        case F_XML:
        case F_XML_MIN:
            p = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
            if (!p && kind == F_XML)
                p = *s == '\'' ? "&apos;" : *s == '"' ? "&quot;" : NULL;
            if (p) {
                r = chc_buf_addstr(b, p);
                continue;
            }
            break;
        case F_RAW:
        case F_URL:
        case F_JSON:
            break;
        }
        if (r == 0)
            r = chc_buf_addch(b, *s);
    }
    return r;
}

/* Add kinds[0](kinds[1](...(secret))) as a form. */
static int add_chain(struct chc_secrets *s, const char *secret, const enum form_kind *kinds,
                     size_t n)
{
    struct chc_buf a = CHC_BUF_INIT, b = CHC_BUF_INIT;
    size_t i, len;
    char *form;
    int r;

    r = chc_buf_addstr(&a, secret);
    for (i = n; r == 0 && i-- > 0;) {
        chc_buf_reset(&b);
        r = escape(&b, a.buf, kinds[i]);
        if (r == 0) {
            explicit_bzero(a.buf, a.len);
            chc_buf_reset(&a);
            r = chc_buf_add(&a, b.buf, b.len);
        }
    }
    explicit_bzero(b.buf, b.len);
    chc_buf_release(&b);
    if (r < 0 || a.len == 0) {
        explicit_bzero(a.buf, a.len);
        chc_buf_release(&a);
        return r < 0 ? -ENOMEM : 0;
    }
    form = chc_buf_take(&a, &len);
    return add_form(s, form, len);
}

int chc_secrets_add(struct chc_secrets *s, const char *secret)
{
    static const enum form_kind chains[][2] = {
        {F_RAW, F_RAW}, {F_SQL, F_RAW},  {F_SQL, F_SQL},  {F_TSV, F_RAW},    {F_URL, F_RAW},
        {F_URL, F_SQL}, {F_JSON, F_RAW}, {F_JSON, F_SQL}, {F_XML, F_RAW}, {F_XML_MIN, F_RAW},
    };
    size_t i;
    int r;

    if (!secret || !*secret)
        return 0;
    for (i = 0; i < sizeof(chains) / sizeof(chains[0]); i++) {
        r = add_chain(s, secret, chains[i], 2);
        if (r < 0)
            return r;
    }
    return 0;
}

/* The length of the longest form at in[0..n), 0 if none; with partial, a
 * form that starts there and runs past the end counts (as n). */
static size_t match_at(const struct chc_secrets *s, const char *in, size_t n, int partial)
{
    unsigned char c = (unsigned char)in[0];
    size_t k, best = 0;

    if (!(s->first[c / 8] & (1u << (c % 8))))
        return 0;
    for (k = 0; k < s->n; k++) {
        size_t l = s->lens[k];

        if (l <= n && l > best && !memcmp(in, s->forms[k], l))
            best = l;
        else if (partial && l > n && !memcmp(in, s->forms[k], n))
            return n;
    }
    return best;
}

size_t chc_secrets_mask(const struct chc_secrets *s, const char *in, size_t n, int truncated,
                        char *out, size_t size)
{
    size_t i, o = 0, m;
    const char *star;

    if (size == 0)
        return 0;
    for (i = 0; i < n && o + 1 < size; i++) {
        m = s && s->n ? match_at(s, in + i, n - i, truncated) : 0;
        if (m == 0) {
            out[o++] = in[i];
            continue;
        }
        for (star = CHC_SECRETS_MASK; *star && o + 1 < size; star++)
            out[o++] = *star;
        i += m - 1;
    }
    out[o] = '\0';
    return o;
}

int chc_secrets_add_global(const char *secret)
{
    int r = 0;

    if (!secret || !*secret)
        return 0;
    pthread_mutex_lock(&global_lock);
    if (!global)
        global = chc_secrets_new();
    r = global ? chc_secrets_add(global, secret) : -ENOMEM;
    pthread_mutex_unlock(&global_lock);
    return r;
}

void chc_secrets_mask_str(char *str, size_t size, int truncated)
{
    char small[8192], *tmp = small;
    size_t n;

    if (!str || size == 0)
        return;
    pthread_mutex_lock(&global_lock);
    if (!global || !global->n)
        goto out;
    if (size > sizeof(small))
        tmp = malloc(size);
    if (!tmp) {
        /* Fail closed: never show what could not be masked. */
        n = strlen("(message withheld: out of memory masking it)");
        if (n < size)
            memcpy(str, "(message withheld: out of memory masking it)", n + 1);
        else
            str[0] = '\0';
        goto out;
    }
    n = chc_secrets_mask(global, str, strnlen(str, size - 1), truncated, tmp, size);
    memcpy(str, tmp, n + 1);
out:
    pthread_mutex_unlock(&global_lock);
    if (tmp != small)
        free(tmp);
}

void chc_secrets_clear_global(void)
{
    pthread_mutex_lock(&global_lock);
    global = chc_secrets_free(global);
    pthread_mutex_unlock(&global_lock);
}
