/* expect: alloc-dealloc-mismatch release_wrongly */
/* A block freed by another family's function than the one that allocated it; argv[2] picks
 * the pair: new-free, malloc-delete, new[]-delete, new-delete[], aligned-new-free. Written in
 * C++ (the operators), compiled with the corpus's C helpers. */
#include <new>
#include "corpus.h"
extern "C" CULPRIT void release_wrongly(void *p, const char *pair) {
  p = launder(p);
  if (!strcmp(pair, "new-free") || !strcmp(pair, "aligned-new-free")) free(p);
  if (!strcmp(pair, "malloc-delete") || !strcmp(pair, "new[]-delete")) ::operator delete(p);
  if (!strcmp(pair, "new-delete[]")) ::operator delete[](p);
  NOTAIL();
}
int main(int argc, char **argv) {
  size_t n = size_arg(argc, argv);
  const char *pair = argc > 2 ? argv[2] : "new-free";
  void *p;
  if (!strcmp(pair, "malloc-delete")) p = malloc(n);
  else if (!strcmp(pair, "new[]-delete")) p = ::operator new[](n);
  else if (!strcmp(pair, "aligned-new-free")) p = ::operator new(n, std::align_val_t(64));
  else p = ::operator new(n);
  static_cast<char *>(p)[0] = 1;
  release_wrongly(p, pair);
  return 0;
}
