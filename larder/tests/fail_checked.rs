//! `LARDER_FAIL` on Rust's global allocator (`larder::Checked`): the test binary runs itself
//! as a child with the variable set, since the options are read once per process.

use std::process::{Command, Output};

#[global_allocator]
static GLOBAL: larder::Checked = larder::Checked;

/// Set in the child runs; not a LARDER_ variable, which the options table would flag.
const CHILD: &str = "FAIL_CHECKED_CHILD";

fn run_child(test: &str, spec: &str) -> Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("LARDER_FAIL", spec)
        .env("LARDER_FAIL_LOG", "on")
        .env("LARDER_QUARANTINE", "0")
        .env("LARDER_GUARD", "off")
        .env("LARDER_LEAKS", "off")
        .output()
        .expect("the test binary runs")
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// In the child: with `size-over:1M`, a 2 MiB `try_reserve` fails with an error, small
/// allocations go on, and then `vec!` of 2 MiB ends in `handle_alloc_error`.
#[test]
fn child_large_allocations_fail() {
    if !in_child() {
        return;
    }
    let mut v: Vec<u8> = Vec::new();
    assert!(
        v.try_reserve_exact(2 << 20).is_err(),
        "2 MiB was not refused"
    );
    let small = vec![7u8; 1 << 19];
    println!("small allocation ok: {}", small.len());
    let big = vec![1u8; 2 << 20];
    println!("unreachable: {}", big.len());
}

#[test]
fn size_over_fails_the_large_allocations_only() {
    if in_child() {
        return;
    }
    let output = run_child("child_large_allocations_fail", "size-over:1M");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stdout.contains("small allocation ok: 524288"),
        "{stdout}\n{stderr}"
    );
    assert!(!stdout.contains("unreachable"), "{stdout}");
    // std's handle_alloc_error prints this and aborts.
    assert!(
        stderr.contains("memory allocation of 2097152 bytes failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("larder: injected failure: allocation #")
            && stderr.contains(" of 2097152 bytes returns NULL"),
        "{stderr}"
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");
}

/// In the child: allocations counted from here are numbered; with `every:1` all fail, so the
/// first `try_reserve` after start-up fails.
#[test]
fn child_every_allocation_fails() {
    if !in_child() {
        return;
    }
    let mut v: Vec<u64> = Vec::new();
    let refused = v.try_reserve(10).is_err();
    // No allocation may happen before this line is written: print from a fixed buffer.
    let line: &[u8] = if refused { b"refused\n" } else { b"granted\n" };
    // SAFETY: the buffer is valid for its length.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    std::process::exit(0);
}

#[test]
fn a_typo_in_the_spec_ends_the_process_naming_the_word() {
    if in_child() {
        return;
    }
    let output = run_child("child_every_allocation_fails", "evry:1");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("LARDER_FAIL: bad word 'evry:1'"),
        "{stderr}"
    );
}
