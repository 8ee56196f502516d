/* A program whose heap activity is known exactly, for testing the figures that
 * `larder run` reports: it allocates COUNT blocks of SIZE bytes, holds them all
 * at once, frees all but LEAK of them, and exits. The test runs it with two
 * different COUNTs and checks that the reported figures differ by exactly what
 * the extra blocks account for, so start-up allocations of libc cancel out.
 * Usage: run_summary COUNT SIZE LEAK */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The leaked blocks stay reachable from here until exit. */
char **volatile leaked_blocks;

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s COUNT SIZE LEAK\n", argv[0]);
        return 2;
    }
    size_t count = strtoul(argv[1], NULL, 10);
    size_t size = strtoul(argv[2], NULL, 10);
    size_t leak = strtoul(argv[3], NULL, 10);
    if (leak > count) leak = count;
    /* The pointer array is one more block, of COUNT pointers: the test
     * accounts for it. */
    char **blocks = calloc(count, sizeof *blocks);
    if (!blocks) return 3;
    for (size_t i = 0; i < count; i++) {
        blocks[i] = malloc(size);
        if (!blocks[i]) return 3;
        memset(blocks[i], (int)i, size);
    }
    for (size_t i = leak; i < count; i++) free(blocks[i]);
    leaked_blocks = blocks;
    return 0;
}
