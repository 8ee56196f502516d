//! Memory goes back to the OS: allocate 512 MiB in blocks of 1 KiB to 1 MiB, free it all,
//! collect: RSS (from /proc/self/statm) falls back to within 64 MiB of where it started. Also
//! without `collect`: the purger thread alone brings RSS down within a second while the program
//! sits idle.

use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
    pages * 4096
}

fn fill_and_free(total: usize) {
    let mut blocks = Vec::new();
    let mut allocated = 0;
    let mut size = 1024;
    while allocated < total {
        let mut v = vec![0u8; size];
        v[0] = 1;
        v[size - 1] = 1;
        for i in (0..size).step_by(4096) {
            v[i] = 1;
        }
        allocated += size;
        blocks.push(v);
        size = if size >= 1 << 20 {
            1024
        } else {
            size * 2 + 512
        };
    }
    let peak = rss();
    assert!(peak >= total / 2, "blocks were not resident: {peak}");
    drop(blocks);
}

#[test]
fn rss_falls_after_free() {
    // One test function: the two phases share a process and must not overlap.
    let start = rss();
    fill_and_free(512 << 20);
    larder::collect(true);
    let after = rss();
    assert!(
        after <= start + (64 << 20),
        "RSS after collect: {} MiB (start {} MiB)",
        after >> 20,
        start >> 20
    );

    let start = rss();
    fill_and_free(256 << 20);
    let freed_at = Instant::now();
    let mut fell = None;
    while freed_at.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
        if rss() <= start + (64 << 20) {
            fell = Some(freed_at.elapsed());
            break;
        }
    }
    let fell = fell.unwrap_or_else(|| panic!("RSS stayed at {} MiB while idle", rss() >> 20));
    assert!(fell <= Duration::from_secs(1), "RSS took {fell:?} to fall");
}
