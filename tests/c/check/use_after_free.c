/* expect: use-after-free drop_block */
/* The write is found when the block leaves the quarantine (at the latest at
 * exit), so the report names the free (drop_block), not the writer; guard
 * pages, which would fault at the write, are not built yet. */
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
