/* A misuse of free or realloc, chosen on the command line, that larder's
 * default build must stop: `bad_free MODE SIZE`. MODE is one of
 *   double        free the block twice (same thread)
 *   double-remote free it on another thread, then again on this one
 *   remote-double free it here, then again on another thread
 *   realloc-freed realloc a block after freeing it
 *   interior      free a pointer 16 bytes into the block
 *   stack         free the address of a local variable
 *   global        free the address of a global
 *   aliased       free the block's address plus 2^47 (past the user address
 *                 space, where larder's map of chunks wraps onto the block's
 *                 own chunk): ignored with a warning; then free the block
 *                 (must exit 0)
 *   clean         free it once (must exit 0)
 * It prints "survived" if the program goes on after the misuse. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *block;
static int global_variable;

static void *free_block(void *unused) {
  (void)unused;
  free(block);
  return NULL;
}

static void free_on_another_thread(void) {
  pthread_t thread;
  pthread_create(&thread, NULL, free_block, NULL);
  pthread_join(thread, NULL);
}

/* Kept out of line so that the compiler cannot see which pointer is freed. */
__attribute__((noinline)) static void release(void *ptr) { free(ptr); }

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bad_free MODE SIZE\n");
    return 2;
  }
  const char *mode = argv[1];
  size_t size = strtoul(argv[2], NULL, 10);
  block = malloc(size);
  if (block == NULL) return 3;
  memset(block, 0x5a, size);
  int local_variable = 0;
  if (!strcmp(mode, "double")) {
    release(block);
    release(block);
  } else if (!strcmp(mode, "double-remote")) {
    free_on_another_thread();
    release(block);
  } else if (!strcmp(mode, "remote-double")) {
    release(block);
    free_on_another_thread();
  } else if (!strcmp(mode, "realloc-freed")) {
    release(block);
    block = realloc(block, size);
  } else if (!strcmp(mode, "interior")) {
    release((char *)block + 16);
  } else if (!strcmp(mode, "stack")) {
    release(&local_variable);
  } else if (!strcmp(mode, "global")) {
    release(&global_variable);
  } else if (!strcmp(mode, "aliased")) {
    release((char *)block + ((size_t)1 << 47));
    release(block);
  } else if (!strcmp(mode, "clean")) {
    release(block);
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("survived\n");
  return 0;
}
