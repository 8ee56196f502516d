//! Model-checks larder's cross-thread free list (`src/remote.rs`) with loom: the real functions,
//! run on loom's atomics, under the interleavings loom explores (all of them up to its preemption
//! bound, `LOOM_MAX_PREEMPTIONS`, 3 unless set; see `spawn_remotes` for the one gap in loom's
//! exploration this harness works around).
//!
//! What a model stands for: a page of a few blocks (its `thread_free` word and its heap word), the
//! owner's heap (its `delayed_free` list), remote threads that free blocks of the page, and the
//! owner. The owner's steps follow `heap.rs` (`move_to_full`, `unfull`, `process_delayed`,
//! `abandon`) and `page.rs` (`Page::collect`), calling the same `remote.rs` functions they call.
//! The page's word carries its list's length with the list: every list the owner takes must be
//! exactly as long as the word said, and a word with no list must count none. Each block
//! carries a payload the freeing thread wrote last, in a loom cell: a free that does not publish
//! the block to the owner (release on push, acquire on take) is a causality violation when the
//! owner reads it. The heap's liveness is a loom cell too: a remote free that reads the heap
//! without the owner's teardown being ordered after it is reported the same way.
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test --release -p larder
//! --test loom_remote` (scripts/test.sh does).
#![cfg(loom)]

use std::cell::UnsafeCell as StdUnsafeCell;
use std::ptr;

use larder::loom_model::{
    count_of, free_remote_chain_on, head_of, set_delayed_state_on, take_delayed_on,
    take_thread_free_on, Block, DelayedFree, DELAYED_FREEING, NEVER_DELAYED, NORMAL, STATE_MASK,
    USE_DELAYED,
};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

/// A block as a program uses it: larder's link word while the block is free, then bytes the
/// program wrote before freeing it.
#[repr(C)]
struct ModelBlock {
    link: Block,
    payload: UnsafeCell<u64>,
}

/// The owner's heap, as far as remote frees see it.
struct ModelHeap {
    delayed_free: AtomicPtr<Block>,
    /// False once the owner has torn the heap down (after abandoning its pages).
    alive: UnsafeCell<bool>,
}

impl DelayedFree for ModelHeap {
    type List = AtomicPtr<Block>;

    fn delayed_free(&self) -> &AtomicPtr<Block> {
        // SAFETY: loom checks that this read and the owner's teardown write are ordered.
        let alive = self.alive.with(|alive| unsafe { *alive });
        assert!(
            alive,
            "a remote free used the heap after the owner tore it down"
        );
        &self.delayed_free
    }
}

/// One page of `blocks.len()` blocks and the heap that owns it.
struct World {
    thread_free: AtomicUsize,
    heap_word: AtomicPtr<ModelHeap>,
    heap: ModelHeap,
    blocks: Box<[StdUnsafeCell<ModelBlock>]>,
}

// SAFETY: the blocks are shared as larder shares them: a block is written by one thread at a
// time, and handed from thread to thread only through the atomics under test (which is what the
// payload cells check); everything else in the world is a loom atomic or a loom cell.
unsafe impl Sync for World {}
// SAFETY: as above.
unsafe impl Send for World {}

impl World {
    /// A page of `count` live blocks in `state`, owned by a live heap.
    fn new(count: usize, state: usize) -> Arc<World> {
        let blocks = (0..count)
            .map(|_| {
                StdUnsafeCell::new(ModelBlock {
                    link: Block {
                        next: ptr::null_mut(),
                    },
                    payload: UnsafeCell::new(0),
                })
            })
            .collect();
        let world = Arc::new(World {
            thread_free: AtomicUsize::new(state),
            heap_word: AtomicPtr::new(ptr::null_mut()),
            heap: ModelHeap {
                delayed_free: AtomicPtr::new(ptr::null_mut()),
                alive: UnsafeCell::new(true),
            },
            blocks,
        });
        // The Arc's contents do not move, so the heap's address stays valid as long as it does.
        let heap = &world.heap as *const ModelHeap as *mut ModelHeap;
        world.heap_word.store(heap, Ordering::Relaxed);
        world
    }

