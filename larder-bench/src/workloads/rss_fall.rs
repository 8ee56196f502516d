//! Workload 10, RSS fall: a long mixed run that then frees most of its memory. Each thread first
//! allocates its long-lived data (a tenth of the total), then builds a working set of blocks of
//! 16 B to 64 KiB up to the total and churns it; at the end it frees the whole working set and
//! keeps the long-lived data, and the threads stay alive doing a trickle of small allocations
//! (as an idle server does). The long-lived blocks were allocated first, so an allocator can
//! give back nearly everything that was freed (freeing a scattered nine tenths instead would pin
//! almost every page with a live block and measure fragmentation, which workload 8 does). The main thread reads
//! the resident set size every millisecond and reports how long it took to give back half and
//! nine tenths of the freed memory. Allocators that purge lazily do it on such later calls,
//! which is why the trickle is there. Sampling stops once nine tenths are back or when the
//! window (2 s at full scale) ends, so "never" shows as not reached (-1), and the workload's wall
//! time includes the wait.
//!
//! Freed memory is measured against a floor: the resident size at the start of the process plus
//! the bytes still live after the free.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, resident_bytes, scaled};
use super::{verdict, Outcome, Params};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The long-lived data is this fraction of the total live bytes at the peak.
const LONG_LIVED_SHARE: u64 = 10;

struct Meeting {
    /// Threads have built their heap; the main thread reads the pre-free RSS.
    built: Barrier,
    /// The main thread has read it; threads may free.
    freeing: Barrier,
    /// Threads have freed; the clock starts.
    freed: Barrier,
    /// Sum of the threads' live bytes after the free, published before `freed`.
    live_after_free: AtomicU64,
    stop_trickle: AtomicBool,
}

struct ThreadReport {
    tally: Tally,
    made: u64,
    live_after_free: u64,
}

fn one_thread(seed: u64, target_live: u64, churn_steps: u64, meeting: &Meeting) -> ThreadReport {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut tally = Tally::default();
    let mut made = 0u64;
    let mut live_bytes = 0u64;
    let new_block = |rng: &mut fastrand::Rng| {
        let mut block = Block::new(log_uniform(rng, 16, 64 << 10), rng.u64(..));
        block.touch_pages();
        block
    };
    let mut long_lived: Vec<Block> = Vec::new();
    while live_bytes < target_live / LONG_LIVED_SHARE {
        let block = new_block(&mut rng);
        live_bytes += block.size() as u64;
        long_lived.push(block);
        made += 1;
    }
    let mut heap: Vec<Block> = Vec::new();
    while live_bytes < target_live {
        let block = new_block(&mut rng);
        live_bytes += block.size() as u64;
        heap.push(block);
        made += 1;
        if rng.u8(..3) == 0 {
            let victim = heap.swap_remove(rng.usize(..heap.len()));
            live_bytes -= victim.size() as u64;
            tally.check_and_free(victim);
        }
    }
    for _ in 0..churn_steps {
        let slot = rng.usize(..heap.len());
        let fresh = new_block(&mut rng);
        live_bytes = live_bytes + fresh.size() as u64 - heap[slot].size() as u64;
        tally.check_and_free(std::mem::replace(&mut heap[slot], fresh));
        made += 1;
    }
    meeting.built.wait();
    meeting.freeing.wait();
    for block in heap {
        live_bytes -= block.size() as u64;
        tally.check_and_free(block);
    }
    meeting
        .live_after_free
        .fetch_add(live_bytes, Ordering::Relaxed);
    meeting.freed.wait();
    while !meeting.stop_trickle.load(Ordering::Relaxed) {
        let trickle: Vec<Block> = (0..100)
            .map(|_| Block::new(log_uniform(&mut rng, 16, 256), rng.u64(..)))
            .collect();
        made += trickle.len() as u64;
        trickle.into_iter().for_each(|b| tally.check_and_free(b));
        std::thread::sleep(Duration::from_millis(1));
    }
    for block in long_lived {
        tally.check_and_free(block);
    }
    ThreadReport {
        tally,
        made,
        live_after_free: live_bytes,
    }
}

