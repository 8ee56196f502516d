//! Workload 3, false sharing (after Hoard's cache-scratch test).
//!
//! The main thread allocates one small object per worker, back to back (so they share cache
//! lines, as they would with any allocator), and hands them out. Each worker writes its object
//! in a tight loop, frees it, and then, many times over, allocates an object of the same size,
//! writes it in a tight loop and frees it. An allocator that gives a worker back the block it
//! just freed, which sits on a cache line beside the other workers' blocks, makes every one of
//! those later writes fight over that line; one that serves each thread from its own pages does
//! not. With one thread nothing can be shared; the workload is meant for two or more.
//!
//! The time penalty needs two physical cores (two hyperthreads of one core share their L1 cache
//! and feel nothing), so the workload also reports a figure that does not depend on the
//! hardware: the share of the workers' objects that sat on a cache line which another worker's
//! object also used during the run.

use super::block::{Block, Tally};
use super::sizes::scaled;
use super::{verdict, Outcome, Params};
use std::collections::HashMap;
use std::sync::Barrier;

/// Object size: two 8-byte stamps around the 8 bytes that are written.
const OBJECT: usize = 24;
const WRITES: u64 = 100_000;
const CACHE_LINE: usize = 64;

/// Increments the middle word of `object` `WRITES` times (a read-modify-write, like a counter,
/// so each write waits for the cache line), then checks the count.
fn hammer(object: &mut Block) -> bool {
    // SAFETY: bytes 8..16 of a 24-byte block lie between its stamps and belong to it.
    let word = unsafe { object.as_mut_ptr().add(8) }.cast::<u64>();
    // SAFETY: `word` is in bounds and 8-aligned (blocks are 8-aligned); volatile accesses keep
    // the loop from collapsing into one store.
    unsafe {
        word.write_volatile(0);
        for _ in 0..WRITES {
            word.write_volatile(word.read_volatile() + 1);
        }
        word.read_volatile() == WRITES
    }
}

/// What one worker did: its tally, objects that lost a write, and its objects' addresses.
type WorkerReport = (Tally, u64, Vec<usize>);

fn worker(mut first: Block, iterations: u64, start: &Barrier) -> WorkerReport {
    let mut tally = Tally::default();
    let mut bad_writes = 0u64;
    // Reserved up front: growing it mid-run would allocate between the frees and allocations
    // under test and change what the allocator hands out.
    let mut addresses = Vec::with_capacity(iterations as usize + 1);
    start.wait();
    addresses.push(first.as_mut_ptr() as usize);
    bad_writes += u64::from(!hammer(&mut first));
    tally.check_and_free(first);
    for i in 0..iterations {
        let mut own = Block::new(OBJECT, i);
        addresses.push(own.as_mut_ptr() as usize);
        bad_writes += u64::from(!hammer(&mut own));
        tally.check_and_free(own);
    }
    (tally, bad_writes, addresses)
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let threads = params.threads;
    let iterations = scaled(1000, params.scale, 2);
    let handed_out: Vec<Block> = (0..threads)
        .map(|i| Block::new(OBJECT, i as u64 + 1))
        .collect();
    let start = Barrier::new(threads);
    let reports: Vec<WorkerReport> = std::thread::scope(|scope| {
        let start = &start;
        let running: Vec<_> = handed_out
            .into_iter()
            .map(|first| scope.spawn(move || worker(first, iterations, start)))
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("writer panicked"))
            .collect()
    });
    let mut tally = Tally::default();
    let mut bad_writes = 0;
    let mut addresses = Vec::new();
    for (t, bad, a) in reports {
        tally.merge(t);
        bad_writes += bad;
        addresses.push(a);
    }
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
    outcome
        .metrics
        .push(("shared_line_pct".into(), 100.0 * shared_share(&addresses)));
    verdict(tally, objects, outcome)
}

fn lines_of(address: usize) -> [usize; 2] {
    [address / CACHE_LINE, (address + OBJECT - 1) / CACHE_LINE]
}

/// The share of objects (given per thread, by address) that touched a cache line some other
/// thread's object also touched.
fn shared_share(per_thread: &[Vec<usize>]) -> f64 {
    const SEVERAL: usize = usize::MAX;
    let mut users: HashMap<usize, usize> = HashMap::new(); // line -> its one thread, or SEVERAL
    for (thread, addresses) in per_thread.iter().enumerate() {
        for line in addresses.iter().flat_map(|&a| lines_of(a)) {
            let user = users.entry(line).or_insert(thread);
            if *user != thread {
                *user = SEVERAL;
            }
        }
    }
    let objects: usize = per_thread.iter().map(Vec::len).sum();
    let shared = per_thread
        .iter()
        .flatten()
        .filter(|&&a| lines_of(a).iter().any(|line| users[line] == SEVERAL))
        .count();
    shared as f64 / objects.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_on_a_line_used_by_another_thread_count_as_shared() {
        // Thread 0 reuses address 0; thread 1 uses 32 (same line) and then 4096 (its own).
        assert_eq!(shared_share(&[vec![0, 0], vec![32, 4096]]), 0.75);
        assert_eq!(shared_share(&[vec![0, 0], vec![128, 128]]), 0.0);
        // 56..80 straddles lines 0 and 1: it shares line 1 with 64.
        assert_eq!(shared_share(&[vec![56], vec![64]]), 1.0);
    }
}
