/*
 * ctests.h -- unit tests of the C core compiled into the package (as
 * rlang does), run one by one from testthat (tests/testthat/test-ctests.R
 * through ffi_ctest in ffi-internal.c).  No other header needed.
 */
#ifndef RK_CTESTS_H
#define RK_CTESTS_H

#include <stddef.h>

int rk_ctest_count(void);
const char *rk_ctest_name(int i); /* NULL when out of range */
/* Run the test called name; scratch files go to a fresh directory under
   tmpdir.  Returns 1 (pass) or 0 (fail) with a message in msg[0..n), or
   -1 when there is no such test. */
int rk_ctest_run(const char *name, const char *tmpdir, char *msg, size_t n);

#endif /* RK_CTESTS_H */
