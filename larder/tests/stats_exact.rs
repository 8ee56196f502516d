//! `stats()` is exact for what the calling thread did and for exited threads, although the fast
//! paths count nothing but each page's own fields (pages are counted when refilled, emptied,
//! abandoned, or when `stats()` asks). One test only, so no other test thread allocates between
//! two snapshots.

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

const BLOCK: usize = 48;

fn boxes(count: usize) -> impl Iterator<Item = Box<[u8; BLOCK]>> {
    (0..count).map(|i| Box::new([i as u8; BLOCK]))
}

#[test]
fn counts_are_exact_for_this_thread_and_exited_threads() {
    // The vectors holding the boxes are allocated up front, so between two snapshots only the
    // boxes themselves come and go.
    let mut mine = Vec::with_capacity(5_000);
    let mut theirs: Vec<Box<[u8; BLOCK]>> = Vec::with_capacity(3_000);
    let mut kept = Vec::with_capacity(5_000);

    // Frees start larder's purger thread, and starting a thread allocates: have it started.
    drop(boxes(5_000).collect::<Vec<_>>());
    std::thread::sleep(std::time::Duration::from_millis(50));

    let before = larder::stats();
    mine.extend(boxes(5_000));
    let after_alloc = larder::stats();
    assert_eq!(after_alloc.alloc_count - before.alloc_count, 5_000);
    assert_eq!(after_alloc.free_count - before.free_count, 0);
    assert_eq!(after_alloc.live_blocks - before.live_blocks, 5_000);
    assert_eq!(
        after_alloc.live_bytes - before.live_bytes,
        5_000 * BLOCK as u64
    );

    // Frees scattered over many pages: none of them is refilled or emptied.
    for (i, b) in mine.drain(..).enumerate() {
        if i % 3 == 0 {
            drop(b);
        } else {
            kept.push(b);
        }
    }
    let after_free = larder::stats();
    assert_eq!(after_free.alloc_count - after_alloc.alloc_count, 0);
    assert_eq!(after_free.free_count - after_alloc.free_count, 1_667);
    assert_eq!(
        after_alloc.live_bytes - after_free.live_bytes,
        1_667 * BLOCK as u64
    );

    // Blocks made by a thread that exits, then freed here (remote frees into an abandoned
    // segment): the exited thread's counts retired with it, exactly.
    let made = std::thread::spawn(|| boxes(3_000).collect::<Vec<_>>())
        .join()
        .expect("thread");
    let after_thread = larder::stats();
    assert!(after_thread.alloc_count - after_free.alloc_count >= 3_001);
    theirs.extend(made);
    let before_remote = larder::stats();
    theirs.clear();
    let after_remote = larder::stats();
    assert_eq!(after_remote.free_count - before_remote.free_count, 3_000);
    assert_eq!(
        after_remote.alloc_count - before_remote.alloc_count,
        0,
        "no allocation between the two snapshots"
    );

    for (i, b) in kept.iter().enumerate() {
        assert!(b.iter().all(|&x| x == b[0]), "block {i} changed");
    }
}
