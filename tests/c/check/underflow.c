/* expect: heap-buffer-underflow make_block */
/* Found on free, when the canary before the block is checked: the report
 * names the block's allocation (make_block) and the free, not the writer.
 * With a second argument "live" the block is never freed (a global keeps it
 * reachable): the checks at exit find the broken canary, or on a guarded
 * block the changed bytes before it in its first page (a block that starts at
 * a page faults at once on the guard page before it). */
#include "corpus.h"
char *kept;
CULPRIT char *make_block(size_t n) {
  char *p = malloc(n);
  NOTAIL();
  return p;
}
CULPRIT void write_before_start(char *p) { ((char *)launder(p))[-1] = 'x'; }
int main(int argc, char **argv) {
  char *p = make_block(size_arg(argc, argv));
  write_before_start(p);
  if (live_arg(argc, argv))
    kept = p;
  else
    free(p);
  return 0;
}
