/* Freed memory goes back to the OS once the program goes idle, whoever
 * allocated it and with no allocation afterwards (issue 13, item 1):
 *   workers: 4 threads allocate 512 MiB of small blocks and 64 KiB blocks and
 *            exit; the main thread frees every block and sleeps;
 *   workers-thread: the same, but a short-lived thread frees the blocks and
 *            exits while the main thread waits for it, then sleeps;
 *   small:   one thread allocates 300 MiB of 512 B - 4 KiB blocks, frees them
 *            all and sleeps;
 *   large:   the same with 2 - 4 MiB blocks;
 *   small-fork: as small, but the process forks halfway through the frees
 *            (the child exits at once);
 *   small-blocked: as small, but a thread allocates and frees, then blocks
 *            for ever (on a pipe) while the main thread sleeps;
 *   small-main-exit: as small, but the main thread, the only one that
 *            allocated, calls pthread_exit after its frees, and a thread that
 *            never allocates watches.
 * Prints the RSS every 100 ms after the last free, as "t_ms rss_kib" lines,
 * then a summary line with the peak RSS (VmHWM) and the first time the RSS
 * was under the limit. Usage: idle_rss MODE [SECONDS] [LIMIT_MIB]; the exit
 * status is 1 when the RSS is still above LIMIT_MIB (default 20) SECONDS
 * (default 2) after the last free. The allocator is whatever malloc the
 * program gets (run it under LD_PRELOAD). */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { WORKERS = 4 };

/* Reads a /proc file into `buf` with open/read only (thread-self: after the
 * main thread's pthread_exit, /proc/self is a zombie with no memory): once the blocks are
 * freed the program must not call malloc (stdio would), or the test would
 * measure an allocator that got one more allocation than the program gave it. */
static long read_proc(const char *path, char *buf, size_t size) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = 0;
    return n;
}

