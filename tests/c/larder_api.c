/* larder's own C interface and promises beyond glibc's, for a program linked
 * with -llarder: cfree, larder_stats_print, larder_collect giving memory back,
 * and pointers larder did not allocate (glibc's own blocks, the stack, mmap)
 * left alone by free, realloc and malloc_usable_size, reported once. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "larder.h"

/* glibc's own allocator, the source of blocks that larder did not allocate: its malloc and
 * free looked up in libc.so.6 itself (larder answers to every other name of them, glibc's
 * internal __libc_malloc and __libc_free included, as mimalloc and jemalloc do). */
static void *(*glibc_malloc)(size_t);
static void (*glibc_free)(void *);

static void find_glibc_allocator(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    glibc_malloc = libc ? (void *(*)(size_t))dlsym(libc, "malloc") : NULL;
    glibc_free = libc ? (void (*)(void *))dlsym(libc, "free") : NULL;
    if (!glibc_malloc || !glibc_free || (void *)glibc_malloc == (void *)malloc) {
        fprintf(stderr, "larder_api: glibc's own malloc not found\n");
        exit(2);
    }
}

/* Hides where a pointer came from, so that GCC does not refuse, at compile
 * time, the bad frees this test makes on purpose. */
static void *volatile laundering_slot;
static void *launder(void *ptr) {
    laundering_slot = ptr;
    return laundering_slot;
}

static int saved_stderr = -1;
static char capture_path[64];

static void capture_stderr(void) {
    strcpy(capture_path, "/tmp/larder-api-stderr.XXXXXX");
    int fd = mkstemp(capture_path);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* Restores stderr and returns what was written to it (static buffer). */
static const char *captured_stderr(void) {
    static char text[8192];
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    int fd = open(capture_path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof text - 1);
    text[n > 0 ? n : 0] = '\0';
    if (fd >= 0) close(fd);
    unlink(capture_path);
    return text;
}

static int count_lines_with(const char *text, const char *needle) {
    int count = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (memmem(line, len, needle, strlen(needle))) count++;
        line += len + (end ? 1 : 0);
    }
    return count;
}

static long resident_bytes(void) {
    long pages_total = 0, pages_resident = 0;
    int fd = open("/proc/self/statm", O_RDONLY);
    char buf[128] = {0};
    if (fd >= 0) {
        if (read(fd, buf, sizeof buf - 1) < 0) buf[0] = '\0';
        close(fd);
    }
    if (sscanf(buf, "%ld %ld", &pages_total, &pages_resident) != 2) return -1;
    return pages_resident * sysconf(_SC_PAGESIZE);
}

static void check_cfree_and_stats(void) {
    void *p = malloc(100);
    cfree(p);
    CHECK(1, "cfree accepts a malloc'd block");
    capture_stderr();
    larder_stats_print();
    const char *text = captured_stderr();
    CHECK(strlen(text) > 20, "larder_stats_print writes statistics to stderr");
}

static void check_collect_returns_memory(void) {
    enum { BLOCKS = 4096, SIZE = 64 * 1024 };
    static char *blocks[BLOCKS];
    for (int i = 0; i < BLOCKS; i++) {
        blocks[i] = malloc(SIZE);
        memset(blocks[i], 1, SIZE);
    }
    long touched = resident_bytes();
    for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    larder_collect(1);
    long collected = resident_bytes();
    /* 256 MiB were resident; after a forced collection most of it is gone. */
    CHECK(touched - collected > 128L << 20, "larder_collect(1) gives freed memory back to the OS");
    larder_collect(0);
    CHECK(malloc(10) != NULL, "allocation works after a collection");
}

static void check_foreign_pointers(void) {
    find_glibc_allocator();
    char *theirs = glibc_malloc(64);
    memset(theirs, 'g', 64);
    char on_stack[64];
    memset(on_stack, 's', sizeof on_stack);
    char *mapped = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(mapped, 'm', 4096);

    capture_stderr();
    free(launder(theirs));
    free(launder(mapped + 128));
    errno = 0;
    void *moved = realloc(launder(theirs), 1000);
    int realloc_errno = errno;
    size_t usable = malloc_usable_size(mapped);
    const char *text = captured_stderr();

    CHECK(moved == NULL && realloc_errno == ENOMEM, "realloc of a foreign pointer is NULL with ENOMEM");
    CHECK(usable == 0, "malloc_usable_size of a foreign pointer is 0");
    int intact = 1;
    for (int i = 0; i < 64; i++) intact &= theirs[i] == 'g' && on_stack[i] == 's';
    for (int i = 0; i < 4096; i++) intact &= mapped[i] == 'm';
    CHECK(intact, "foreign memory is left alone");
    int reports = count_lines_with(text, "larder");
    CHECK(reports >= 1, "a foreign pointer is reported on stderr");
    CHECK(reports <= 2, "foreign pointers are reported once, not every time");
    if (reports < 1 || reports > 2) printf("# stderr was:\n%s", text);

    /* larder is unharmed: plenty of allocation still works. */
    int ok = 1;
    for (int i = 0; i < 100000; i++) {
        char *p = malloc((size_t)(i % 500) + 1);
        ok &= p != NULL;
        p[0] = 1;
        free(p);
    }
    CHECK(ok, "larder keeps working after foreign pointers");
    glibc_free(theirs);
    munmap(mapped, 4096);
}

int main(void) {
    check_cfree_and_stats();
    check_collect_returns_memory();
    check_foreign_pointers();
    return check_summary("larder_api");
}
