//! Workload 4, small-object churn: sizes from 8 B to 1 KiB (log-uniform, so most are small),
//! first allocated in batches and freed in LIFO order, then replaced at random positions of a
//! live set. It is a single-threaded pattern: each thread runs its own independent copy, so more
//! threads test that the fast path does not share anything between them.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, scaled};
use super::{verdict, Outcome, Params};

const MIN_SIZE: usize = 8;
const MAX_SIZE: usize = 1024;
const BATCH: usize = 1000;
const LIVE_SET: usize = 10_000;

fn one_thread(seed: u64, lifo_batches: u64, random_replacements: u64) -> (Tally, u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut ops = 0;
    let mut batch: Vec<Block> = Vec::with_capacity(BATCH);
    for _ in 0..lifo_batches {
        for _ in 0..BATCH {
            batch.push(Block::new(
                log_uniform(&mut rng, MIN_SIZE, MAX_SIZE),
                rng.u64(..),
            ));
        }
        ops += BATCH as u64;
        while let Some(block) = batch.pop() {
            tally.check_and_free(block);
        }
    }
    let mut live: Vec<Block> = (0..LIVE_SET)
        .map(|_| Block::new(log_uniform(&mut rng, MIN_SIZE, MAX_SIZE), rng.u64(..)))
        .collect();
    ops += LIVE_SET as u64;
    for _ in 0..random_replacements {
        let slot = rng.usize(..LIVE_SET);
        let fresh = Block::new(log_uniform(&mut rng, MIN_SIZE, MAX_SIZE), rng.u64(..));
        tally.check_and_free(std::mem::replace(&mut live[slot], fresh));
    }
    ops += random_replacements;
    for block in live {
        tally.check_and_free(block);
    }
    (tally, ops)
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let lifo_batches = scaled(1500, params.scale, 1);
    let random_replacements = scaled(1_500_000, params.scale, 100);
    let results: Vec<(Tally, u64)> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..params.threads)
            .map(|t| {
                let seed = params.seed ^ (t as u64 + 1);
                scope.spawn(move || one_thread(seed, lifo_batches, random_replacements))
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("churn thread panicked"))
            .collect()
    });
    let mut tally = Tally::default();
    let mut ops = 0;
    for (t, o) in results {
        tally.merge(t);
        ops += o;
    }
    verdict(
        tally,
        ops,
        Outcome {
            ops,
            ..Outcome::default()
        },
    )
}
