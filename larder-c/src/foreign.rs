//! Pointers larder did not allocate: memory from before the library was
//! preloaded, from the dynamic loader's own allocator, from another allocator
//! a program links. The core's `free` and `realloc` report them and leave them
//! alone; its `usable_size` answers 0 for them without a word, so the shim's
//! `malloc_usable_size` reports them here. The first one is reported on
//! stderr, the rest silently, so that a program that does this in a loop does
//! not flood its own error output.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::line::Line;

static REPORTED: AtomicBool = AtomicBool::new(false);

/// Reports, once per process, that `function` was given `ptr`, which larder
/// does not own, and left it alone.
#[cold]
#[inline(never)]
pub fn report(function: &[u8], ptr: *const u8) {
    if REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut line = Line::<160>::new();
    line.push(b"larder: ")
        .push(function)
        .push(b"() was given ")
        .push_hex(ptr as usize)
        .push(b", which larder did not allocate; it is left alone (reported once)\n");
    line.write_to(libc::STDERR_FILENO);
}