    fn index_of(&self, block: *mut Block) -> usize {
        let first = self.blocks.as_ptr() as usize;
        let size = std::mem::size_of::<StdUnsafeCell<ModelBlock>>();
        let offset = (block as usize)
            .checked_sub(first)
            .expect("a list holds a pointer below the page");
        assert_eq!(offset % size, 0, "a list holds a pointer inside a block");
        let index = offset / size;
        assert!(
            index < self.blocks.len(),
            "a list holds a pointer past the page"
        );
        index
    }

    /// What a remote thread does: writes to each block a last time, links them into a chain
    /// (as a thread's held-back chain in `remote.rs` does), then frees the chain at once. One
    /// block is a chain of one, as `free_remote` frees it.
    fn free_remote(&self, indices: &[usize]) {
        let blocks: Vec<*mut ModelBlock> = indices.iter().map(|&i| self.blocks[i].get()).collect();
        for (&index, &block) in indices.iter().zip(&blocks) {
            // SAFETY: the block is live and this thread's to use until it frees it.
            unsafe { (*block).payload.with_mut(|p| *p = payload(index)) };
        }
        for pair in blocks.windows(2) {
            // SAFETY: the blocks are this thread's until the chain is freed.
            unsafe { (*pair[0]).link.next = pair[1].cast() };
        }
        let (first, last) = (blocks[0].cast(), blocks[blocks.len() - 1].cast());
        let len = blocks.len() as u32;
        // SAFETY: the blocks are live blocks of this page, linked first to last, and the heap
        // stays alive while the page is not NEVER_DELAYED (the protocol under test;
        // `ModelHeap` checks it).
        unsafe { free_remote_chain_on(&self.thread_free, &self.heap_word, first, last, len) };
    }

    /// What the owner does with a list it took: walks it and reuses each block, appending
    /// the blocks' indices to `taken`.
    fn reuse_list(&self, mut block: *mut Block, taken: &mut Vec<usize>) {
        while !block.is_null() {
            let index = self.index_of(block);
            assert!(
                taken.len() <= self.blocks.len(),
                "a list is longer than the page (a cycle)"
            );
            taken.push(index);
            let cell = self.blocks[index].get();
            // SAFETY: taking the list made its blocks the owner's; loom checks that the
            // payload write of the freeing thread happened before this read.
            unsafe {
                let seen = (*cell).payload.with(|p| *p);
                assert_eq!(seen, payload(index), "the owner saw a stale block");
                block = (*cell).link.next;
            }
        }
    }

    /// The owner collecting its page's remote frees (`Page::collect`'s atomic part): the list
    /// it takes is as long as the count taken with it, which is what `Page::collect` trusts
    /// instead of walking the list.
    fn collect(&self, taken: &mut Vec<usize>) {
        // SAFETY: the calling thread plays the page's owner.
        let (list, count) = unsafe { take_thread_free_on(&self.thread_free) };
        let before = taken.len();
        self.reuse_list(list, taken);
        assert_eq!(
            taken.len() - before,
            count as usize,
            "the count taken with a list is not its length"
        );
    }

    /// The owner processing its heap's delayed list (`heap.rs`'s `process_delayed`).
    fn process_delayed(&self, taken: &mut Vec<usize>) {
        let list = take_delayed_on(&self.heap.delayed_free);
        self.reuse_list(list, taken);
    }

    fn state(&self) -> usize {
        self.thread_free.load(Ordering::Relaxed) & STATE_MASK
    }

    fn page_list_is_empty(&self) -> bool {
        let word = self.thread_free.load(Ordering::Relaxed);
        let empty = head_of(word).is_null();
        assert_eq!(
            empty,
            count_of(word) == 0,
            "a page's word counts blocks it has no list for, or none it has"
        );
        empty
    }

    fn delayed_list_is_empty(&self) -> bool {
        self.heap.delayed_free.load(Ordering::Relaxed).is_null()
    }
}

/// What the program wrote into block `index` before freeing it.
fn payload(index: usize) -> u64 {
    0xB10C_0000 + index as u64
}

