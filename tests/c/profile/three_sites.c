/* A heap with known allocation sites, for `larder run --profile`: big_site allocates 64 MiB
 * (blocks of 4 KiB to 128 KiB), medium_site 16 MiB (256 B to 8 KiB) and small_site 4 MiB
 * (16 B to 1 KiB), all kept live; then big_site's blocks are freed. So the peak holds
 * 64 + 16 + 4 MiB by site in that order, the exit 16 + 4 MiB, and the bytes allocated are the
 * same as at the peak. Every size is exact: the last block of each site takes the remainder.
 * Prints the three totals in bytes, one per line, for the test to compare with. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB ((size_t)1 << 20)
#define MAX_BLOCKS 40000

static void *big[MAX_BLOCKS], *medium[MAX_BLOCKS], *small[MAX_BLOCKS];
static size_t big_count, medium_count, small_count;

/* The next block size of a site: cycles through `kinds` sizes from `min`, doubling. */
static size_t next_size(size_t i, size_t min, int kinds, size_t left) {
  size_t size = min << (i % kinds);
  return size < left ? size : left;
}

__attribute__((noinline)) size_t big_site(size_t total) {
  size_t done = 0;
  while (done < total && big_count < MAX_BLOCKS) {
    size_t size = next_size(big_count, 4096, 6, total - done);
    big[big_count] = malloc(size);
    if (!big[big_count]) abort();
    memset(big[big_count], 1, 64);
    big_count++;
    done += size;
  }
  return done;
}

__attribute__((noinline)) size_t medium_site(size_t total) {
  size_t done = 0;
  while (done < total && medium_count < MAX_BLOCKS) {
    size_t size = next_size(medium_count, 256, 6, total - done);
    medium[medium_count] = malloc(size);
    if (!medium[medium_count]) abort();
    memset(medium[medium_count], 2, size < 64 ? size : 64);
    medium_count++;
    done += size;
  }
  return done;
}

__attribute__((noinline)) size_t small_site(size_t total) {
  size_t done = 0;
  while (done < total && small_count < MAX_BLOCKS) {
    size_t size = next_size(small_count, 16, 7, total - done);
    small[small_count] = calloc(1, size);
    if (!small[small_count]) abort();
    small_count++;
    done += size;
  }
  return done;
}

int main(void) {
  size_t b = big_site(64 * MIB);
  size_t m = medium_site(16 * MIB);
  size_t s = small_site(4 * MIB);
  for (size_t i = 0; i < big_count; i++) free(big[i]);
  printf("%zu\n%zu\n%zu\n", b, m, s);
  return b == 64 * MIB && m == 16 * MIB && s == 4 * MIB ? 0 : 1;
}
