//! Workload 8, fragmentation: each thread fills a large heap with blocks of mixed sizes (16 B to
//! 4 KiB), frees every other block, then allocates larger blocks (4 KiB to 16 KiB) until its live
//! bytes are back where they were. The freed holes are too small for the new blocks, so an
//! allocator can only keep its resident memory near the live bytes by handing the holes' pages
//! back or by packing size classes well. The figure that matters is peak RSS over peak live bytes.
//!
//! All threads meet at a barrier when their live bytes peak (after the fill and after the
//! refill), so the sum of the threads' live bytes there is the process's peak; the main thread
//! reads the resident set size at both points.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, resident_bytes, scaled};
use super::{verdict, Outcome, Params};
use std::sync::Barrier;

struct PhasePeaks {
    tally: Tally,
    made: u64,
    live_after_fill: u64,
    live_after_refill: u64,
}

fn one_thread(seed: u64, fill_blocks: u64, peak: &Barrier, resume: &Barrier) -> PhasePeaks {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut live_bytes = 0u64;
    let mut heap: Vec<Block> = (0..fill_blocks)
        .map(|_| {
            let mut block = Block::new(log_uniform(&mut rng, 16, 4096), rng.u64(..));
            block.touch_pages();
            live_bytes += block.size() as u64;
            block
        })
        .collect();
    let live_after_fill = live_bytes;
    peak.wait();
    resume.wait();
    let mut kept = Vec::with_capacity(heap.len());
    for (i, block) in heap.drain(..).enumerate() {
        if i % 2 == 0 {
            live_bytes -= block.size() as u64;
            tally.check_and_free(block);
        } else {
            kept.push(block);
        }
    }
    let mut made = fill_blocks;
    while live_bytes < live_after_fill {
        let mut block = Block::new(log_uniform(&mut rng, 4097, 16 << 10), rng.u64(..));
        block.touch_pages();
        live_bytes += block.size() as u64;
        kept.push(block);
        made += 1;
    }
    let live_after_refill = live_bytes;
    peak.wait();
    resume.wait();
    for block in kept {
        tally.check_and_free(block);
    }
    PhasePeaks {
        tally,
        made,
        live_after_fill,
        live_after_refill,
    }
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let fill_blocks = scaled(200_000, params.scale, 100);
    let threads = params.threads;
    let (peak, resume) = (Barrier::new(threads + 1), Barrier::new(threads + 1));
    let baseline_rss = resident_bytes();
    let (results, rss_after_fill, rss_after_refill) = std::thread::scope(|scope| {
        let (peak, resume) = (&peak, &resume);
        let running: Vec<_> = (0..threads)
            .map(|t| {
                let seed = params.seed ^ (t as u64 + 1);
                scope.spawn(move || one_thread(seed, fill_blocks, peak, resume))
            })
            .collect();
        peak.wait();
        let after_fill = resident_bytes();
        resume.wait();
        peak.wait();
        let after_refill = resident_bytes();
        resume.wait();
        let results: Vec<PhasePeaks> = running
            .into_iter()
            .map(|h| h.join().expect("fragmentation thread panicked"))
            .collect();
        (results, after_fill, after_refill)
    });
    let mut tally = Tally::default();
    let (mut made, mut live_fill, mut live_refill) = (0, 0, 0);
    for r in results {
        tally.merge(r.tally);
        made += r.made;
        live_fill += r.live_after_fill;
        live_refill += r.live_after_refill;
    }
    let peak_live = live_fill.max(live_refill);
    let mut outcome = Outcome {
        ops: made,
        ..Outcome::default()
    };
    outcome.metrics.extend([
        ("peak_live_bytes".to_string(), peak_live as f64),
        ("baseline_rss_bytes".to_string(), baseline_rss as f64),
        ("rss_after_fill_bytes".to_string(), rss_after_fill as f64),
        (
            "rss_after_refill_bytes".to_string(),
            rss_after_refill as f64,
        ),
    ]);
    verdict(tally, made, outcome)
}
