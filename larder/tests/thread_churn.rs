//! Thread churn: thousands of short-lived threads allocate and exit; their memory is reclaimed
//! rather than growing with the thread count.

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

/// These tests compare process-wide figures before and after: they must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn churn(threads: usize, keep: bool) -> Vec<Vec<u8>> {
    let mut kept = Vec::new();
    for batch in 0..threads / 50 {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut blocks: Vec<Vec<u8>> =
                        (0..200).map(|j| vec![(i + j) as u8; 16 + j * 8]).collect();
                    blocks.retain(|b| b.len() % 3 == 0);
                    if keep {
                        blocks.truncate(1);
                        blocks
                    } else {
                        Vec::new()
                    }
                })
            })
            .collect();
        for h in handles {
            kept.extend(h.join().unwrap());
        }
        let _ = batch;
    }
    kept
}

#[test]
fn two_thousand_threads_do_not_grow_the_heap() {
    let _serial = serial();
    let _ = churn(200, false);
    larder::collect(true);
    let warm = larder::stats();
    let _ = churn(2000, false);
    larder::collect(true);
    let after = larder::stats();
    assert!(
        after.segments <= warm.segments + 4,
        "segments grew with thread count: {} -> {}",
        warm.segments,
        after.segments
    );
    assert!(
        after.committed_bytes <= warm.committed_bytes + (8 << 20),
        "committed grew: {} -> {}",
        warm.committed_bytes,
        after.committed_bytes
    );
    assert!(after.heaps <= warm.heaps + 2, "{after:?}");
}

#[test]
fn blocks_outliving_their_thread_are_freed_and_reclaimed() {
    let _serial = serial();
    let kept = churn(1000, true);
    assert_eq!(kept.len(), 1000);
    for (i, b) in kept.iter().enumerate() {
        assert!(b.iter().all(|&x| x == b[0]), "block {i} corrupted");
    }
    drop(kept);
    larder::collect(true);
    let s = larder::stats();
    assert_eq!(s.abandoned_segments, 0, "{s:?}");
}

#[test]
fn a_thousand_live_threads_each_holding_a_little() {
    let _serial = serial();
    use std::sync::{Arc, Barrier};
    let threads = 1000;
    let before = larder::stats();
    let barrier = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let barrier = barrier.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let held: Box<[u8]> =
                        std::hint::black_box(vec![i as u8; 100].into_boxed_slice());
                    barrier.wait(); // all threads alive, each holding its block
                    barrier.wait();
                    assert!(held.iter().all(|&b| b == i as u8));
                })
                .unwrap()
        })
        .collect();
    barrier.wait();
    let during = larder::stats();
    barrier.wait();
    for h in handles {
        h.join().unwrap();
    }
    let per_thread = (during.committed_bytes - before.committed_bytes.min(during.committed_bytes))
        / threads as u64;
    // A thread's first page and its share of a segment header: about 70 KiB committed (the
    // page is counted whole; only the touched part is resident).
    assert!(
        per_thread <= 96 * 1024,
        "{per_thread} bytes committed per thread"
    );
    larder::collect(true);
    let after = larder::stats();
    assert!(after.heaps <= before.heaps + 2, "{after:?}");
    assert!(after.segments <= before.segments + 4, "{after:?}");
}

#[test]
fn a_forked_child_of_a_threaded_parent_can_allocate() {
    let _serial = serial();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v: Vec<u64> = (0..64).map(|i| i + t).collect();
                    n += v[63];
                }
                n
            })
        })
        .collect();
    for _ in 0..20 {
        // SAFETY: the child only allocates, checks and calls _exit; it never returns into the
        // test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let v: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
            let ok = v[9_999] == "9999";
            drop(v);
            let big = vec![1u8; 8 << 20];
            let ok = ok && big[(8 << 20) - 1] == 1;
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
}
