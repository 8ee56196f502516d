/* expect: heap-buffer-overflow make_block */
/* On a guarded block the write faults and the report names the writer and
 * the allocation (make_block); without guard pages (LARDER_GUARD=off) it is
 * found on free, when the tail redzone is checked, naming the allocation.
 * With a second argument "live" the block is never freed (a global keeps it
 * reachable, so no leak is reported beside it): no free checks its redzone,
 * and the checks at exit find it. */
#include "corpus.h"
char *kept;
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
  if (live_arg(argc, argv))
    kept = p;
  else
    free(p);
  return 0;
}
