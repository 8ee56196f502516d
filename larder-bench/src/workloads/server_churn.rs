//! Workload 1, server churn (after Larson and Krishnan's server benchmark).
//!
//! A shared array of blocks is cut into one slice per thread. In each round a fresh set of
//! threads starts, each takes a slice and replaces random entries with blocks of random size
//! (8 to 1000 bytes, uniform, as in the original). The slices rotate between rounds and the
//! threads of the previous round have exited, so most frees are of blocks that another, often
//! dead, thread made: the case where per-thread heaps must hand memory back across threads.

use super::block::{Block, Tally};
use super::sizes::scaled;
use super::{verdict, Outcome, Params};

const ROUNDS: u64 = 10;
const MIN_SIZE: usize = 8;
const MAX_SIZE: usize = 1000;

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let threads = params.threads;
    let slots = scaled(5000, params.scale.min(1.0), 64) as usize;
    let replacements = scaled(60_000, params.scale, 100);
    let mut rng = fastrand::Rng::with_seed(params.seed);
    let mut slices: Vec<Vec<Block>> = (0..threads)
        .map(|_| {
            (0..slots)
                .map(|_| Block::new(rng.usize(MIN_SIZE..=MAX_SIZE), rng.u64(..)))
                .collect()
        })
        .collect();
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        slices.rotate_left(1);
        let handles: Vec<(Vec<Block>, Tally)> = std::thread::scope(|scope| {
            let running: Vec<_> = slices
                .drain(..)
                .enumerate()
                .map(|(i, mut slice)| {
                    let seed = params.seed ^ (round << 32) ^ (i as u64 + 1);
                    scope.spawn(move || {
                        let mut rng = fastrand::Rng::with_seed(seed);
                        let mut tally = Tally::default();
                        for _ in 0..replacements {
                            let victim = rng.usize(..slice.len());
                            let fresh = Block::new(rng.usize(MIN_SIZE..=MAX_SIZE), rng.u64(..));
                            tally.check_and_free(std::mem::replace(&mut slice[victim], fresh));
                        }
                        (slice, tally)
                    })
                })
                .collect();
            running
                .into_iter()
                .map(|h| h.join().expect("churn thread panicked"))
                .collect()
        });
        for (slice, round_tally) in handles {
            slices.push(slice);
            tally.merge(round_tally);
        }
    }
    for block in slices.into_iter().flatten() {
        tally.check_and_free(block);
    }
    let initial = (threads * slots) as u64;
    let replaced = ROUNDS * threads as u64 * replacements;
    let outcome = Outcome {
        ops: initial + replaced,
        ..Outcome::default()
    };
    verdict(tally, replaced + initial, outcome)
}