static long rss_kib(void) {
    char buf[256];
    long size = 0, resident = 0;
    if (read_proc("/proc/thread-self/statm", buf, sizeof buf) && sscanf(buf, "%ld %ld", &size, &resident) != 2)
        resident = 0;
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long peak_kib(void) {
    char buf[4096];
    read_proc("/proc/thread-self/status", buf, sizeof buf);
    const char *line = strstr(buf, "VmHWM:");
    return line ? atol(line + 6) : 0;
}

/* snprintf into a stack buffer and write(2): no allocation. */
#define SAY(...)                                                         \
    do {                                                                 \
        char say_[512];                                                  \
        int say_n_ = snprintf(say_, sizeof say_, __VA_ARGS__);           \
        if (say_n_ > 0) (void)!write(1, say_, (size_t)say_n_);           \
    } while (0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static uint64_t next(uint64_t *seed) {
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    return *seed >> 33;
}

/* Blocks of [min, max] bytes, every page written, until `total` bytes. */
struct blocks {
    char **ptr;
    size_t count;
};

static struct blocks fill(size_t total, size_t min, size_t max, uint64_t seed) {
    struct blocks b = {malloc(sizeof(char *) * (total / min + 1)), 0};
    size_t done = 0;
    while (b.ptr && done < total) {
        size_t size = min + next(&seed) % (max - min + 1);
        char *p = malloc(size);
        if (!p) break;
        for (size_t i = 0; i < size; i += 4096) p[i] = 1;
        p[size - 1] = 1;
        b.ptr[b.count++] = p;
        done += size;
    }
    return b;
}

static void free_all(struct blocks *b) {
    for (size_t i = 0; i < b->count; i++) free(b->ptr[i]);
    free(b->ptr);
}

/* A worker's share: half the bytes in 64 KiB blocks, half in 16 - 1024 B. */
static void *freer(void *arg) {
    struct blocks(*made)[2] = arg;
    for (int i = 0; i < WORKERS; i++) {
        free_all(&made[i][0]);
        free_all(&made[i][1]);
    }
    return NULL;
}

static int freed_pipe[2], never_pipe[2];

static void *allocate_free_and_block(void *arg) {
    (void)arg;
    struct blocks b = fill(300u << 20, 512, 4096, 7);
    free_all(&b);
    char byte;
    (void)!write(freed_pipe[1], "x", 1);
    (void)!read(never_pipe[0], &byte, 1); /* nothing writes: blocks for ever */
    return NULL;
}

static void *worker(void *arg) {
    struct blocks *out = arg;
    size_t share = (512u << 20) / WORKERS;
    out[0] = fill(share / 2, 64 << 10, 64 << 10, (uintptr_t)arg);
    out[1] = fill(share / 2, 16, 1024, (uintptr_t)arg + 1);
    return NULL;
}

/* Samples the RSS from the last free on and prints the verdict; the exit status. */
static int watch(const char *mode, double seconds, long limit_kib) {
    double freed = now_ms();
    double under_ms = -1;
    long rss = rss_kib();
    for (;;) {
        double t = now_ms() - freed;
        rss = rss_kib();
        SAY("%.0f %ld\n", t, rss);
        if (under_ms < 0 && rss < limit_kib) under_ms = t;
        if (t >= seconds * 1000) break;
        usleep(100 * 1000);
    }
    SAY("idle_rss %s: peak %ld MiB, %ld MiB after %.1f s, under %ld MiB after %.0f ms: %s\n", mode,
        peak_kib() / 1024, rss / 1024, seconds, limit_kib / 1024, under_ms, rss < limit_kib ? "ok" : "FAILED");
    return rss < limit_kib ? 0 : 1;
}

struct watch_args {
    const char *mode;
    double seconds;
    long limit_kib;
};

static void *watch_and_exit(void *arg) {
    struct watch_args *w = arg;
    exit(watch(w->mode, w->seconds, w->limit_kib));
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "workers";
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    long limit_kib = (argc > 3 ? atol(argv[3]) : 20) * 1024;
    if (strncmp(mode, "workers", 7) == 0) {
        struct blocks made[WORKERS][2];
        pthread_t threads[WORKERS];
        for (int i = 0; i < WORKERS; i++)
            if (pthread_create(&threads[i], NULL, worker, made[i])) return 2;
        for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
        if (strcmp(mode, "workers-thread") == 0) {
            pthread_t t;
            if (pthread_create(&t, NULL, freer, made)) return 2;
            pthread_join(t, NULL);
        } else {
            freer(made);
        }
    } else if (strcmp(mode, "small-fork") == 0) {
        struct blocks b = fill(300u << 20, 512, 4096, 7);
        for (size_t i = 0; i < b.count / 2; i++) free(b.ptr[i]);
        pid_t pid = fork();
        if (pid == 0) _exit(0);
        for (size_t i = b.count / 2; i < b.count; i++) free(b.ptr[i]);
        free(b.ptr);
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid) return 2;
    } else if (strcmp(mode, "small-blocked") == 0) {
        pthread_t t;
        char byte;
        if (pipe(freed_pipe) || pipe(never_pipe) || pthread_create(&t, NULL, allocate_free_and_block, NULL))
            return 2;
        if (read(freed_pipe[0], &byte, 1) != 1) return 2;
    } else if (strcmp(mode, "small-main-exit") == 0) {
        /* The only thread that allocated ends (pthread_exit) right after its frees; a thread
         * that never allocates watches. */
        struct blocks b = fill(300u << 20, 512, 4096, 7);
        free_all(&b);
        static struct watch_args w;
        w = (struct watch_args){mode, seconds, limit_kib};
        pthread_t t;
        if (pthread_create(&t, NULL, watch_and_exit, &w)) return 2;
        pthread_exit(NULL);
    } else if (strcmp(mode, "small") == 0 || strcmp(mode, "large") == 0) {
        int small = strcmp(mode, "small") == 0;
        struct blocks b = small ? fill(300u << 20, 512, 4096, 7) : fill(300u << 20, 2u << 20, 4u << 20, 7);
        free_all(&b);
    } else {
        fprintf(stderr, "usage: idle_rss workers|workers-thread|small|small-fork|small-blocked|small-main-exit|large [SECONDS] [LIMIT_MIB]\n");
        return 2;
    }
    return watch(mode, seconds, limit_kib);
}
