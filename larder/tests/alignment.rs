//! Alignment matrix (every power of two from 1 to 1 MiB × sizes around it, and larger
//! alignments), zero-size requests, and requests that cannot be satisfied.

// These tests drive the raw allocator API directly. Every unsafe call below follows one rule,
// stated once here instead of at each call: a pointer is used only while the test's own
// bookkeeping (the `live` list or the local variable) holds it as a live block of the layout it
// was allocated with, within that layout's size, and it is freed exactly once.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout};

use larder::Larder;

#[global_allocator]
static GLOBAL: Larder = Larder;

#[test]
fn every_power_of_two_alignment_with_sizes_around_it() {
    let a = Larder;
    for shift in 0..=20 {
        let align = 1usize << shift;
        let mut sizes = vec![1, 7, 8, 9, 100, 1000, 4096, 70_000, 300_000];
        sizes.extend([
            align.saturating_sub(1).max(1),
            align,
            align + 1,
            3 * align / 2 + 1,
        ]);
        for &size in &sizes {
            let layout = Layout::from_size_align(size, align).unwrap();
            let mut held = Vec::new();
            for _ in 0..3 {
                let p = unsafe { a.alloc(layout) };
                assert!(!p.is_null(), "size {size} align {align}");
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                let usable = unsafe { larder::usable_size(p) };
                assert!(usable >= size, "usable {usable} < {size}");
                // Waste is bounded by the alignment plus the class spacing (1/8).
                assert!(
                    usable <= size + align + size / 8 + 64 * 1024,
                    "size {size} align {align}: usable {usable}"
                );
                unsafe {
                    p.write_bytes(0x5A, size);
                    *p.add(size - 1) = 0xA5;
                }
                held.push(p);
            }
            for p in held {
                unsafe {
                    assert_eq!(*p.add(size - 1), 0xA5);
                    a.dealloc(p, layout);
                }
            }
        }
    }
}

#[test]
fn alignments_beyond_a_segment() {
    let a = Larder;
    for shift in 21..=25 {
        let layout = Layout::from_size_align(12345, 1 << shift).unwrap();
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        assert_eq!(p as usize % layout.align(), 0);
        unsafe {
            p.write_bytes(1, 12345);
            assert!(larder::usable_size(p) >= 12345);
            a.dealloc(p, layout);
        }
    }
}

#[test]
fn zero_size_requests_give_distinct_freeable_blocks() {
    let a = Larder;
    let layout = Layout::from_size_align(0, 1).unwrap();
    let p = unsafe { a.alloc(layout) };
    let q = unsafe { a.alloc(layout) };
    assert!(!p.is_null() && !q.is_null());
    assert_ne!(p, q);
    unsafe {
        a.dealloc(p, layout);
        a.dealloc(q, layout);
    }
}

#[test]
fn impossible_requests_return_null() {
    let a = Larder;
    for size in [
        isize::MAX as usize,
        isize::MAX as usize - 4095,
        1 << 62,
        1 << 50,
    ] {
        for align in [1, 16, 4096, 1 << 20] {
            if let Ok(layout) = Layout::from_size_align(size, align) {
                assert!(
                    unsafe { a.alloc(layout) }.is_null(),
                    "size {size} align {align}"
                );
                assert!(unsafe { a.alloc_zeroed(layout) }.is_null());
            }
        }
    }
    // A failed realloc leaves the block intact.
    let layout = Layout::from_size_align(100, 8).unwrap();
    let p = unsafe { a.alloc(layout) };
    unsafe {
        p.write_bytes(9, 100);
        assert!(a.realloc(p, layout, isize::MAX as usize - 100).is_null());
        assert_eq!(*p.add(99), 9);
        a.dealloc(p, layout);
    }
}

#[test]
fn zeroed_allocations_are_zero_even_after_reuse() {
    let a = Larder;
    for size in [8, 24, 100, 1000, 5000, 60_000, 200_000, 3 << 20] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        for _ in 0..4 {
            let p = unsafe { a.alloc(layout) };
            unsafe {
                p.write_bytes(0xFF, size);
                a.dealloc(p, layout);
            }
            let z = unsafe { a.alloc_zeroed(layout) };
            let all_zero = (0..size).all(|i| unsafe { *z.add(i) } == 0);
            assert!(all_zero, "alloc_zeroed({size}) returned dirty memory");
            unsafe { z.write_bytes(0xEE, size) };
            unsafe { a.dealloc(z, layout) };
        }
    }
}

#[test]
fn realloc_grows_in_place_when_the_class_has_room() {
    let a = Larder;
    let layout = Layout::from_size_align(100, 8).unwrap();
    let p = unsafe { a.alloc(layout) };
    let usable = unsafe { larder::usable_size(p) };
    let q = unsafe { a.realloc(p, layout, usable) };
    assert_eq!(p, q, "growth within the class moved the block");
    unsafe { a.dealloc(q, Layout::from_size_align(usable, 8).unwrap()) };
    // A large block grows into its span's slack or the address space after it.
    let big = Layout::from_size_align(1 << 20, 8).unwrap();
    let p = unsafe { a.alloc(big) };
    let q = unsafe { a.realloc(p, big, (1 << 20) + 1000) };
    assert_eq!(p, q, "a large block moved to grow by 1000 bytes");
    unsafe { a.dealloc(q, Layout::from_size_align((1 << 20) + 1000, 8).unwrap()) };
}

/// Maps one page at `addr` if nobody has it (so that a span ending there cannot grow in place).
fn occupy_page_at(addr: usize) -> Option<*mut u8> {
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
            -1,
            0,
        )
    };
    (p as usize == addr).then_some(p.cast())
}

