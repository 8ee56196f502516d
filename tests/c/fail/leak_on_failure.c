/* Every allocation failure ends in a clean exit(3), but one cleanup path forgets its frees:
 * when make_pair's third allocation (the value) fails, the pair and its key are lost, unless
 * built with -DFREE_ON_FAILURE. A fault-injection sweep with --check must report exactly that
 * site as leaked, and nothing in the fixed variant. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pair {
    char *key;
    char *value;
};

static __attribute__((noinline)) struct pair *make_pair(const char *key, const char *value) {
    struct pair *p = malloc(sizeof *p);
    if (!p) return NULL;
    p->key = malloc(strlen(key) + 1);
    if (!p->key) {
        free(p);
        return NULL;
    }
    p->value = malloc(strlen(value) + 1);
    if (!p->value) {
#ifdef FREE_ON_FAILURE
        free(p->key);
        free(p);
#endif
        return NULL;
    }
    strcpy(p->key, key);
    strcpy(p->value, value);
    return p;
}

/* Overwrites the dead frames below main's, so that no stale copy of a lost pointer on the
 * stack keeps the conservative leak search from finding it. */
static __attribute__((noinline)) void scrub_stack(void) {
    volatile char junk[16384];
    memset((char *)junk, 0, sizeof junk);
}

int main(void) {
    struct pair *p = make_pair("larder", "allocator");
    if (!p) {
        scrub_stack();
        fputs("out of memory\n", stderr);
        exit(3);
    }
    printf("%s=%s\n", p->key, p->value);
    free(p->key);
    free(p->value);
    free(p);
    return 0;
}
