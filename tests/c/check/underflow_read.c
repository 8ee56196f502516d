/* expect: heap-buffer-underflow read_before_start LARDER_GUARD_SIDE=before */
/* A read of the byte before a block: nothing is written, so no canary
 * changes, and with the guard page after the block (the default) the byte
 * lies in the block's own first page. With LARDER_GUARD_SIDE=before the block
 * starts right after its guard page, and the read faults in the reader. */
#include "corpus.h"
CULPRIT int read_before_start(const char *p) {
  int c = ((volatile const char *)launder((void *)p))[-1];
  NOTAIL();
  return c;
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  char *p = malloc(n);
  memset(p, 1, n);
  int c = read_before_start(p);
  free(p);
  return c == 1;
}