/// The first time (ms after the free) the resident size fell to `level`, if it did.
fn first_time_at_or_below(samples: &[(f64, u64)], level: f64) -> Option<f64> {
    samples
        .iter()
        .find(|&&(_, rss)| rss as f64 <= level)
        .map(|&(ms, _)| ms)
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let threads = params.threads;
    let target_live = scaled(96 << 20, params.scale.min(1.0), 1 << 20);
    let churn_steps = scaled(100_000, params.scale, 100);
    let window = Duration::from_millis(scaled(2000, params.scale, 200));
    let meeting = Meeting {
        built: Barrier::new(threads + 1),
        freeing: Barrier::new(threads + 1),
        freed: Barrier::new(threads + 1),
        live_after_free: AtomicU64::new(0),
        stop_trickle: AtomicBool::new(false),
    };
    let baseline_rss = resident_bytes();
    let (reports, rss_before_free, samples) = std::thread::scope(|scope| {
        let meeting = &meeting;
        let running: Vec<_> = (0..threads)
            .map(|t| {
                let seed = params.seed ^ (t as u64 + 1);
                scope.spawn(move || one_thread(seed, target_live, churn_steps, meeting))
            })
            .collect();
        meeting.built.wait();
        let rss_before_free = resident_bytes();
        meeting.freeing.wait();
        meeting.freed.wait();
        let clock = Instant::now();
        let floor = baseline_rss + meeting.live_after_free.load(Ordering::Relaxed);
        let nine_tenths_back = floor + rss_before_free.saturating_sub(floor) / 10;
        let mut samples = Vec::new();
        while clock.elapsed() < window {
            let rss = resident_bytes();
            samples.push((clock.elapsed().as_secs_f64() * 1e3, rss));
            if rss <= nine_tenths_back {
                break; // nothing more to learn: t50 and t90 are both known
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        meeting.stop_trickle.store(true, Ordering::Relaxed);
        let reports: Vec<ThreadReport> = running
            .into_iter()
            .map(|h| h.join().expect("rss-fall thread panicked"))
            .collect();
        (reports, rss_before_free, samples)
    });
    let mut tally = Tally::default();
    let (mut made, mut live_after_free) = (0, 0);
    for r in reports {
        tally.merge(r.tally);
        made += r.made;
        live_after_free += r.live_after_free;
    }
    let floor = (baseline_rss + live_after_free) as f64;
    let freed = (rss_before_free as f64 - floor).max(1.0);
    let not_reached = -1.0;
    let t50 = first_time_at_or_below(&samples, floor + 0.5 * freed).unwrap_or(not_reached);
    let t90 = first_time_at_or_below(&samples, floor + 0.1 * freed).unwrap_or(not_reached);
    let rss_end = samples.last().map_or(rss_before_free, |s| s.1) as f64;
    let mut outcome = Outcome {
        ops: made,
        ..Outcome::default()
    };
    outcome.metrics.extend([
        ("rss_before_free_bytes".to_string(), rss_before_free as f64),
        ("live_after_free_bytes".to_string(), live_after_free as f64),
        ("rss_end_bytes".to_string(), rss_end),
        (
            "retained_pct".to_string(),
            100.0 * ((rss_end - floor) / freed).clamp(0.0, 1.0),
        ),
        ("t50_ms".to_string(), t50),
        ("t90_ms".to_string(), t90),
        ("window_ms".to_string(), window.as_secs_f64() * 1e3),
    ]);
    verdict(tally, made, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_sample_at_or_below_a_level_is_found() {
        let samples = [(0.0, 100), (1.0, 80), (2.0, 40), (3.0, 45)];
        assert_eq!(first_time_at_or_below(&samples, 50.0), Some(2.0));
        assert_eq!(first_time_at_or_below(&samples, 100.0), Some(0.0));
        assert_eq!(first_time_at_or_below(&samples, 10.0), None);
    }
}
