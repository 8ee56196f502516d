/* A clean allocation churn for timing check mode against plain larder and
 * valgrind: each of THREADS threads (argv[2], default 1) replaces a random
 * slot of a 4,096-block working set OPS times (argv[1], default 2,000,000)
 * with a block of a random size (mostly 8 to 512 bytes, one in 64 up to
 * 16 KiB), writes it and reads its neighbour, through a few calls of depth
 * (as a real program's allocations are). Prints a checksum that is the same
 * under any malloc. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOTS = 4096 };

static uint64_t next(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

__attribute__((noinline)) static char *make(size_t size, uint64_t tag) {
  char *p = malloc(size);
  if (!p) abort();
  memset(p, (int)(tag & 0xff), size);
  return p;
}

__attribute__((noinline)) static void replace(char **slot, size_t *sizes, size_t size, uint64_t tag) {
  free(*slot);
  *slot = make(size, tag);
  *sizes = size;
}

struct job {
  long ops;
  uint64_t seed;
  uint64_t sum;
};

static void *run(void *arg) {
  struct job *job = arg;
  char **slots = calloc(SLOTS, sizeof *slots);
  size_t *sizes = calloc(SLOTS, sizeof *sizes);
  uint64_t s = job->seed, sum = 0;
  for (long i = 0; i < job->ops; i++) {
    uint64_t r = next(&s);
    size_t at = r % SLOTS;
    size_t size = (r >> 20) % 64 == 0 ? 1 + (r >> 32) % 16384 : 8 + (r >> 32) % 505;
    replace(&slots[at], &sizes[at], size, r);
    size_t other = (at + 1) % SLOTS;
    if (slots[other]) sum += (unsigned char)slots[other][sizes[other] - 1];
  }
  for (size_t i = 0; i < SLOTS; i++) free(slots[i]);
  free(slots);
  free(sizes);
  job->sum = sum;
  return NULL;
}

int main(int argc, char **argv) {
  long ops = argc > 1 ? atol(argv[1]) : 2000000;
  int threads = argc > 2 ? atoi(argv[2]) : 1;
  if (threads < 1 || threads > 64) return 2;
  pthread_t t[64];
  struct job jobs[64];
  for (int i = 0; i < threads; i++) {
    jobs[i] = (struct job){ops, 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1), 0};
    if (pthread_create(&t[i], NULL, run, &jobs[i])) return 2;
  }
  uint64_t sum = 0;
  for (int i = 0; i < threads; i++) {
    pthread_join(t[i], NULL);
    sum += jobs[i].sum;
  }
  printf("churn: %d x %ld ops, checksum %llu\n", threads, ops, (unsigned long long)sum);
  return 0;
}
