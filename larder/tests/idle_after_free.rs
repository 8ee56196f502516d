//! A program whose last act is freeing gets its memory back (issue 13): one thread allocates
//! 128 MiB of 512 B - 4 KiB blocks (into a vector made big enough first, so that nothing is freed
//! while it fills: a free that dirties memory then would start the purger before the test
//! begins), frees them all and stops calling the allocator; RSS must fall within 2 s. Before the
//! frees could start the purger it stayed up for as long as the program lived.

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

/// The resident set size, read without allocating (open/read into a stack buffer).
fn rss() -> usize {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path; `buf` is valid for its length; the descriptor is closed.
    let read = unsafe {
        let fd = libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY);
        assert!(fd >= 0);
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let pages = buf[..read.max(0) as usize]
        .split(|&b| b == b' ')
        .nth(1)
        .expect("statm has a second field")
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0usize, |n, &d| n * 10 + usize::from(d - b'0'));
    pages * 4096
}

#[test]
fn rss_falls_when_the_last_call_is_a_free() {
    const TOTAL: usize = 128 << 20;
    let start = rss();
    let mut blocks: Vec<Vec<u8>> = Vec::with_capacity(TOTAL / 512 + 1);
    let mut allocated = 0;
    let mut size = 512;
    while allocated < TOTAL {
        blocks.push(vec![1u8; size]);
        allocated += size;
        size = if size >= 4096 { 512 } else { size + 448 };
    }
    let peak = rss();
    assert!(
        peak >= start + TOTAL / 2,
        "blocks were not resident: {peak}"
    );
    // The vector's own buffer goes too: after this, not one allocator call.
    drop(blocks);
    let freed_at = Instant::now();
    let mut fell_after = None;
    while freed_at.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(50));
        if rss() < start + (20 << 20) {
            fell_after = Some(freed_at.elapsed());
            break;
        }
    }
    assert!(
        fell_after.is_some(),
        "RSS still {} MiB 2 s after the last free (start {} MiB, peak {} MiB)",
        rss() >> 20,
        start >> 20,
        peak >> 20
    );
}
