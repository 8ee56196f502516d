/* A program whose main thread ends with pthread_exit: the process must end when its last
 * thread does. larder's purger thread (started once a megabyte or more of freed memory waits
 * to be purged) must not keep it alive. Run under a timeout: a hang is the failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Frees enough memory to start a background purger in allocators that have one. */
static void churn(void) {
    enum { BLOCKS = 4096, SIZE = 1024 };
    static void *blocks[BLOCKS];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            blocks[i] = malloc(SIZE);
            if (!blocks[i]) {
                perror("malloc");
                exit(1);
            }
            memset(blocks[i], i, SIZE);
        }
        for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    }
}

static void *worker(void *arg) {
    (void)arg;
    churn();
    usleep(300 * 1000); /* let a purger start and go to sleep */
    printf("worker done\n");
    fflush(stdout);
    return NULL;
}

int main(void) {
    churn();
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) {
        perror("pthread_create");
        return 1;
    }
    pthread_detach(t);
    pthread_exit(NULL);
}
