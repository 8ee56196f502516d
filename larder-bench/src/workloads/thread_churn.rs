//! Workload 9, thread churn: round after round, `threads` short-lived threads start, each
//! allocates a couple of thousand blocks, frees half of them itself and returns the other half
//! to the main thread, and exits. The main thread frees the returned blocks after their maker
//! is gone, so the allocator must cope with heaps whose owner has exited (abandoned memory),
//! and pays its per-thread set-up and tear-down costs every round.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, scaled};
use super::{verdict, Outcome, Params};

const BLOCKS_PER_THREAD: usize = 2000;

fn short_lived(seed: u64) -> (Vec<Block>, Tally) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut blocks: Vec<Block> = (0..BLOCKS_PER_THREAD)
        .map(|_| Block::new(log_uniform(&mut rng, 16, 2048), rng.u64(..)))
        .collect();
    let returned = blocks.split_off(BLOCKS_PER_THREAD / 2);
    for block in blocks {
        tally.check_and_free(block);
    }
    (returned, tally)
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let rounds = scaled(600, params.scale, 2);
    let mut tally = Tally::default();
    for round in 0..rounds {
        let handles: Vec<_> = (0..params.threads)
            .map(|t| {
                let seed = params.seed ^ (round << 20) ^ (t as u64 + 1);
                std::thread::spawn(move || short_lived(seed))
            })
            .collect();
        for handle in handles {
            let (returned, thread_tally) = handle.join().expect("short-lived thread panicked");
            tally.merge(thread_tally);
            for block in returned {
                tally.check_and_free(block);
            }
        }
    }
    let made = rounds * params.threads as u64 * BLOCKS_PER_THREAD as u64;
    verdict(
        tally,
        made,
        Outcome {
            ops: made,
            ..Outcome::default()
        },
    )
}
