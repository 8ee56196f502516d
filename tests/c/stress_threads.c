/* A multithreaded stress test of any malloc: blocks allocated by one thread and
 * freed by another, realloc chains, threads created and exiting continuously
 * (with thread-exit destructors that free and allocate), and fork() from a
 * parent whose other threads are allocating at that moment. Every block carries
 * a pattern derived from its identity, checked before it is freed. What it
 * prints depends only on the fixed workload, so a run under any allocator must
 * print exactly what a run under glibc prints. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_long corrupt_blocks;

static void die(const char *what) {
    fprintf(stderr, "stress_threads: %s: %s\n", what, strerror(errno));
    exit(2);
}

/* A block starts with its size and identity; the rest is a byte pattern. */
typedef struct {
    size_t size;
    uint64_t id;
} block_header;

static unsigned char pattern_byte(uint64_t id, size_t i) {
    return (unsigned char)((id * 0x9e3779b97f4a7c15ULL >> 56) + i * 7);
}

static block_header *block_new(uint64_t id, size_t size) {
    if (size < sizeof(block_header)) size = sizeof(block_header);
    block_header *b = malloc(size);
    if (!b) die("malloc");
    b->size = size;
    b->id = id;
    unsigned char *bytes = (unsigned char *)b;
    for (size_t i = sizeof *b; i < size; i++) bytes[i] = pattern_byte(id, i);
    return b;
}

static void block_check_and_free(block_header *b) {
    const unsigned char *bytes = (const unsigned char *)b;
    for (size_t i = sizeof *b; i < b->size; i++) {
        if (bytes[i] != pattern_byte(b->id, i)) {
            atomic_fetch_add(&corrupt_blocks, 1);
            break;
        }
    }
    free(b);
}

/* Sizes from 16 bytes to 1 MiB, mostly small, as real programs have them. */
static size_t workload_size(uint64_t n) {
    uint64_t r = n * 2654435761u % 1000;
    if (r < 700) return 16 + r % 240;
    if (r < 950) return 256 + (n * 97) % 8000;
    if (r < 998) return 8192 + (n * 131) % 120000;
    return (size_t)1 << 20;
}

/* ---- Phase 1: producers allocate, consumers verify and free. ---- */

enum { QUEUE_CAP = 256, PRODUCERS = 3, CONSUMERS = 3, PER_PRODUCER = 60000 };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    block_header *slots[QUEUE_CAP];
    size_t head, count;
    int producers_left;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, PRODUCERS};

static atomic_long handed_over;

static void *producer(void *arg) {
    uint64_t base = (uint64_t)(uintptr_t)arg * PER_PRODUCER;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        block_header *b = block_new(base + i, workload_size(base + i));
        pthread_mutex_lock(&queue.lock);
        while (queue.count == QUEUE_CAP) pthread_cond_wait(&queue.not_full, &queue.lock);
        queue.slots[(queue.head + queue.count) % QUEUE_CAP] = b;
        queue.count++;
        pthread_cond_signal(&queue.not_empty);
        pthread_mutex_unlock(&queue.lock);
    }
    pthread_mutex_lock(&queue.lock);
    queue.producers_left--;
    pthread_cond_broadcast(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&queue.lock);
        while (queue.count == 0 && queue.producers_left > 0) pthread_cond_wait(&queue.not_empty, &queue.lock);
        if (queue.count == 0) {
            pthread_mutex_unlock(&queue.lock);
            return NULL;
        }
        block_header *b = queue.slots[queue.head];
        queue.head = (queue.head + 1) % QUEUE_CAP;
        queue.count--;
        pthread_cond_signal(&queue.not_full);
        pthread_mutex_unlock(&queue.lock);
        /* Some blocks are grown by the receiving thread before being freed. */
        if (b->id % 5 == 0) {
            size_t old = b->size;
            block_header *grown = realloc(b, old * 2 + 100);
            if (!grown) die("realloc");
            unsigned char *bytes = (unsigned char *)grown;
            for (size_t i = old; i < old * 2 + 100; i++) bytes[i] = pattern_byte(grown->id, i);
            grown->size = old * 2 + 100;
            b = grown;
        }
        block_check_and_free(b);
        atomic_fetch_add(&handed_over, 1);
    }
}

