/* expect: use-after-free drop_block */
/* On a guarded block (the default while within the guard budget) the write
 * faults and the report names the writer and the free (drop_block); without
 * guard pages (LARDER_GUARD=off) it is found when the block leaves the
 * quarantine (at the latest at exit), naming the free. */
#include "corpus.h"
CULPRIT void drop_block(char *p) {
  free(launder(p));
  NOTAIL();
}
CULPRIT void write_after_free(char *p) { ((char *)launder(p))[0] = 'x'; }
int main(int argc, char **argv) {
  char *p = malloc(size_arg(argc, argv));
  drop_block(p);
  write_after_free(p);
  return 0;
}
