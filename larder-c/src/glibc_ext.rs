//! glibc's heap-introspection extensions, answered with larder's figures: `mallinfo2`,
//! `mallinfo` (and its internal name `__libc_mallinfo`), `malloc_trim` and `malloc_stats`.
//!
//! Without these a preloaded larder would leave the program glibc's own, which describe
//! glibc's arenas: empty ones, since larder serves every block. Servers that log `mallinfo`
//! and programs that call `malloc_trim` after a burst then get nothing. The fields larder has
//! no counterpart for (glibc's fastbins, free chunk counts, mmap'd chunks) are 0; `arena`
//! is the memory larder holds (committed), `uordblks` the bytes in live blocks, `fordblks`
//! the rest of it. `mallopt` is not replaced: its knobs are glibc's, and glibc's own answers
//! for an arena it does not use harm nothing.

use crate::backend as raw;

/// Memory held, bytes in live blocks, and free bytes held: what the `mallinfo` structs report.
fn heap_figures() -> (usize, usize, usize) {
    let s = raw::stats();
    let held = s.committed_bytes as usize;
    let live = s.live_bytes as usize;
    (held, live, held.saturating_sub(live))
}

/// `mallinfo2`: larder's figures in glibc's structure.
#[no_mangle]
pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
    let (held, live, free) = heap_figures();
    // SAFETY: the structure is plain integers, for which all-zero is a value (glibc's "none").
    let mut info: libc::mallinfo2 = unsafe { core::mem::zeroed() };
    (info.arena, info.uordblks, info.fordblks) = (held, live, free);
    info
}

/// `mallinfo`: as [`mallinfo2`], each figure clamped to an `int` (glibc's wraps around).
#[no_mangle]
pub extern "C" fn mallinfo() -> libc::mallinfo {
    let (held, live, free) = heap_figures();
    let int = |v: usize| v.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: as in `mallinfo2`.
    let mut info: libc::mallinfo = unsafe { core::mem::zeroed() };
    (info.arena, info.uordblks, info.fordblks) = (int(held), int(live), int(free));
    info
}

/// `__libc_mallinfo`: glibc's internal name of [`mallinfo`].
#[no_mangle]
pub extern "C" fn __libc_mallinfo() -> libc::mallinfo {
    mallinfo()
}

/// `malloc_trim(pad)`: gives every free page back to the OS now, whatever the purge delay (the
/// pad, glibc's slack to keep at the top of its heap, has no counterpart). 1 when memory went
/// back, as glibc answers.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> libc::c_int {
    let before = raw::stats().committed_bytes;
    larder_core::collect(true);
    libc::c_int::from(raw::stats().committed_bytes < before)
}

/// `malloc_stats()`: larder's report on stderr, where glibc prints its own.
#[no_mangle]
pub extern "C" fn malloc_stats() {
    raw::write_stats(libc::STDERR_FILENO);
}
