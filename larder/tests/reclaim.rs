//! Which abandoned segments a heap reclaims. One test in its own binary: these checks count
//! abandoned segments, which any other thread that exits (another test's) would change.

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

#[test]
fn reclaim_takes_what_the_heap_needs() {
    a_small_block_does_not_reclaim_a_medium_segment();
    a_heap_with_free_pages_reclaims_no_more_segments();
    a_segment_emptied_by_other_threads_is_released();
    a_heap_that_frees_into_an_abandoned_segment_reclaims_it();
    a_segment_reclaimed_on_free_is_released_once_emptied();
}

/// Starts a thread that allocates one block of each size in `sizes`, keeps them, and exits, so
/// that its segments are abandoned with live blocks. Returns the blocks (as addresses).
fn abandon_blocks(sizes: &'static [usize]) -> Vec<(usize, usize)> {
    std::thread::spawn(move || {
        sizes
            .iter()
            .map(|&n| {
                (
                    Box::into_raw(vec![7u8; n].into_boxed_slice()) as *mut u8 as usize,
                    n,
                )
            })
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap()
}

fn free_blocks(blocks: Vec<(usize, usize)>) {
    for (addr, n) in blocks {
        // SAFETY: each address came from `Box::into_raw` of a boxed slice of `n` bytes.
        let b = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(addr as *mut u8, n)) };
        assert!(b.iter().all(|&x| x == 7));
    }
}

fn a_small_block_does_not_reclaim_a_medium_segment() {
    larder::collect(true);
    // 100 B lives in a small segment, 20 KiB in a medium one.
    let blocks = abandon_blocks(&[100, 20 << 10]);
    let abandoned = larder::stats().abandoned_segments;
    assert!(abandoned >= 2, "{abandoned}");
    let left = std::thread::spawn(|| {
        let b = std::hint::black_box(vec![1u8; 100]);
        let left = larder::stats().abandoned_segments;
        drop(b);
        left
    })
    .join()
    .unwrap();
    // Taking the medium segment as well would give that thread memory it cannot use.
    assert_eq!(left, abandoned - 1);
    free_blocks(blocks);
    larder::collect(true);
}

fn a_heap_with_free_pages_reclaims_no_more_segments() {
    larder::collect(true);
    // Two threads alive at once, so that neither reclaims the other's segment.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let spawn = |barrier: std::sync::Arc<std::sync::Barrier>| {
        std::thread::spawn(move || {
            let block = Box::into_raw(vec![7u8; 100].into_boxed_slice()) as *mut u8 as usize;
            barrier.wait();
            vec![(block, 100)]
        })
    };
    let (a, b) = (spawn(barrier.clone()), spawn(barrier));
    let first = a.join().unwrap();
    let second = b.join().unwrap();
    let abandoned = larder::stats().abandoned_segments;
    assert!(abandoned >= 2, "{abandoned}");
    let left = std::thread::spawn(|| {
        // Blocks of many sizes: bins the reclaimed segment has no page for.
        let blocks: Vec<Vec<u8>> = (1..=64).map(|i| vec![1u8; i * 100]).collect();
        let left = larder::stats().abandoned_segments;
        drop(blocks);
        left
    })
    .join()
    .unwrap();
    // One segment with free pages serves every bin; taking the others would leave nothing for
    // the threads that need pages next, and they would create segments.
    assert_eq!(left, abandoned - 1);
    free_blocks(first);
    free_blocks(second);
    larder::collect(true);
}

fn a_segment_emptied_by_other_threads_is_released() {
    larder::collect(true);
    let before = larder::stats();
    let sizes: &'static [usize] = &[100; 1000];
    let blocks = abandon_blocks(sizes);
    // A small segment, and a medium one for the returned list of blocks.
    assert!(larder::stats().abandoned_segments > before.abandoned_segments);
    // Remote frees: this thread's heap does not reclaim the segment.
    free_blocks(blocks);
    // The purger's work once the segment has been abandoned for the purge delay, done now
    // without reclaiming (`collect(true)` would reclaim).
    std::thread::sleep(std::time::Duration::from_millis(300));
    larder::collect(false);
    let after = larder::stats();
    assert_eq!(
        after.abandoned_segments, before.abandoned_segments,
        "{after:?}"
    );
    assert_eq!(after.segments, before.segments, "{after:?}");
}

/// Frees, from a thread that owns a segment of its own (so that its first allocation has
/// nothing to reclaim and it may reclaim one segment on free), the blocks that another thread
/// allocated in `sizes` and left behind when it exited. Returns `larder::stats()` as the
/// freeing thread saw it before and after.
fn free_abandoned_blocks_from_a_thread(sizes: &'static [usize]) -> (larder::Stats, larder::Stats) {
    larder::collect(true);
    let (to_freer, blocks_rx) = std::sync::mpsc::channel::<Vec<(usize, usize)>>();
    let (counts_tx, counts) = std::sync::mpsc::channel();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let freer = std::thread::spawn(move || {
        let mine = std::hint::black_box(vec![1u8; 100]);
        ready_tx.send(()).unwrap();
        let blocks = blocks_rx.recv().unwrap();
        let before = larder::stats();
        free_blocks(blocks);
        counts_tx.send((before, larder::stats())).unwrap();
        drop(mine);
    });
    ready.recv().unwrap();
    to_freer.send(abandon_blocks(sizes)).unwrap();
    let counts = counts.recv().unwrap();
    freer.join().unwrap();
    larder::collect(true);
    counts
}

fn a_heap_that_frees_into_an_abandoned_segment_reclaims_it() {
    let (before, after) = free_abandoned_blocks_from_a_thread(&[100; 100]);
    assert!(before.abandoned_segments >= 1, "{before:?}");
    // The exited thread's small segment is the freeing thread's now: its blocks were freed as
    // local frees, ready for that thread's next allocations, instead of waiting on the
    // segment's remote lists for a reclaim or the purger.
    assert_eq!(after.abandoned_segments, before.abandoned_segments - 1);
}

fn a_segment_reclaimed_on_free_is_released_once_emptied() {
    // Sizes in bins the freeing heap has no page in: each page is alone in its bin once
    // reclaimed, and was kept when emptied, so the segment stayed in use with nothing live.
    let (before, after) = free_abandoned_blocks_from_a_thread(&[200, 400, 700, 1500, 3000, 6000]);
    assert_eq!(after.abandoned_segments + 1, before.abandoned_segments);
    assert_eq!(after.segments + 1, before.segments, "{before:?} {after:?}");
}