/// Each block freed once is taken exactly once.
fn assert_each_taken_once(mut taken: Vec<usize>, count: usize) {
    taken.sort_unstable();
    assert_eq!(
        taken,
        (0..count).collect::<Vec<_>>(),
        "blocks lost or taken twice"
    );
}

/// Explores `model` under loom, bounding preemptions at 3 unless `LOOM_MAX_PREEMPTIONS` says.
fn check(model: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(model);
}

/// Spawns one remote thread per group, each freeing its group's blocks in order, one by one or
/// (`chained`) as one chain.
///
/// Each thread first makes a no-op read-modify-write on the two words it pushes to. Loom 0.7's
/// DPOR remembers only the last access to each atomic, so a thread whose first access to a word
/// is a load (as a push's is: load, then compare-exchange) is never scheduled ahead of another
/// thread's plain load of that word (tokio-rs/loom#392): the owner would never find anything on
/// a list before the remote threads end. The no-op changes no value and, being relaxed, orders
/// nothing; it only makes loom see that these threads touch the words.
fn spawn_remotes(
    world: &Arc<World>,
    groups: &[&[usize]],
    chained: bool,
) -> Vec<thread::JoinHandle<()>> {
    groups
        .iter()
        .map(|group| {
            let world = Arc::clone(world);
            let group = group.to_vec();
            thread::spawn(move || {
                world.thread_free.fetch_add(0, Ordering::Relaxed);
                let _ = world.heap.delayed_free.fetch_update(
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                    Some,
                );
                if chained {
                    world.free_remote(&group);
                } else {
                    for index in group {
                        world.free_remote(&[index]);
                    }
                }
            })
        })
        .collect()
}

/// Two threads free two blocks each while the owner collects twice: every block reaches the
/// owner exactly once, with the bytes its last user wrote, and the state bits survive.
#[test]
fn remote_frees_race_with_the_owner_collecting() {
    frees_race_with_the_owner_collecting(false);
}

/// The same with each thread's two blocks freed as one chain.
#[test]
fn remote_chains_race_with_the_owner_collecting() {
    frees_race_with_the_owner_collecting(true);
}

fn frees_race_with_the_owner_collecting(chained: bool) {
    check(move || {
        let world = World::new(4, NORMAL);
        let remotes = spawn_remotes(&world, &[&[0, 1], &[2, 3]], chained);
        let mut taken = Vec::new();
        world.collect(&mut taken);
        world.collect(&mut taken);
        for remote in remotes {
            remote.join().unwrap();
        }
        world.collect(&mut taken);
        assert!(
            world.page_list_is_empty(),
            "blocks or a count left on the page's list"
        );
        assert_each_taken_once(taken, 4);
        assert_eq!(world.state(), NORMAL);
        assert!(
            world.delayed_list_is_empty(),
            "a NORMAL page notified its heap"
        );
    });
}

/// The owner moves its page to the full list (`heap.rs`'s `move_to_full`: set `USE_DELAYED`,
/// then look once more at the page's list) and then runs its slow path's `process_delayed`,
/// while two threads free a block each. A block handed over through the delayed list arrives
/// with the bytes its last user wrote, and the page is not left full with a block the owner will
/// never look at: if it stays full, a block on its list is preceded by a notice on the heap's
/// delayed list.
#[test]
fn a_page_moved_to_the_full_list_is_not_stranded() {
    full_page_is_not_stranded(&[&[0], &[1]], false);
}

/// The same with one thread freeing a chain of two blocks and another a single block: the
/// chain's notice carries both blocks to the heap.
#[test]
fn a_chain_freed_into_a_full_page_is_not_stranded() {
    full_page_is_not_stranded(&[&[0, 1], &[2]], true);
}

