/* The glibc malloc family's contract, as C programs rely on it: errno and NULL on
 * failure, EINVAL for bad alignments, malloc(0) and realloc(p, 0), alignment of
 * every power of two up to 1 MiB, usable size, and zero-filled calloc memory even
 * when it reuses dirty blocks. The program checks glibc's own allocator as well
 * as any preloaded or linked one, so a check that glibc fails is a wrong check. */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

/* Keeps the compiler from folding away calls whose result we test (GCC knows
 * malloc(SIZE_MAX) "cannot" succeed and may drop it otherwise). */
static volatile size_t opaque_size_max = SIZE_MAX;
static volatile size_t opaque_two_pow_33 = (size_t)1 << 33;

static int is_aligned(const void *p, size_t align) {
    return ((uintptr_t)p & (align - 1)) == 0;
}

static int all_bytes_are(const unsigned char *p, size_t n, unsigned char value) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != value) return 0;
    return 1;
}

static void check_malloc_zero_and_free_null(void) {
    void *a = malloc(0);
    void *b = malloc(0);
    CHECK(a != NULL && b != NULL, "malloc(0) returns a pointer");
    CHECK(a != b, "two malloc(0) pointers are distinct");
    free(a);
    free(b);
    free(NULL);
    CHECK(1, "free(NULL) returns");
}

/* The failed realloc calls below must leave `keep` alive, which is exactly what
 * GCC's use-after-free warning assumes cannot be relied on. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuse-after-free"
__attribute__((noinline)) static void check_out_of_memory(void) {
    size_t huge = opaque_size_max;

    errno = 0;
    CHECK(malloc(huge) == NULL && errno == ENOMEM, "malloc(SIZE_MAX) is NULL with ENOMEM");
    errno = 0;
    CHECK(malloc(huge / 2 + 1) == NULL && errno == ENOMEM, "malloc(PTRDIFF_MAX + 1) is NULL with ENOMEM");
    errno = 0;
    CHECK(malloc(huge - 4096) == NULL && errno == ENOMEM, "malloc(SIZE_MAX - 4096) is NULL with ENOMEM");

    errno = 0;
    CHECK(calloc(huge / 2, 3) == NULL && errno == ENOMEM, "calloc count*size overflow is NULL with ENOMEM");
    errno = 0;
    CHECK(calloc(opaque_two_pow_33, opaque_two_pow_33) == NULL && errno == ENOMEM,
          "calloc 2^33 * 2^33 is NULL with ENOMEM");
    errno = 0;
    CHECK(calloc(huge, 1) == NULL && errno == ENOMEM, "calloc(SIZE_MAX, 1) is NULL with ENOMEM");

    char *keep = malloc(100);
    memset(keep, 'k', 100);
    errno = 0;
    CHECK(realloc(keep, huge) == NULL && errno == ENOMEM, "realloc to SIZE_MAX is NULL with ENOMEM");
    CHECK(all_bytes_are((unsigned char *)keep, 100, 'k'), "failed realloc leaves the old block intact");
    errno = 0;
    CHECK(reallocarray(keep, huge / 2, 3) == NULL && errno == ENOMEM,
          "reallocarray overflow is NULL with ENOMEM");
    CHECK(all_bytes_are((unsigned char *)keep, 100, 'k'), "failed reallocarray leaves the old block intact");
    free(keep);

    void *p = (void *)1;
    CHECK(posix_memalign(&p, 64, huge - 100) == ENOMEM, "posix_memalign of SIZE_MAX - 100 returns ENOMEM");
    CHECK(p == (void *)1, "failed posix_memalign leaves *memptr alone");
    errno = 0;
    CHECK(aligned_alloc(64, huge - 100) == NULL && errno == ENOMEM, "aligned_alloc of a huge size sets ENOMEM");
    errno = 0;
    CHECK(memalign(4096, huge - 100) == NULL && errno == ENOMEM, "memalign of a huge size sets ENOMEM");
    errno = 0;
    CHECK(valloc(huge - 100) == NULL && errno == ENOMEM, "valloc of a huge size sets ENOMEM");
    errno = 0;
    CHECK(pvalloc(huge - 100) == NULL && errno == ENOMEM, "pvalloc whose rounding overflows sets ENOMEM");
}
#pragma GCC diagnostic pop

static void check_posix_memalign_einval(void) {
    static const size_t bad[] = {0, 1, 2, 4, 3, 12, 24, 48, 96, 1000, 4097, (size_t)1 << 63 | 8};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = (void *)1;
        int rc = posix_memalign(&p, bad[i], 64);
        CHECK(rc == EINVAL, "posix_memalign rejects an alignment that is not a power-of-two multiple of sizeof(void*)");
        CHECK(p == (void *)1, "posix_memalign leaves *memptr alone on EINVAL");
    }
    void *p = NULL;
    CHECK(posix_memalign(&p, sizeof(void *), 0) == 0 && p != NULL, "posix_memalign of size 0 gives a pointer");
    free(p);
}

/* Every power of two from 1 byte to 1 MiB, through each aligned entry point,
 * with sizes below, at and above the alignment. */
