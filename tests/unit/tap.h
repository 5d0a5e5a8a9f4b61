/* tap.h — a tiny TAP test harness (libuv runner / kmod DEFINE_TEST style).
 *
 *   TEST(name) { ASSERT_EQ(1, 1); }
 *   TAP_MAIN()
 *
 * Each TEST registers itself; TAP_MAIN runs all (or those named in argv) and
 * prints "ok N - name" / "not ok N - name" with the failing file:line.
 */
#ifndef CHC_TAP_H
#define CHC_TAP_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*tap_fn)(void);

struct tap_test {
    const char *name;
    tap_fn fn;
    struct tap_test *next;
};

extern struct tap_test *tap__head, **tap__tail;
extern jmp_buf tap__jmp;
extern int tap__failed_here;

#define TEST(name)                                                             \
    static void test_##name(void);                                             \
    static struct tap_test tap_rec_##name = {#name, test_##name, NULL};        \
    __attribute__((constructor)) static void tap_reg_##name(void)              \
    {                                                                          \
        *tap__tail = &tap_rec_##name;                                          \
        tap__tail = &tap_rec_##name.next;                                      \
    }                                                                          \
    static void test_##name(void)

#define TAP_FAIL(...)                                                          \
    do {                                                                       \
        printf("# %s:%d: ", __FILE__, __LINE__);                               \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        tap__failed_here = 1;                                                  \
        longjmp(tap__jmp, 1);                                                  \
    } while (0)

#define ASSERT(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            TAP_FAIL("assertion failed: %s", #cond);                           \
    } while (0)

#define ASSERT_EQ(a, b)                                                        \
    do {                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                  \
        if (va_ != vb_)                                                        \
            TAP_FAIL("%s == %s: %lld != %lld", #a, #b, va_, vb_);              \
    } while (0)

#define ASSERT_NE(a, b)                                                        \
    do {                                                                       \
        long long va_ = (long long)(a), vb_ = (long long)(b);                  \
        if (va_ == vb_)                                                        \
            TAP_FAIL("%s != %s: both %lld", #a, #b, va_);                      \
    } while (0)

#define ASSERT_OK(expr)                                                        \
    do {                                                                       \
        long long v_ = (long long)(expr);                                      \
        if (v_ < 0)                                                            \
            TAP_FAIL("%s failed: %lld", #expr, v_);                            \
    } while (0)

#define ASSERT_STREQ(a, b)                                                     \
    do {                                                                       \
        const char *sa_ = (a), *sb_ = (b);                                     \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                             \
            TAP_FAIL("%s == %s:\n#   got:      \"%s\"\n#   expected: \"%s\"",  \
                     #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");       \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                           \
    do {                                                                       \
        const char *sh_ = (hay), *sn_ = (needle);                              \
        if (!sh_ || !strstr(sh_, sn_))                                         \
            TAP_FAIL("\"%s\" does not contain \"%s\"", sh_ ? sh_ : "(null)",   \
                     sn_);                                                     \
    } while (0)

#define ASSERT_NULL(p) ASSERT((p) == NULL)
#define ASSERT_NOT_NULL(p) ASSERT((p) != NULL)

int tap_main(int argc, char **argv);

#define TAP_MAIN()                                                             \
    struct tap_test *tap__head, **tap__tail = &tap__head;                      \
    jmp_buf tap__jmp;                                                          \
    int tap__failed_here;                                                      \
    int main(int argc, char **argv) { return tap_main(argc, argv); }           \
    static int tap__run_one(const struct tap_test *t)                          \
    {                                                                          \
        tap__failed_here = 0;                                                  \
        if (setjmp(tap__jmp) == 0)                                             \
            t->fn();                                                           \
        return tap__failed_here;                                               \
    }                                                                          \
    int tap_main(int argc, char **argv)                                        \
    {                                                                          \
        struct tap_test *t;                                                    \
        int n = 0, failed = 0, i;                                              \
        for (t = tap__head; t; t = t->next)                                    \
            n++;                                                               \
        printf("1..%d\n", n);                                                  \
        n = 0;                                                                 \
        for (t = tap__head; t; t = t->next) {                                  \
            int selected = argc < 2;                                           \
            for (i = 1; i < argc; i++)                                         \
                if (!strcmp(argv[i], t->name))                                 \
                    selected = 1;                                              \
            n++;                                                               \
            if (!selected) {                                                   \
                printf("ok %d - %s # SKIP not selected\n", n, t->name);        \
                continue;                                                      \
            }                                                                  \
            i = tap__run_one(t);                                               \
            fflush(stdout);                                                    \
            printf("%sok %d - %s\n", i ? "not " : "", n, t->name);             \
            failed += i;                                                       \
        }                                                                      \
        return failed ? 1 : 0;                                                 \
    }

#endif
