//! Workload 2, producer → consumer: one set of threads allocates, another frees, so every free
//! is remote. Blocks travel in batches (the batch's own vector travels too) through bounded
//! channels, one per consumer, so producers cannot run far ahead of the consumers.
//!
//! Threads split into `max(1, threads / 2)` producers and the rest consumers (at least one):
//! with one thread there are still two, a producer and a consumer.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, scaled};
use super::{verdict, Outcome, Params};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

const BATCH: usize = 256;
const QUEUE_BATCHES: usize = 8;

/// One consumer's queue of batches.
type Queue = (SyncSender<Vec<Block>>, Receiver<Vec<Block>>);

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let producers = (params.threads / 2).max(1);
    let consumers = params.threads.saturating_sub(producers).max(1);
    let batches_per_producer = scaled(3000, params.scale, 2);
    let queues: Vec<Queue> = (0..consumers)
        .map(|_| sync_channel(QUEUE_BATCHES))
        .collect();
    let (senders, receivers): (Vec<_>, Vec<_>) = queues.into_iter().unzip();
    let tally = std::thread::scope(|scope| {
        let consuming: Vec<_> = receivers
            .into_iter()
            .map(|rx| {
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for batch in rx {
                        for block in batch {
                            tally.check_and_free(block);
                        }
                    }
                    tally
                })
            })
            .collect();
        for p in 0..producers {
            let senders = senders.clone();
            let seed = params.seed ^ (p as u64 + 1);
            scope.spawn(move || {
                let mut rng = fastrand::Rng::with_seed(seed);
                for b in 0..batches_per_producer as usize {
                    let batch: Vec<Block> = (0..BATCH)
                        .map(|_| Block::new(log_uniform(&mut rng, 16, 512), rng.u64(..)))
                        .collect();
                    senders[(p + b) % senders.len()]
                        .send(batch)
                        .expect("consumer hung up");
                }
            });
        }
        drop(senders);
        let mut tally = Tally::default();
        for handle in consuming {
            tally.merge(handle.join().expect("consumer panicked"));
        }
        tally
    });
    let made = producers as u64 * batches_per_producer * BATCH as u64;
    let mut outcome = Outcome {
        ops: made,
        ..Outcome::default()
    };
    outcome.metrics.push(("producers".into(), producers as f64));
    outcome.metrics.push(("consumers".into(), consumers as f64));
    verdict(tally, made, outcome)
}
