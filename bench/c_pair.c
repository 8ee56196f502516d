/* A plain C loop of malloc+free pairs: the preloaded fast path as a C program meets it.
 * Usage: c_pair SIZE PAIRS (bench/c_pair_callgrind.sh counts its instructions). */
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  size_t size = strtoul(argv[1], NULL, 10);
  long pairs = strtol(argv[2], NULL, 10);
  for (long i = 0; i < pairs; i++) {
    void *volatile block = malloc(size);
    free(block);
  }
  return 0;
}
