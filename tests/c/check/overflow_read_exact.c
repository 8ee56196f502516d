/* expect: heap-buffer-overflow read_one_past LARDER_GUARD_ALIGN=exact */
/* A read of the first byte past the requested size, whatever the size: with
 * C's alignment for malloc (the default) a block of 1000 bytes is 16-aligned
 * and ends 8 bytes before its guard page, where the read is missed. With
 * LARDER_GUARD_ALIGN=exact it is aligned only as an object of 1000 bytes needs
 * (8), ends at the guard page, and the read faults in the reader. */
#include "corpus.h"
CULPRIT int read_one_past(const char *p, size_t n) {
  int c = ((volatile const char *)launder((void *)p))[n];
  NOTAIL();
  return c;
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  char *p = malloc(n);
  memset(p, 1, n);
  int c = read_one_past(p, n);
  free(p);
  return c == 1;
}
