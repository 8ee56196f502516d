/* Four threads allocating and freeing large blocks (1 MiB and a little more)
 * at once: each call goes to the allocator's shared store of large spans, so
 * the threads contend on it all the time. A lock that loses a wake-up hangs
 * here within seconds (found in larder's span cache with this program). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

enum { THREADS = 4 };
/* Rounds per thread: argv[1], default 100000 (check mode, which fills every
 * freed MiB with its poison byte, runs fewer). */
static int rounds = 100000;

static void *worker(void *arg) {
    (void)arg;
    for (int i = 0; i < rounds; i++) {
        /* volatile: GCC would otherwise drop a malloc/free pair. */
        char *volatile block = malloc(((size_t)1 << 20) + (size_t)(i & 7) * 4096);
        if (!block) return (void *)1;
        block[0] = 1;
        free(block);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) rounds = atoi(argv[1]);
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&threads[i], NULL, worker, NULL)) return 2;
    int failed = 0;
    for (int i = 0; i < THREADS; i++) {
        void *result;
        pthread_join(threads[i], &result);
        failed |= result != NULL;
    }
    printf("contended_large: %d threads x %d large blocks %s\n", THREADS, rounds, failed ? "FAILED" : "done");
    return failed;
}