static void phase_cross_thread_free(void) {
    pthread_t threads[PRODUCERS + CONSUMERS];
    for (uintptr_t i = 0; i < PRODUCERS; i++)
        if (pthread_create(&threads[i], NULL, producer, (void *)i)) die("pthread_create");
    for (int i = 0; i < CONSUMERS; i++)
        if (pthread_create(&threads[PRODUCERS + i], NULL, consumer, NULL)) die("pthread_create");
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) pthread_join(threads[i], NULL);
    printf("cross-thread: %ld blocks allocated by producers and freed by consumers\n",
           atomic_load(&handed_over));
}

/* ---- Phase 2: realloc chains. ---- */

enum { CHAIN_THREADS = 4, CHAINS = 64, CHAIN_STEPS = 400 };

static atomic_long chain_bytes_checked;

static void *realloc_chains(void *arg) {
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    unsigned char *bufs[CHAINS] = {0};
    size_t lens[CHAINS] = {0};
    long checked = 0;
    for (int step = 0; step < CHAIN_STEPS; step++) {
        for (int c = 0; c < CHAINS; c++) {
            uint64_t id = seed * 1000 + (uint64_t)c;
            size_t grow = 1 + (size_t)((id * 31 + (uint64_t)step * 17) % (c % 8 == 0 ? 9000 : 300));
            size_t new_len = lens[c] + grow;
            if (step % 50 == 49) new_len = lens[c] / 3; /* an occasional shrink */
            unsigned char *p = realloc(bufs[c], new_len == 0 ? 1 : new_len);
            if (!p) die("realloc");
            size_t keep = lens[c] < new_len ? lens[c] : new_len;
            /* Checking every byte each step would be quadratic: check a stride
             * through the kept part, plus its last 256 bytes in full. */
            size_t tail = keep > 256 ? keep - 256 : 0;
            for (size_t i = 0; i < keep; i = i < tail ? i + 61 : i + 1) {
                if (p[i] != pattern_byte(id, i)) {
                    atomic_fetch_add(&corrupt_blocks, 1);
                    break;
                }
                checked++;
            }
            for (size_t i = keep; i < new_len; i++) p[i] = pattern_byte(id, i);
            bufs[c] = p;
            lens[c] = new_len;
        }
    }
    for (int c = 0; c < CHAINS; c++) free(bufs[c]);
    atomic_fetch_add(&chain_bytes_checked, checked);
    return NULL;
}

static void phase_realloc_chains(void) {
    pthread_t threads[CHAIN_THREADS];
    for (uintptr_t i = 0; i < CHAIN_THREADS; i++)
        if (pthread_create(&threads[i], NULL, realloc_chains, (void *)i)) die("pthread_create");
    for (int i = 0; i < CHAIN_THREADS; i++) pthread_join(threads[i], NULL);
    printf("realloc chains: %d chains of %d steps, %ld bytes checked\n", CHAIN_THREADS * CHAINS, CHAIN_STEPS,
           atomic_load(&chain_bytes_checked));
}

/* ---- Phase 3: threads created and exiting continuously. ---- */

enum { CHURN_BATCHES = 250, CHURN_BATCH = 8, LEFTOVERS_PER_THREAD = 16 };

static pthread_key_t exit_key;
static atomic_long exit_destructors_run;
static block_header *leftovers[CHURN_BATCH][LEFTOVERS_PER_THREAD];

/* Runs during the thread's exit, after its C code is done: frees the block the
 * thread left in its key, then allocates and frees once more, as C++ and
 * library TLS destructors do. */
static void on_thread_exit(void *value) {
    block_check_and_free(value);
    block_header *late = block_new(7, 300);
    block_check_and_free(late);
    atomic_fetch_add(&exit_destructors_run, 1);
}

static void *short_lived(void *arg) {
    uintptr_t slot = (uintptr_t)arg;
    block_header *mine[64];
    for (int i = 0; i < 64; i++) mine[i] = block_new(slot * 64 + (uint64_t)i, workload_size(slot * 64 + (uint64_t)i) % 4000);
    for (int i = 0; i < 64; i += 2) block_check_and_free(mine[i]);
    /* Blocks left for the main thread to free after this thread has exited. */
    for (int i = 0; i < LEFTOVERS_PER_THREAD; i++) leftovers[slot][i] = mine[2 * i + 1];
    for (int i = 2 * LEFTOVERS_PER_THREAD + 1; i < 64; i += 2) block_check_and_free(mine[i]);
    pthread_setspecific(exit_key, block_new(slot, 500));
    return NULL;
}

