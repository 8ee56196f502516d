//! `larder::Checked` as a Rust program's global allocator: a use after free in
//! unsafe code is found. (The leak of an `Rc` cycle is not yet: in a test
//! binary something the mark takes as a root still reaches it.) The bug runs
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
