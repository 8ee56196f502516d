/* expect: heap-buffer-overflow read_past_end */
/* A read of one byte past the end: only a guard page finds it (nothing is
 * written, so no redzone changes); the fault names the reader. A guarded
 * block of 16 bytes or more starts 16-byte aligned (any object that fits may
 * need it), so its end lies up to 15 bytes before the guard page: the read is
 * of the first byte past the block rounded up to 16, where the guard page
 * begins. (A read inside that slack is not caught; a write is, on free.) */
#include "corpus.h"
CULPRIT int read_past_end(const char *p, size_t n) {
  int c = ((volatile const char *)launder((void *)p))[n];
  NOTAIL();
  return c;
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  char *p = malloc(n);
  memset(p, 1, n);
  int c = read_past_end(p, n < 16 ? n : (n + 15) / 16 * 16);
  free(p);
  return c == 1;
}