fn full_page_is_not_stranded(groups: &'static [&'static [usize]], chained: bool) {
    let count = groups.iter().map(|g| g.len()).sum();
    check(move || {
        let world = World::new(count, NORMAL);
        let remotes = spawn_remotes(&world, groups, chained);
        let mut taken = Vec::new();
        set_delayed_state_on(&world.thread_free, USE_DELAYED, false);
        let mut full = true;
        if !world.page_list_is_empty() {
            // A free raced with the state change: take the page back (`unfull`).
            set_delayed_state_on(&world.thread_free, NORMAL, false);
            full = false;
        }
        world.process_delayed(&mut taken);
        if full && !taken.is_empty() {
            // A block of a full page came back: the page leaves the full list (`unfull`).
            set_delayed_state_on(&world.thread_free, NORMAL, false);
            full = false;
        }
        for remote in remotes {
            remote.join().unwrap();
        }
        assert_ne!(
            world.state(),
            DELAYED_FREEING,
            "a remote free left its notice open"
        );
        if full {
            assert!(
                world.page_list_is_empty() || !world.delayed_list_is_empty(),
                "a full page holds a freed block and its heap was never told"
            );
        }
        // The owner's next slow path: the delayed list, then (the page unfulled) its list.
        world.process_delayed(&mut taken);
        set_delayed_state_on(&world.thread_free, NORMAL, false);
        world.collect(&mut taken);
        assert!(
            world.page_list_is_empty(),
            "blocks or a count left on the page's list"
        );
        assert_each_taken_once(taken, count);
    });
}

/// The owner marks its page full (`USE_DELAYED`) and then abandons its heap (`NEVER_DELAYED`,
/// then the delayed list, then the page's list, then the heap is torn down) while two threads
/// free a block each. The owner never gets past `NEVER_DELAYED` while a remote free is notifying
/// the heap, no remote free touches the heap after the teardown, and each block ends up taken
/// by the owner or left on the page's list for a reclaimer, exactly once: none on the dead
/// heap's delayed list.
#[test]
fn abandoning_waits_for_remote_frees_notifying_the_heap() {
    check(|| {
        let world = World::new(2, NORMAL);
        let remotes = spawn_remotes(&world, &[&[0], &[1]], false);
        set_delayed_state_on(&world.thread_free, USE_DELAYED, false);
        set_delayed_state_on(&world.thread_free, NEVER_DELAYED, true);
        assert_eq!(
            world.state(),
            NEVER_DELAYED,
            "the owner went on while a remote free was notifying the heap"
        );
        let mut taken = Vec::new();
        world.process_delayed(&mut taken);
        world.collect(&mut taken);
        world.heap_word.store(ptr::null_mut(), Ordering::Release);
        // SAFETY: loom checks that every remote read of the heap is ordered before this.
        world.heap.alive.with_mut(|alive| unsafe { *alive = false });
        for remote in remotes {
            remote.join().unwrap();
        }
        assert_eq!(
            world.state(),
            NEVER_DELAYED,
            "NEVER_DELAYED was overwritten"
        );
        assert!(
            world.delayed_list_is_empty(),
            "a block went to the delayed list of a heap that had abandoned the page"
        );
        // A reclaimer takes what was freed after the owner left.
        world.collect(&mut taken);
        assert!(
            world.page_list_is_empty(),
            "blocks or a count left on the page's list"
        );
        assert_each_taken_once(taken, 2);
    });
}

/// `free_remote`'s branch for a notice with no heap to receive it: the block stays on the
/// page's list and the state goes back to `NORMAL`. (Larder sets `USE_DELAYED` only on pages
/// that have a heap, and abandoning waits out notices, so this branch is a safety net.)
#[test]
fn a_notifying_free_without_a_heap_keeps_the_block_on_the_page() {
    check(|| {
        let world = World::new(2, USE_DELAYED);
        world.heap_word.store(ptr::null_mut(), Ordering::Relaxed);
        let remotes = spawn_remotes(&world, &[&[0], &[1]], false);
        let mut taken = Vec::new();
        world.collect(&mut taken);
        for remote in remotes {
            remote.join().unwrap();
        }
        world.collect(&mut taken);
        assert!(
            world.page_list_is_empty(),
            "blocks or a count left on the page's list"
        );
        assert_each_taken_once(taken, 2);
        assert_eq!(world.state(), NORMAL);
        assert!(world.delayed_list_is_empty());
    });
}