static void check_alignments(void) {
    for (size_t align = 1; align <= ((size_t)1 << 20); align <<= 1) {
        const size_t sizes[] = {1, align / 2 + 1, align, 3 * align + 7};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            size_t size = sizes[s];
            void *p = NULL;
            size_t pm_align = align < sizeof(void *) ? sizeof(void *) : align;
            int rc = posix_memalign(&p, pm_align, size);
            CHECK(rc == 0 && p != NULL && is_aligned(p, pm_align), "posix_memalign honours the alignment");
            if (p) {
                CHECK(malloc_usable_size(p) >= size, "posix_memalign block is large enough");
                memset(p, 0x5a, size);
                free(p);
            }

            p = aligned_alloc(align, size);
            CHECK(p != NULL && is_aligned(p, align), "aligned_alloc honours the alignment");
            if (p) {
                memset(p, 0x5b, size);
                free(p);
            }

            p = memalign(align, size);
            CHECK(p != NULL && is_aligned(p, align), "memalign honours the alignment");
            if (p) {
                CHECK(malloc_usable_size(p) >= size, "memalign block is large enough");
                memset(p, 0x5c, size);
                p = realloc(p, size * 2 + 1);
                CHECK(p != NULL && all_bytes_are(p, size, 0x5c), "realloc of an aligned block keeps its bytes");
                free(p);
            }
        }
    }
}

static void check_page_allocations(void) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(100);
    CHECK(v != NULL && is_aligned(v, page), "valloc is page aligned");
    free(v);

    void *pv = pvalloc(page + 1);
    CHECK(pv != NULL && is_aligned(pv, page), "pvalloc is page aligned");
    CHECK(pv != NULL && malloc_usable_size(pv) >= 2 * page, "pvalloc rounds the size up to whole pages");
    if (pv) memset(pv, 1, 2 * page);
    free(pv);

    pv = pvalloc(0);
    CHECK(pv != NULL && is_aligned(pv, page), "pvalloc(0) gives a page-aligned pointer");
    free(pv);
}

/* malloc's fundamental alignment: 16 bytes on x86-64 for any block that can
 * hold a 16-byte object, 8 for the smaller ones. With
 * API_SEMANTICS_NATURAL_ALIGN set (larder's check mode with guard pages, which
 * places a guarded block as near its guard page as it may): the largest power
 * of two not above the size, at most 16, which any object that fits needs. */
static size_t malloc_align_for(size_t size) {
    if (getenv("API_SEMANTICS_NATURAL_ALIGN") && size > 0) {
        size_t natural = 1;
        while (natural * 2 <= size && natural < 16) natural *= 2;
        return natural;
    }
    return size > 8 ? 16 : 8;
}

