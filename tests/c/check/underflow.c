/* expect: heap-buffer-underflow make_block */
/* Found on free, when the canary before the block is checked: the report
 * names the block's allocation (make_block) and the free, not the writer. */
#include "corpus.h"
CULPRIT char *make_block(size_t n) {
  char *p = malloc(n);
  NOTAIL();
  return p;
}
CULPRIT void write_before_start(char *p) { ((char *)launder(p))[-1] = 'x'; }
int main(int argc, char **argv) {
  char *p = make_block(size_arg(argc, argv));
  write_before_start(p);
  free(p);
  return 0;
}
