//! Cross-thread frees: producers allocate and fill blocks, consumers check and free them (every
//! free is remote), through bounded channels.

use std::sync::mpsc::sync_channel;

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

/// These tests compare process-wide figures before and after: they must not overlap.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const BLOCKS: usize = 1_000_000;
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;

fn payload(id: usize) -> Vec<u64> {
    let len = 1 + (id * 7919) % 40;
    (0..len as u64).map(|i| i ^ id as u64).collect()
}

#[test]
fn producers_allocate_consumers_free() {
    let _serial = serial();
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..CONSUMERS {
        let (tx, rx) = sync_channel::<(usize, Vec<u64>)>(1024);
        senders.push(tx);
        consumers.push(std::thread::spawn(move || {
            let mut count = 0usize;
            for (id, block) in rx {
                assert_eq!(block, payload(id), "block {id} corrupted in transit");
                count += 1;
            }
            count
        }));
    }
    let per = BLOCKS / PRODUCERS;
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let senders = senders.clone();
            std::thread::spawn(move || {
                for i in 0..per {
                    let id = p * per + i;
                    senders[id % CONSUMERS].send((id, payload(id))).unwrap();
                }
            })
        })
        .collect();
    drop(senders);
    for p in producers {
        p.join().unwrap();
    }
    let received: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(received, BLOCKS);
    let s = larder::stats();
    assert!(s.free_count >= BLOCKS as u64, "{s:?}");
}

#[test]
fn blocks_freed_by_a_thread_that_never_allocates() {
    let _serial = serial();
    let blocks: Vec<Box<[u64; 16]>> = (0..100_000).map(|i| Box::new([i as u64; 16])).collect();
    let before = larder::stats();
    let raw: Vec<usize> = blocks
        .into_iter()
        .map(|b| Box::into_raw(b) as usize)
        .collect();
    std::thread::spawn(move || {
        for (i, p) in raw.into_iter().enumerate() {
            // SAFETY: each pointer came from Box::into_raw and is freed once.
            let b = unsafe { Box::from_raw(p as *mut [u64; 16]) };
            assert_eq!(b[15], i as u64);
        }
    })
    .join()
    .unwrap();
    let after = larder::stats();
    assert!(after.free_count >= before.free_count + 100_000);
    assert!(
        after.live_bytes + 100_000 * 128 <= before.live_bytes + 4096,
        "{after:?}"
    );
    // The owner collects the remote frees: allocating again reuses that memory.
    let committed = after.committed_bytes;
    let again: Vec<Box<[u64; 16]>> = (0..100_000).map(|i| Box::new([i as u64; 16])).collect();
    let s = larder::stats();
    assert!(
        s.committed_bytes <= committed + (1 << 20),
        "{s:?} vs {committed}"
    );
    drop(again);
}

/// `count` blocks of `layout`, as addresses.
fn alloc_blocks(layout: std::alloc::Layout, count: usize) -> Vec<usize> {
    // SAFETY: the layout has a non-zero size; callers free every block.
    let blocks: Vec<usize> = (0..count)
        .map(|_| unsafe { std::alloc::alloc(layout) } as usize)
        .collect();
    assert!(blocks.iter().all(|&p| p != 0));
    blocks
}

/// Frees blocks of `layout` given as addresses.
fn free_blocks(blocks: Vec<usize>, layout: std::alloc::Layout) {
    for p in blocks {
        // SAFETY: allocated with this layout by `alloc_blocks`, freed once, here.
        unsafe { std::alloc::dealloc(p as *mut u8, layout) };
    }
}

/// How many of `first` (freed by another thread) the owner gets back among four times as many
/// new blocks: it carves what is left of its free list first, then collects the page's
/// cross-thread frees.
fn reused_by_owner(first: &[usize], layout: std::alloc::Layout) -> usize {
    let again = alloc_blocks(layout, 4 * first.len());
    let reused = first.iter().filter(|p| again.contains(p)).count();
    free_blocks(again, layout);
    reused
}

/// A thread holds back the blocks it frees into another thread's page (one chain per size
/// class) and hands them over when it exits: the owner then gets the very same blocks back. A
/// chain lost at exit would leave them used forever, and the owner would carve new ones.
#[test]
fn blocks_held_back_by_a_freeing_thread_reach_their_owner_when_it_exits() {
    let _serial = serial();
    // A size no other test here uses, and fewer blocks than a chain holds.
    let layout = std::alloc::Layout::from_size_align(2900, 8).unwrap();
    let first = alloc_blocks(layout, 12);
    let handed = first.clone();
    std::thread::spawn(move || {
        // A thread that allocates has a heap of its own (one that never does frees directly).
        let own = std::hint::black_box(vec![1u8; 100]);
        free_blocks(handed, layout);
        drop(own);
    })
    .join()
    .unwrap();
    let reused = reused_by_owner(&first, layout);
    assert_eq!(reused, first.len(), "blocks never came back to their owner");
}

/// A thread that freed blocks of another thread's page and stays alive hands its held-back
/// chains over in its next allocation slow path, not only when it exits.
#[test]
fn a_freeing_thread_that_lives_on_hands_its_chains_over_when_it_allocates() {
    let _serial = serial();
    let layout = std::alloc::Layout::from_size_align(2700, 8).unwrap();
    let first = alloc_blocks(layout, 12);
    let handed = first.clone();
    let (freed_tx, freed_rx) = sync_channel::<()>(0);
    let (done_tx, done_rx) = sync_channel::<()>(0);
    let freer = std::thread::spawn(move || {
        let own = std::hint::black_box(vec![1u8; 100]);
        free_blocks(handed, layout);
        // Blocks of a size this thread has no page for: its slow path runs.
        let fresh: Vec<Box<[u8; 5000]>> = (0..4).map(|_| Box::new([7u8; 5000])).collect();
        freed_tx.send(()).unwrap();
        done_rx.recv().unwrap();
        drop((own, fresh));
    });
    freed_rx.recv().unwrap();
    let reused = reused_by_owner(&first, layout);
    done_tx.send(()).unwrap();
    freer.join().unwrap();
    assert_eq!(
        reused,
        first.len(),
        "a live thread kept blocks from their owner"
    );
}
