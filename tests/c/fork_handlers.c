/* fork() while worker threads allocate, with application atfork handlers
 * that call malloc, realloc and free (small and large blocks) in the
 * prepare, parent and child handlers. The allocator's own handlers must not
 * hold its locks while the application's handlers allocate: before the fix
 * the main thread deadlocked in its own prepare handler, in realloc of a
 * large block, on the span cache's lock that the allocator's prepare handler
 * already held (issue 13, item 5).
 *
 * Usage: fork_handlers before|after|ctor
 *   before: the handlers are registered before the program's first malloc;
 *   after:  after it, with the worker threads already allocating;
 *   ctor:   from a constructor that runs before any other (priority 101), so
 *           when liblarder.a is linked in, before the allocator registers its
 *           own handlers (its prepare then runs first).
 * An alarm turns a deadlock into a failure instead of a hung CI job. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { WORKERS = 3, FORKS = 200, LARGE = 3 << 20 };

static volatile int stop;
static volatile int handler_calls;

/* Allocates a small block, grows it into a large one, and frees it: the path
 * that deadlocked (realloc -> large block -> span cache). */
static int churn(void) {
    char *small = malloc(48);
    if (!small) return 0;
    memset(small, 0x5a, 48);
    char *grown = realloc(small, LARGE);
    if (!grown) return 0;
    grown[LARGE - 1] = 1;
    char *shrunk = realloc(grown, 100);
    if (!shrunk || shrunk[0] != 0x5a) return 0;
    free(shrunk);
    void *big = calloc(1, 200 << 10);
    free(big);
    return 1;
}

static void in_handler(void) {
    if (!churn()) {
        static const char msg[] = "fork_handlers: an allocation in an atfork handler failed\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(3);
    }
    handler_calls++;
}

static void prepare(void) { in_handler(); }
static void parent(void) { in_handler(); }
static void child(void) { in_handler(); }

static void register_handlers(void) {
    if (pthread_atfork(prepare, parent, child) != 0) {
        fprintf(stderr, "pthread_atfork failed\n");
        exit(2);
    }
}

static int mode_ctor;

__attribute__((constructor(101))) static void early(void) {
    const char *mode = getenv("FORK_HANDLERS_MODE");
    if (mode && strcmp(mode, "ctor") == 0) {
        mode_ctor = 1;
        register_handlers();
    }
}

static void *worker(void *arg) {
    uintptr_t seed = (uintptr_t)arg * 2654435761u + 1;
    void *held[16] = {0};
    while (!stop) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned slot = (unsigned)(seed >> 33) % 16;
        size_t size = (seed >> 40) % 8 == 0 ? (size_t)(1 << 20) + (seed >> 20) % 65536 : 16 + (seed >> 24) % 2000;
        free(held[slot]);
        held[slot] = (seed >> 50) % 2 ? malloc(size) : realloc(NULL, size);
        if (held[slot]) ((char *)held[slot])[size - 1] = 1;
    }
    for (int i = 0; i < 16; i++) free(held[i]);
    return NULL;
}

static void *child_thread(void *arg) {
    (void)arg;
    return churn() ? NULL : (void *)1;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "before";
    alarm(60);
    int before = strcmp(mode, "before") == 0;
    if (strcmp(mode, "ctor") == 0 && !mode_ctor) {
        fprintf(stderr, "run with FORK_HANDLERS_MODE=ctor for the ctor mode\n");
        return 2;
    }
    if (before) register_handlers();
    pthread_t threads[WORKERS];
    for (uintptr_t i = 0; i < WORKERS; i++)
        if (pthread_create(&threads[i], NULL, worker, (void *)i)) return 2;
    char *first = malloc(100);
    if (!before && !mode_ctor) register_handlers();
    int failures = 0;
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            /* The child: its allocator works, from this thread and a new one. */
            pthread_t t;
            void *result = (void *)1;
            if (!churn() || pthread_create(&t, NULL, child_thread, NULL) || pthread_join(t, &result)) _exit(4);
            _exit(result == NULL ? 0 : 5);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) failures++;
    }
    stop = 1;
    for (int i = 0; i < WORKERS; i++) pthread_join(threads[i], NULL);
    free(first);
    /* prepare and parent ran in this process for each fork. */
    int ok = failures == 0 && handler_calls == 2 * FORKS;
    printf("fork_handlers %s: %d forks, %d failed children, %d handler calls: %s\n", mode, FORKS, failures,
           handler_calls, ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}
