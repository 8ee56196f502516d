//! `larder::Checked` as a Rust program's global allocator: a use after free in
//! unsafe code is found, and so is an `Rc` cycle whose owners dropped it
//! (reference counting never frees it; the conservative mark does not reach it). The bug runs
//! in a child process (this test binary run again with `CHECKED_CHILD` set),
//! since check mode ends the process with status 23 at its first error.

use std::process::Command;

#[global_allocator]
static GLOBAL: larder::Checked = larder::Checked;

fn run_child(test: &str) -> (i32, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("CHECKED_CHILD", "1")
        .output()
        .expect("the test binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn is_child() -> bool {
    std::env::var_os("CHECKED_CHILD").is_some()
}

#[inline(never)]
fn write_through_dangling_pointer() {
    let boxed = Box::new([7u8; 48]);
    let raw = Box::into_raw(boxed);
    // SAFETY: deliberately not: the box is freed, then written through (the bug under test).
    unsafe {
        drop(Box::from_raw(raw));
        std::ptr::write_volatile(raw.cast::<u8>().add(5), 1);
    }
    larder::check::at_exit();
}

#[test]
fn use_after_free_child() {
    if is_child() {
        write_through_dangling_pointer();
    }
}

#[test]
fn a_use_after_free_in_unsafe_code_is_found() {
    let (status, stderr) = run_child("use_after_free_child");
    assert_eq!(status, 23, "{stderr}");
    assert!(stderr.contains("ERROR: use-after-free"), "{stderr}");
    assert!(stderr.contains("bad byte at offset 5"), "{stderr}");
}

/// Two nodes that hold each other: reference counting never frees them.
struct Node {
    _payload: [u64; 8],
    other: std::cell::RefCell<Option<std::rc::Rc<Node>>>,
}

#[inline(never)]
fn make_and_drop_a_cycle() {
    let a = std::rc::Rc::new(Node {
        _payload: [1; 8],
        other: std::cell::RefCell::new(None),
    });
    let b = std::rc::Rc::new(Node {
        _payload: [2; 8],
        other: std::cell::RefCell::new(Some(a.clone())),
    });
    *a.other.borrow_mut() = Some(b.clone());
    // Both handles go; each node keeps the other's count at one.
    drop(a);
    drop(b);
}

/// Overwrites the stack below the caller's frame. The check's own frames, which the mark reads
/// as roots, reuse the region `make_and_drop_a_cycle` left, and a slot they never write would
/// still hold a node's address (without this the cycle reads as still reachable: conservative
/// marking, as LeakSanitizer's, cannot tell a stale copy from a live pointer).
#[inline(never)]
fn scrub_the_stack() {
    let buffer = [0u8; 4096];
    std::hint::black_box(&buffer);
}

#[test]
fn rc_cycle_child() {
    if is_child() {
        make_and_drop_a_cycle();
        scrub_the_stack();
        larder::check::at_exit();
    }
}

#[test]
fn a_dropped_rc_cycle_is_a_leak() {
    let (status, stderr) = run_child("rc_cycle_child");
    // One node is reachable from nothing, the other only from it. (Frames are symbolised by
    // `larder run --check`, not in the library's own report.)
    assert!(
        stderr
            .contains("definitely lost 96 bytes in 1 blocks; indirectly lost 96 bytes in 1 blocks"),
        "status {status}: {stderr}"
    );
}
