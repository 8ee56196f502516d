/* expect: double-free free_again */
#include "corpus.h"
CULPRIT void free_again(char *p) {
  free(launder(p));
  NOTAIL();
}
int main(int argc, char **argv) {
  char *p = malloc(size_arg(argc, argv));
  p[0] = 1;
  free(p);
  free_again(p);
  return 0;
}
