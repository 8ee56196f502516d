/* expect: segv write_wild */
/* A write through a pointer that is no block's (here one just past NULL): no
 * heap check can name a block, but the crash is reported with its stack, and
 * the process still dies of SIGSEGV as it would without check mode. */
#include "corpus.h"
CULPRIT void write_wild(char *p) {
  ((volatile char *)launder(p))[16] = 1;
  NOTAIL();
}
int main(int argc, char **argv) {
  char *block = malloc(size_arg(argc, argv));
  write_wild(NULL);
  free(block);
  return 0;
}
