/* A double free whose second free sits in a helper the compiler inlines into its caller: the
 * report must name both, the helper at the call site and the caller it was inlined into
 * (larder-cli/tests/check_mode.rs). Built with -O2 -g. */
#include <stdlib.h>
#include <string.h>

static inline __attribute__((always_inline)) void release(char *p) {
    free(p);
}

volatile int dropped;

__attribute__((noinline)) void drop_twice(char *p) {
    release(p);
    release(p);
    dropped = 2; /* keeps the second free a call, not a jump that leaves this frame */
}

int main(void) {
    char *p = malloc(40);
    if (!p) return 1;
    memset(p, 1, 40);
    drop_twice(p);
    return 0;
}
