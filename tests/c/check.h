/* A minimal TAP-style checker shared by the C test programs: each CHECK prints
 * "ok N - what" or "not ok N - what (file:line)", and check_summary() prints the
 * closing "N passed, N failed" line and gives the exit status. No allocation
 * happens inside the checker itself, so it cannot disturb what it measures. */
#ifndef LARDER_TEST_CHECK_H
#define LARDER_TEST_CHECK_H

#include <stdio.h>

static int check_passed;
static int check_failed;

static int check_record(int ok, const char *what, const char *file, int line) {
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
        printf("not ok %d - %s (%s:%d)\n", check_passed + check_failed, what, file, line);
        fflush(stdout);
    }
    return ok;
}

/* Failures are printed one by one; passes only counted, because the alignment
 * and size sweeps make thousands of checks. */
#define CHECK(cond, what) check_record((cond) ? 1 : 0, (what), __FILE__, __LINE__)

static int check_summary(const char *program) {
    printf("%s: %d passed, %d failed\n", program, check_passed, check_failed);
    fflush(stdout);
    return check_failed == 0 ? 0 : 1;
}

#endif
