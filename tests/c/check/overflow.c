/* expect: heap-buffer-overflow make_block */
/* Found on free, when the tail redzone is checked: the report names the
 * block's allocation (make_block) and the free, not the writer. */
#include "corpus.h"
CULPRIT char *make_block(size_t n) {
  char *p = malloc(n);
  NOTAIL();
  return p;
}
CULPRIT void write_past_end(char *p, size_t n) { ((char *)launder(p))[n] = 'x'; }
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  char *p = make_block(n);
  memset(p, 0, n);
  write_past_end(p, n);
  free(p);
  return 0;
}
