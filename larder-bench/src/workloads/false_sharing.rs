//! Workload 3, false sharing (after Hoard's cache-scratch test).
//!
//! The main thread allocates one small object per worker, back to back (so they share cache
//! lines, as they would with any allocator), and hands them out. Each worker writes its object
//! in a tight loop, frees it, and then, many times over, allocates an object of the same size,
//! writes it in a tight loop and frees it. An allocator that gives a worker back the block it
//! just freed, which sits on a cache line beside the other workers' blocks, makes every one of
//! those later writes fight over that line; one that serves each thread from its own pages does
//! not. With one thread nothing can be shared; the workload is meant for two or more.

use super::block::{Block, Tally};
use super::sizes::scaled;
use super::{verdict, Outcome, Params};
use std::sync::Barrier;

/// Object size: two 8-byte stamps around the 8 bytes that are written.
const OBJECT: usize = 24;
const WRITES: u64 = 20_000;

/// Writes the middle word of `object` `WRITES` times, then checks that the last write stuck.
fn hammer(object: &mut Block) -> bool {
    // SAFETY: bytes 8..16 of a 24-byte block lie between its stamps and belong to it.
    let word = unsafe { object.as_mut_ptr().add(8) }.cast::<u64>();
    for i in 0..WRITES {
        // SAFETY: `word` is in bounds and 8-aligned (blocks are 8-aligned); volatile keeps the
        // loop from collapsing into one store.
        unsafe { word.write_volatile(i) };
    }
    // SAFETY: as above.
    unsafe { word.read_volatile() == WRITES - 1 }
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let threads = params.threads;
    let iterations = scaled(1000, params.scale, 2);
    let handed_out: Vec<Block> = (0..threads)
        .map(|i| Block::new(OBJECT, i as u64 + 1))
        .collect();
    let start = Barrier::new(threads);
    let (tally, bad_writes) = std::thread::scope(|scope| {
        let start = &start;
        let running: Vec<_> = handed_out
            .into_iter()
            .map(|mut first| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    let mut bad_writes = 0u64;
                    start.wait();
                    bad_writes += u64::from(!hammer(&mut first));
                    tally.check_and_free(first);
                    for i in 0..iterations {
                        let mut own = Block::new(OBJECT, i);
                        bad_writes += u64::from(!hammer(&mut own));
                        tally.check_and_free(own);
                    }
                    (tally, bad_writes)
                })
            })
            .collect();
        let mut total = (Tally::default(), 0u64);
        for handle in running {
            let (tally, bad) = handle.join().expect("writer panicked");
            total.0.merge(tally);
            total.1 += bad;
        }
        total
    });
    if bad_writes != 0 {
        return Err(format!("{bad_writes} objects lost a write"));
    }
    let objects = threads as u64 * (iterations + 1);
    let mut outcome = Outcome {
        ops: objects,
        ..Outcome::default()
    };
    outcome
        .metrics
        .push(("writes".into(), (objects * WRITES) as f64));
    verdict(tally, objects, outcome)
}