static void check_malloc_alignment_and_usable_size(void) {
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is 0");
    for (size_t size = 0; size <= 70000; size = size < 64 ? size + 1 : size * 5 / 4 + 3) {
        unsigned char *p = malloc(size);
        CHECK(p != NULL, "malloc succeeds");
        if (!p) continue;
        CHECK(is_aligned(p, malloc_align_for(size)), "malloc result has the fundamental alignment");
        size_t usable = malloc_usable_size(p);
        CHECK(usable >= size, "malloc_usable_size is at least the requested size");
        memset(p, 0xee, usable);
        free(p);
    }
    const size_t big[] = {1 << 20, 5 << 20, (33 << 20) + 5};
    for (size_t i = 0; i < 3; i++) {
        unsigned char *p = malloc(big[i]);
        CHECK(p != NULL && is_aligned(p, malloc_align_for(big[i])) && malloc_usable_size(p) >= big[i], "large malloc is aligned and large enough");
        if (p) {
            p[0] = 1;
            p[big[i] - 1] = 2;
        }
        free(p);
    }
}

/* Dirty many blocks of many sizes, free them, then calloc the same sizes: the
 * allocator will hand the dirty blocks back, and they must come back zeroed. */
static void check_calloc_zero_after_reuse(void) {
    enum { ROUNDS = 3, BLOCKS = 400 };
    static unsigned char *blocks[BLOCKS];
    static size_t sizes[BLOCKS];
    for (int round = 0; round < ROUNDS; round++) {
        for (int i = 0; i < BLOCKS; i++) {
            sizes[i] = (size_t)(1 + (i * 7919 + round * 131) % (i % 10 == 0 ? 300000 : 2000));
            blocks[i] = malloc(sizes[i]);
            memset(blocks[i], 0xa5, malloc_usable_size(blocks[i]));
        }
        for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
        int all_zero = 1;
        for (int i = 0; i < BLOCKS; i++) {
            blocks[i] = calloc(1, sizes[i]);
            if (!blocks[i] || !all_bytes_are(blocks[i], sizes[i], 0)) all_zero = 0;
        }
        CHECK(all_zero, "calloc memory is zero after reuse of dirty blocks");
        for (int i = 0; i < BLOCKS; i++) free(blocks[i]);
    }
    /* Large blocks too: freed dirty, then calloc'd again at the same size. */
    const size_t large[] = {(size_t)2 << 20, (size_t)9 << 20, (size_t)40 << 20};
    for (int i = 0; i < 3; i++) {
        unsigned char *p = malloc(large[i]);
        memset(p, 0xc3, large[i]);
        free(p);
        p = calloc(large[i] / 16, 16);
        CHECK(p != NULL && all_bytes_are(p, large[i], 0), "large calloc is zero after a dirty block of the same size");
        free(p);
    }
}

static void check_realloc(void) {
    char *p = realloc(NULL, 40);
    CHECK(p != NULL, "realloc(NULL, n) allocates");
    memset(p, 'r', 40);
    /* Grow through small, medium and large sizes, then shrink: bytes survive. */
    size_t size = 40;
    int kept = 1;
    while (size < ((size_t)8 << 20)) {
        size_t next = size * 3 + 5;
        p = realloc(p, next);
        if (!p || !all_bytes_are((unsigned char *)p, size, 'r')) kept = 0;
        if (!p) break;
        memset(p + size, 'r', next - size);
        size = next;
    }
    CHECK(kept, "growing realloc keeps the contents");
    while (p && size > 10) {
        size /= 7;
        p = realloc(p, size);
        if (!p || !all_bytes_are((unsigned char *)p, size, 'r')) kept = 0;
    }
    CHECK(kept, "shrinking realloc keeps the contents");
    /* glibc frees the block and returns NULL for realloc(p, 0). */
    errno = 0;
    void *q = realloc(p, 0);
    CHECK(q == NULL, "realloc(p, 0) frees p and returns NULL, as glibc does");
    CHECK(errno == 0, "realloc(p, 0) does not set errno");

    int *arr = reallocarray(NULL, 1000, sizeof(int));
    CHECK(arr != NULL, "reallocarray(NULL, n, size) allocates");
    for (int i = 0; i < 1000; i++) arr[i] = i;
    arr = reallocarray(arr, 100000, sizeof(int));
    int same = arr != NULL;
    for (int i = 0; same && i < 1000; i++) same = arr[i] == i;
    CHECK(same, "reallocarray keeps the contents");
    free(arr);
}

