/* expect: double-free grow_freed */
#include "corpus.h"
CULPRIT void *grow_freed(char *p, size_t n) {
  void *q = realloc(launder(p), n);
  NOTAIL();
  return q;
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  char *p = malloc(n);
  free(p);
  p = grow_freed(p, 2 * n);
  return p != NULL;
}
