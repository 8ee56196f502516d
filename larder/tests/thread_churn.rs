//! Thread churn: thousands of short-lived threads allocate and exit; their memory is reclaimed
//! rather than growing with the thread count.

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

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
