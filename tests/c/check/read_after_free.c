/* expect: use-after-free read_freed */
/* A read of a freed block: the poison is not changed, so only a guard page
 * (the freed block's pages made inaccessible) finds it, at the read. */
#include "corpus.h"
CULPRIT int read_freed(const char *p) {
  int c = ((volatile const char *)launder((void *)p))[0];
  NOTAIL();
  return c;
}
int main(int argc, char **argv) {
  char *p = malloc(size_arg(argc, argv));
  memset(p, 1, size_arg(argc, argv));
  free(p);
  return read_freed(p) == 1;
}
