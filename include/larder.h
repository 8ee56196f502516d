/* larder.h: the C interface of liblarder.so and liblarder.a.
 *
 * larder replaces the C library's malloc. Preload it to run any dynamically
 * linked program on it without rebuilding:
 *
 *     LD_PRELOAD=/path/to/liblarder.so program args...
 *     larder run -- program args...          (the same, with a heap summary)
 *
 * or link it ahead of the C library: `cc prog.c -llarder` (shared) or with
 * liblarder.a and `-lpthread -ldl -lm -lgcc_s` (static).
 *
 * The malloc family keeps glibc's semantics, declared where C declares them
 * (<stdlib.h>, <malloc.h>):
 *   malloc, calloc, realloc, reallocarray, free, aligned_alloc,
 *   posix_memalign, memalign, valloc, pvalloc, malloc_usable_size, cfree,
 *   and glibc's internal names __libc_malloc, __libc_calloc, __libc_realloc,
 *   __libc_free, __libc_memalign, __libc_valloc, __libc_pvalloc.
 * glibc's introspection answers with larder's figures: mallinfo2 and mallinfo
 *   (arena: memory held; uordblks: bytes in live blocks; fordblks: the rest;
 *   the other fields 0), malloc_trim (every free page back to the OS now; 1
 *   when memory went back), malloc_stats (larder's report on stderr). mallopt
 *   stays glibc's: its settings have no meaning for larder.
 * - Failure is NULL with errno = ENOMEM: any size above PTRDIFF_MAX, calloc and
 *   reallocarray whose count * size overflows. A failed realloc leaves the old
 *   block as it was.
 * - malloc(0) returns a distinct pointer that free accepts; free(NULL) does
 *   nothing; realloc(NULL, n) is malloc(n); realloc(p, 0) frees p and returns
 *   NULL, as glibc's does.
 * - Results are 16-byte aligned (8-byte for blocks of 8 bytes or less).
 * - posix_memalign returns EINVAL for an alignment that is not a power of two
 *   multiple of sizeof(void *), ENOMEM when memory cannot be had, and writes
 *   *memptr only on success. memalign and aligned_alloc round an alignment
 *   that is not a power of two up to one, as glibc 2.36 does; valloc aligns to
 *   the page; pvalloc also rounds the size up to whole pages.
 * - calloc memory is zero; pages fresh from the OS are not written again.
 * - C++'s replaceable operator new and operator delete (plain and array, sized,
 *   aligned, nothrow) are exported too, so C++ programs reach larder without a
 *   hop through libstdc++. A failed new calls the new-handler and throws
 *   std::bad_alloc (nothrow: returns NULL) by handing over to the C++
 *   runtime's own operator, which allocates with this malloc.
 * - A pointer larder did not allocate (from before it was preloaded, or from
 *   another allocator) given to free, realloc or malloc_usable_size is left
 *   alone and reported once on stderr; realloc then returns NULL with ENOMEM
 *   and malloc_usable_size returns 0.
 *
 * Every function is safe from the first instruction of a process (no
 * allocation, lock or dlsym on the way in), in any thread, and in the child of
 * a fork() from a multithreaded parent.
 *
 * A double free, or a free or realloc of a pointer that is not a live block
 * (interior, misaligned, on the stack, a global, memory larder already gave
 * back), prints one line naming the class, the address and the block on
 * stderr, then aborts (SIGABRT) unless LARDER_ON_ERROR=warn.
 *
 * Environment (read once at start-up; an unknown LARDER_ variable or a bad
 * value is reported once on stderr and the default kept):
 *   LARDER_ON_ERROR=abort|warn      after a double or invalid free (abort)
 *   LARDER_PURGE_DELAY_MS=N         ms freed memory stays for reuse (200)
 *   LARDER_HUGE_PAGES=on|off        transparent huge pages for blocks of 2 MiB
 *                                   and more (off: sparse blocks stay small)
 *   LARDER_REPORT_FILE=PATH         an existing file each process appends its
 *                                   heap record to at exit (`larder run` reads
 *                                   it; format in larder-c/src/exit_report.rs)
 *   LARDER_CHECK_ERRORS=exit|continue  check mode: exit 23 at the first error
 *   LARDER_QUARANTINE=BYTES         check mode: freed bytes held back (64M)
 *   LARDER_GUARD=auto|all|off|1/N   check mode: blocks against guard pages
 *   LARDER_GUARD_BUDGET=BYTES       check mode: guarded memory before sampling
 *   LARDER_GUARD_SIDE=after|before  check mode: guard page after a block's end
 *                                   (overflows fault) or before its start
 *                                   (underflows fault) (after)
 *   LARDER_GUARD_ALIGN=c|exact      check mode: a block against its guard page
 *                                   aligned as C asks of malloc (c), or only as
 *                                   an object of its exact size needs (exact:
 *                                   every one-byte overflow read faults)
 *   LARDER_GUARD_MARKERS=on|off     check mode: guard pages made with Linux
 *                                   6.13's guard markers where the kernel has
 *                                   them (on), or a mapping per guarded block
 *                                   as on older kernels (off)
 *   LARDER_CHECK_VERBOSE=on|off     check mode: say on stderr at exit what guard
 *                                   pages covered, and with LARDER_REPORT_FILE
 *                                   set print the leak report there too (off;
 *                                   `larder run --check` prints both in its
 *                                   summary)
 *   LARDER_LEAKS=on|off             check mode: leak check at exit (on)
 *   LARDER_LEAKS_FAIL=on|off        check mode: exit status 23 when blocks were
 *                                   lost at exit, as LeakSanitizer does (off)
 *   LARDER_MISMATCH=on|off          check mode: report new/free, malloc/delete,
 *                                   new[]/delete mismatches (on)
 *   LARDER_FAIL=SPEC                fault injection (nth:N, every:N,
 *                                   prob:P[,seed:S], after-bytes:B,
 *                                   size-over:B, [,thread:main|other])
 *   LARDER_FAIL_LOG=on|off          print each injected failure
 *   LARDER_TIMELINE_MS=N            with LARDER_REPORT_FILE: a library thread
 *                                   appends live, committed bytes and RSS
 *                                   every N ms, for `larder run --plot`
 *                                   (format in larder-c/src/timeline.rs)
 *   LARDER_PROFILE=BYTES            heap profile: sample one allocation per
 *                                   BYTES on average (0: off), with its stack;
 *                                   sites written to LARDER_REPORT_FILE at exit
 *                                   (`larder run --profile` sets 512K; format
 *                                   in larder/src/check/profile.rs)
 * LARDER_FAIL, LARDER_FAIL_LOG and LARDER_PROFILE, like the check-mode
 * variables, are acted on by the check-mode library (liblarder_check.so)
 * only; with LARDER_PROFILE set its checks are off. */
#ifndef LARDER_H
#define LARDER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes larder's statistics, human-readable, to stderr: allocations, frees,
 * live and peak bytes, memory committed and reserved. It allocates nothing. */
void larder_stats_print(void);

/* Gives memory larder holds but does not use back to the OS now. With force
 * zero, memory freed very recently is kept for reuse (larder would return it
 * after a short delay anyway); with force non-zero, that is returned too. */
void larder_collect(int force);

/* The old name of free(), which glibc still exports but no longer declares. */
void cfree(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* LARDER_H */
