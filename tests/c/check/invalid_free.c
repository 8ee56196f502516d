/* expect: invalid-free free_bad */
/* argv[2] picks the pointer: interior, misaligned, stack, global, mmap,
 * memalign+offset. */
#include <sys/mman.h>
#include "corpus.h"
static char global_buf[64];
CULPRIT void free_bad(void *p) {
  free(launder(p));
  NOTAIL();
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  const char *kind = argc > 2 ? argv[2] : "interior";
  char stack_buf[64];
  char *p = malloc(n + 64);
  void *bad = p + 16;
  if (!strcmp(kind, "misaligned")) bad = p + 1;
  if (!strcmp(kind, "stack")) bad = launder(stack_buf);
  if (!strcmp(kind, "global")) bad = launder(global_buf);
  if (!strcmp(kind, "mmap"))
    bad = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (!strcmp(kind, "memalign")) bad = (char *)aligned_alloc(256, n) + 32;
  free_bad(bad);
  return 0;
}
