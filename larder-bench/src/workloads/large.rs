//! Workload 6, large blocks: sizes from 64 KiB to 32 MiB (log-uniform), each allocated, every
//! page of it written, and freed a few allocations later (a window of four live blocks per
//! thread). This is where an allocator's dealings with the kernel show: handing every freed
//! block straight back with `munmap`/`madvise` makes the next one fault its pages in again
//! (system time), while keeping everything costs resident memory.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, scaled};
use super::{verdict, Outcome, Params};
use std::collections::VecDeque;

const MIN_SIZE: usize = 64 << 10;
const MAX_SIZE: usize = 32 << 20;
const WINDOW: usize = 4;

fn one_thread(seed: u64, blocks: u64) -> Tally {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut live: VecDeque<Block> = VecDeque::with_capacity(WINDOW + 1);
    for _ in 0..blocks {
        let mut block = Block::new(log_uniform(&mut rng, MIN_SIZE, MAX_SIZE), rng.u64(..));
        block.touch_pages();
        live.push_back(block);
        if live.len() > WINDOW {
            tally.check_and_free(live.pop_front().expect("window is full"));
        }
    }
    for block in live {
        tally.check_and_free(block);
    }
    tally
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let blocks = scaled(300, params.scale, 4);
    let tallies: Vec<Tally> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..params.threads)
            .map(|t| {
                let seed = params.seed ^ (t as u64 + 1);
                scope.spawn(move || one_thread(seed, blocks))
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("large-block thread panicked"))
            .collect()
    });
    let mut tally = Tally::default();
    tallies.into_iter().for_each(|t| tally.merge(t));
    let made = params.threads as u64 * blocks;
    verdict(
        tally,
        made,
        Outcome {
            ops: made,
            ..Outcome::default()
        },
    )
}
