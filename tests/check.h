/*
 * check.h — the test harness: CHECK macros that print file and line on
 * failure and count, and a main() that runs the tests listed by the file.
 *
 * A test file defines its tests as `static void test_x(void)` and ends with
 *   TEST_MAIN(test_x, test_y, ...)
 * Each binary prints "<name>: N passed, N failed" and exits non-zero on any
 * failure; tests/run.sh adds the counts of all binaries up.
 */
#ifndef IPR_CHECK_H
#define IPR_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_current;

#define CHECK(cond) do { \
    if (cond) check_passed++; \
    else { check_failed++; fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, check_current, #cond); } \
} while (0)

#define CHECK_MSG(cond, ...) do { \
    if (cond) check_passed++; \
    else { check_failed++; fprintf(stderr, "%s:%d: %s: CHECK(%s) failed: ", __FILE__, __LINE__, check_current, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_NEAR(a, b, tol) do { \
    double check_a_ = (double)(a), check_b_ = (double)(b); \
    if (fabs(check_a_ - check_b_) <= (tol)) check_passed++; \
    else { check_failed++; fprintf(stderr, "%s:%d: %s: CHECK_NEAR(%s, %s) failed: %.12g vs %.12g (tol %g)\n", \
           __FILE__, __LINE__, check_current, #a, #b, check_a_, check_b_, (double)(tol)); } \
} while (0)

#define CHECK_EQ_INT(a, b) do { \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b); \
    if (check_a_ == check_b_) check_passed++; \
    else { check_failed++; fprintf(stderr, "%s:%d: %s: CHECK_EQ_INT(%s, %s) failed: %lld vs %lld\n", \
           __FILE__, __LINE__, check_current, #a, #b, check_a_, check_b_); } \
} while (0)

#define CHECK_STR(a, b) do { \
    const char *check_a_ = (a), *check_b_ = (b); \
    if (check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0) check_passed++; \
    else { check_failed++; fprintf(stderr, "%s:%d: %s: CHECK_STR(%s, %s) failed: \"%s\" vs \"%s\"\n", \
           __FILE__, __LINE__, check_current, #a, #b, check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)"); } \
} while (0)

typedef void (*check_fn)(void);

#define TEST_MAIN(...) \
    int main(int argc, char **argv) { \
        static const check_fn fns[] = { __VA_ARGS__ }; \
        static const char names[] = #__VA_ARGS__; \
        char buf[sizeof names]; memcpy(buf, names, sizeof names); \
        const char *list[sizeof fns / sizeof fns[0]]; size_t k = 0; \
        for (char *t = strtok(buf, ", \n\t"); t && k < sizeof fns / sizeof fns[0]; t = strtok(NULL, ", \n\t")) list[k++] = t; \
        for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) { \
            if (argc > 1 && !strstr(list[i], argv[1])) continue; \
            check_current = list[i]; int before = check_failed; fns[i](); \
            fprintf(stderr, "  %s %s\n", check_failed == before ? "ok  " : "FAIL", list[i]); \
        } \
        printf("%s: %d passed, %d failed\n", argv[0], check_passed, check_failed); \
        return check_failed ? 1 : 0; \
    }

#endif