static void phase_thread_churn(void) {
    if (pthread_key_create(&exit_key, on_thread_exit)) die("pthread_key_create");
    pthread_attr_t detached;
    pthread_attr_init(&detached);
    pthread_attr_setdetachstate(&detached, PTHREAD_CREATE_DETACHED);
    long threads_run = 0;
    for (int batch = 0; batch < CHURN_BATCHES; batch++) {
        pthread_t threads[CHURN_BATCH];
        for (uintptr_t i = 0; i < CHURN_BATCH; i++)
            if (pthread_create(&threads[i], NULL, short_lived, (void *)i)) die("pthread_create");
        for (int i = 0; i < CHURN_BATCH; i++) pthread_join(threads[i], NULL);
        for (int t = 0; t < CHURN_BATCH; t++)
            for (int i = 0; i < LEFTOVERS_PER_THREAD; i++) block_check_and_free(leftovers[t][i]);
        threads_run += CHURN_BATCH;
    }
    /* Detached threads exit on their own; wait for their destructors. */
    enum { DETACHED = 64 };
    long expected = threads_run + DETACHED;
    for (uintptr_t i = 0; i < DETACHED; i++) {
        pthread_t t;
        if (pthread_create(&t, &detached, short_lived, (void *)(i % CHURN_BATCH))) die("pthread_create");
        /* One at a time, so that the leftover slots are not shared. */
        while (atomic_load(&exit_destructors_run) < threads_run + (long)i + 1) usleep(100);
        for (int j = 0; j < LEFTOVERS_PER_THREAD; j++) block_check_and_free(leftovers[i % CHURN_BATCH][j]);
    }
    pthread_attr_destroy(&detached);
    printf("thread churn: %ld threads created and exited, %ld exit destructors ran\n", expected,
           atomic_load(&exit_destructors_run));
}

/* ---- Phase 4: fork() while other threads allocate. ---- */

enum { FORKS = 16, BUSY_THREADS = 2 };

static atomic_int stop_busy;

static void *busy_allocating(void *arg) {
    uint64_t n = (uint64_t)(uintptr_t)arg * 1000003;
    block_header *ring[128] = {0};
    while (!atomic_load(&stop_busy)) {
        int slot = (int)(n % 128);
        if (ring[slot]) block_check_and_free(ring[slot]);
        ring[slot] = block_new(n, workload_size(n) % 20000);
        n++;
    }
    for (int i = 0; i < 128; i++)
        if (ring[i]) block_check_and_free(ring[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    for (uint64_t i = 0; i < 1000; i++) block_check_and_free(block_new(i, workload_size(i)));
    return NULL;
}

/* In the child: allocate plenty, from the main thread and a new thread, and
 * leave through exit() so that atexit handlers and destructors run too. */
__attribute__((noreturn)) static void child_after_fork(int depth) {
    block_header *blocks[1000];
    for (uint64_t i = 0; i < 1000; i++) blocks[i] = block_new(i, workload_size(i));
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, NULL)) _exit(3);
    pthread_join(t, NULL);
    for (int i = 0; i < 1000; i++) block_check_and_free(blocks[i]);
    if (depth == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) child_after_fork(1);
        int status = 0;
        if (grandchild < 0 || waitpid(grandchild, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
            _exit(4);
    }
    exit(atomic_load(&corrupt_blocks) == 0 ? 0 : 5);
}

static void phase_fork_while_threaded(void) {
    pthread_t busy[BUSY_THREADS];
    for (uintptr_t i = 0; i < BUSY_THREADS; i++)
        if (pthread_create(&busy[i], NULL, busy_allocating, (void *)i)) die("pthread_create");
    int children_ok = 0;
    for (int i = 0; i < FORKS; i++) {
        usleep(2000);
        pid_t pid = fork();
        if (pid < 0) die("fork");
        if (pid == 0) child_after_fork(0);
        int status = 0;
        if (waitpid(pid, &status, 0) < 0) die("waitpid");
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            children_ok++;
        else
            fprintf(stderr, "stress_threads: fork child %d ended with status %#x\n", i, status);
    }
    atomic_store(&stop_busy, 1);
    for (int i = 0; i < BUSY_THREADS; i++) pthread_join(busy[i], NULL);
    printf("fork: %d of %d children (each with a grandchild) allocated and exited cleanly\n", children_ok, FORKS);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    phase_cross_thread_free();
    phase_realloc_chains();
    phase_thread_churn();
    phase_fork_while_threaded();
    long corrupt = atomic_load(&corrupt_blocks);
    printf("corrupt blocks: %ld\n", corrupt);
    return corrupt == 0 ? 0 : 1;
}
