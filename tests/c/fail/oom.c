/* Allocates in a fixed order, four allocations in all, and (unless built with
 * -DHANDLE_ALL) dereferences the result of one of them, the third, without a
 * NULL check: a fault-injection sweep must find exactly that call site
 * (parse_record), and nothing in the -DHANDLE_ALL variant. Each allocation is
 * in a function of its own so its caller is a known line. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static __attribute__((noinline)) char *read_header(void) {
    char *h = malloc(64);
    if (!h) {
        fprintf(stderr, "out of memory in read_header (errno %d)\n", errno);
        exit(3);
    }
    strcpy(h, "header");
    return h;
}

static __attribute__((noinline)) char *copy_name(const char *name) {
    char *copy = malloc(strlen(name) + 1);
    if (!copy) {
        fprintf(stderr, "out of memory in copy_name\n");
        exit(3);
    }
    return strcpy(copy, name);
}

static __attribute__((noinline)) long *parse_record(int n) {
    long *record = calloc((size_t)n, sizeof *record);
#ifdef HANDLE_ALL
    if (!record) {
        fprintf(stderr, "out of memory in parse_record\n");
        exit(3);
    }
#endif
    record[n - 1] = 42; /* the unhandled failure: NULL is written through */
    return record;
}

static __attribute__((noinline)) char *grow(char *buf, size_t size) {
    char *bigger = realloc(buf, size);
    if (!bigger) {
        free(buf);
        fprintf(stderr, "out of memory in grow\n");
        exit(3);
    }
    return bigger;
}

int main(void) {
    char *header = read_header();
    char *name = copy_name("larder");
    long *record = parse_record(16);
    name = grow(name, 4096);
    printf("%s %s %ld\n", header, name, record[15]);
    free(header);
    free(name);
    free(record);
    return 0;
}