#[test]
fn realloc_moves_large_blocks_whose_address_space_is_taken() {
    const CHUNK: usize = 4 << 20;
    let a = Larder;
    // A large block (span cached on free) and a huge one (mapped for itself).
    for size in [3 << 20, 80 << 20] {
        let layout = Layout::from_size_align(size, 64).unwrap();
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null());
        let words = size / 8;
        for i in (0..words).step_by(509) {
            unsafe { p.cast::<u64>().add(i).write(i as u64 ^ 0x5eed) };
        }
        // Take the page right after the block's span (a page-rounded end), so it must move.
        let usable = unsafe { larder::usable_size(p) };
        let end = (p as usize + usable).next_multiple_of(4096);
        let blocker = occupy_page_at(end);
        if let Some(b) = blocker {
            unsafe { b.write_bytes(0xb1, 4096) };
        }
        let q = unsafe { a.realloc(p, layout, 2 * size + 12345) };
        assert!(!q.is_null());
        if blocker.is_some() {
            assert_ne!(p, q, "the block grew into a page mapped by someone else");
        }
        assert_eq!(
            q as usize % CHUNK,
            p as usize % CHUNK,
            "the block's offset in its segment"
        );
        assert!(unsafe { larder::usable_size(q) } >= 2 * size + 12345);
        for i in (0..words).step_by(509) {
            assert_eq!(
                unsafe { q.cast::<u64>().add(i).read() },
                i as u64 ^ 0x5eed,
                "word {i}"
            );
        }
        // The grown part is writable, and the blocker was left alone.
        unsafe { q.add(2 * size + 12344).write(7) };
        if let Some(b) = blocker {
            assert!((0..4096).all(|i| unsafe { b.add(i).read() } == 0xb1));
            unsafe { libc::munmap(b.cast(), 4096) };
        }
        unsafe { a.dealloc(q, Layout::from_size_align(2 * size + 12345, 64).unwrap()) };
    }
}

#[test]
fn foreign_pointers_are_not_ours() {
    let on_stack = 5u64;
    assert!(!larder::raw::owns(&on_stack as *const u64 as *const u8));
    assert_eq!(
        unsafe { larder::usable_size(&on_stack as *const u64 as *const u8) },
        0
    );
    // Anonymous memory larder did not map (another allocator's, say): a free of it is
    // reported once and ignored.
    // SAFETY: a fresh private anonymous mapping of one page, unmapped below.
    let mapped = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(mapped, libc::MAP_FAILED);
    unsafe { mapped.cast::<u8>().write_bytes(7, 4096) };
    unsafe { larder::raw::free(mapped.cast::<u8>().add(64)) };
    assert!((0..4096).all(|i| unsafe { *mapped.cast::<u8>().add(i) } == 7));
    unsafe { libc::munmap(mapped, 4096) };
    let b = Box::new(1u64);
    assert!(larder::raw::owns(&*b as *const u64 as *const u8));
}

/// Runs `body` in a child process (this test binary, running only the test `name`) with
/// `LARDER_ON_ERROR=warn`, so that the bad frees it makes on purpose are reported and ignored
/// rather than aborting; the test passes when the child's does.
fn with_errors_ignored(name: &str, body: impl FnOnce()) {
    if std::env::var_os("LARDER_ON_ERROR").is_some() {
        body();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1"])
        .env("LARDER_ON_ERROR", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} in a child with LARDER_ON_ERROR=warn: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_double_free_aborts_by_default() {
    use std::os::unix::process::ExitStatusExt;
    if std::env::var_os("DOUBLE_FREE_CHILD").is_some() {
        let p = unsafe { Larder.alloc(Layout::from_size_align(48, 8).unwrap()) };
        unsafe {
            larder::raw::free(p);
            larder::raw::free(p);
        }
        return; // not reached: the second free aborts
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_double_free_aborts_by_default",
            "--test-threads=1",
        ])
        .env("DOUBLE_FREE_CHILD", "1")
        .env_remove("LARDER_ON_ERROR")
        .output()
        .unwrap();
    assert_eq!(output.status.signal(), Some(libc::SIGABRT));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("larder: error: double-free: free("),
        "{stderr}"
    );
}

#[test]
fn interior_pointers_and_dead_spans_are_refused() {
    with_errors_ignored(
        "interior_pointers_and_dead_spans_are_refused",
        interior_pointers_and_dead_spans_are_left_alone,
    );
}

fn interior_pointers_and_dead_spans_are_left_alone() {
    let a = Larder;
    for size in [64usize, 5000, 100_000] {
        let layout = Layout::from_size_align(size, 8).unwrap();
        let p = unsafe { a.alloc(layout) };
        unsafe { p.write_bytes(3, size) };
        // An interior pointer is reported and ignored: the block stays intact and allocated.
        unsafe { larder::raw::free(p.add(8)) };
        let q = unsafe { a.alloc(layout) };
        assert_ne!(p, q, "an interior free released the block");
        assert!((0..size).all(|i| unsafe { *p.add(i) } == 3));
        unsafe {
            a.dealloc(q, layout);
            a.dealloc(p, layout);
        }
    }
    // A large block's span goes to the cache when freed; a second free of it is refused.
    let layout = Layout::from_size_align(300_000, 8).unwrap();
    let p = unsafe { a.alloc(layout) };
    unsafe {
        a.dealloc(p, layout);
        larder::raw::free(p);
    }
    let q = unsafe { a.alloc(layout) };
    let r = unsafe { a.alloc(layout) };
    assert_ne!(
        q, r,
        "a double free of a large block handed its span out twice"
    );
    unsafe {
        a.dealloc(q, layout);
        a.dealloc(r, layout);
    }
}