/* Many live blocks at once must not overlap: each carries its own pattern. */
static void check_no_overlap(void) {
    enum { N = 20000 };
    static unsigned char *blocks[N];
    for (int i = 0; i < N; i++) {
        size_t size = (size_t)(1 + (i * 37) % 700);
        blocks[i] = malloc(size);
        memset(blocks[i], i & 0xff, size);
    }
    int intact = 1;
    for (int i = 0; i < N; i++) {
        size_t size = (size_t)(1 + (i * 37) % 700);
        if (!all_bytes_are(blocks[i], size, (unsigned char)(i & 0xff))) intact = 0;
        free(blocks[i]);
    }
    CHECK(intact, "live blocks do not overlap");
}

/* glibc's internal names, which a few libraries call directly: a block from one name is
 * freed by the other, so both must be the same allocator's. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static void check_glibc_internal_names(void) {
    void *a = __libc_malloc(100);
    void *b = malloc(100);
    CHECK(a != NULL && b != NULL && malloc_usable_size(a) >= 100, "__libc_malloc serves blocks");
    a = __libc_realloc(a, 5000);
    CHECK(a != NULL && malloc_usable_size(a) >= 5000, "__libc_realloc resizes a block");
    free(a);
    __libc_free(b);
    unsigned char *z = __libc_calloc(10, 100);
    CHECK(z != NULL && all_bytes_are(z, 1000, 0), "__libc_calloc zeroes");
    free(z);
    void *m = __libc_memalign(4096, 100);
    CHECK(m != NULL && is_aligned(m, 4096), "__libc_memalign aligns");
    __libc_free(m);
}

static size_t resident_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* mallinfo2 counts the bytes in use; after the frees and malloc_trim their memory is back with
 * the OS (glibc gives it back as its heap's top shrinks on free, larder on the trim). */
static void check_mallinfo_and_trim(void) {
    enum { COUNT = 40000, SIZE = 1000 };
    static void *blocks[COUNT];
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < COUNT; i++) {
        blocks[i] = malloc(SIZE);
        if (blocks[i]) memset(blocks[i], 0x3c, SIZE);
    }
    struct mallinfo2 during = mallinfo2();
    CHECK(during.uordblks >= before.uordblks + (size_t)COUNT * SIZE,
          "mallinfo2 counts the bytes of live blocks");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations" /* programs still call it */
    CHECK(mallinfo().uordblks >= (int)(COUNT * SIZE), "mallinfo counts them too");
#pragma GCC diagnostic pop
    size_t held = resident_bytes();
    for (int i = 0; i < COUNT; i++) free(blocks[i]);
    CHECK(mallinfo2().uordblks + (size_t)COUNT * SIZE / 2 <= during.uordblks,
          "mallinfo2's bytes in use fall after the frees");
    int trimmed = malloc_trim(0);
    /* Check mode holds freed blocks in its quarantine (and LARDER_GUARD marks its runs):
     * there, nothing freed is free yet. */
    if (!getenv("LARDER_GUARD")) {
        CHECK(trimmed == 1, "malloc_trim says memory went back");
        CHECK(resident_bytes() + (size_t)COUNT * SIZE / 2 <= held,
              "malloc_trim gives the freed blocks' memory back to the OS");
    }
    malloc_stats();
}

int main(void) {
    check_glibc_internal_names();
    check_mallinfo_and_trim();
    check_malloc_zero_and_free_null();
    check_out_of_memory();
    check_posix_memalign_einval();
    check_alignments();
    check_page_allocations();
    check_malloc_alignment_and_usable_size();
    check_calloc_zero_after_reuse();
    check_realloc();
    check_no_overlap();
    return check_summary("api_semantics");
}
