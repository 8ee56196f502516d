/* Helpers of the check-mode corpus: each program commits one heap bug in a
 * function named for it (non-static, not inlined, built with -rdynamic) so
 * that the report's backtrace can be checked for the culprit's name. The size
 * comes from argv[1] (default 16), so one program covers tiny to multi-MiB. */
#include <stdlib.h>
#include <string.h>
#define CULPRIT __attribute__((noinline, used))
static inline size_t size_arg(int argc, char **argv) {
  return argc > 1 ? (size_t)strtoull(argv[1], NULL, 0) : 16;
}
/* Whether argv[2] is "live": the program keeps its bad block to the end. */
static inline int live_arg(int argc, char **argv) {
  return argc > 2 && strcmp(argv[2], "live") == 0;
}
/* Placed after a call in a culprit, so the call is not a tail call (which
 * would take the culprit's frame off the stack). */
#define NOTAIL() __asm__ volatile("" ::: "memory")
/* Keeps the compiler from seeing through a pointer (and warning or folding). */
static inline void *launder(void *p) {
  __asm__ volatile("" : "+r"(p));
  return p;
}
