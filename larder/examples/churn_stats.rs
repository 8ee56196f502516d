//! Where larder-bench's server-churn pattern holds memory, from `larder::stats()`.
//!
//! `cargo run --release -p larder --example churn_stats [THREADS] [collect]` runs the workload's
//! pattern (10 rounds of fresh threads replacing random entries of a shared array with blocks of
//! 8-1000 bytes; the slices rotate, so most frees are of blocks other, exited, threads made)
//! with larder as the global allocator, and prints the heap's figures after each round. With
//! `collect`, the main thread calls `larder::collect(false)` after each round, which shows what
//! its own heap holds: its pages' blocks, freed by the workers, wait on the pages' remote lists
//! for a slow path that the main thread, blocked in `join`, never runs. The last line is the
//! figures at the highest resident size a sampling thread saw (every 0.3 ms) while the rounds
//! ran: the end of a round is not where the peak is.
//!
//! `cargo run --release -p larder --example churn_stats thread-churn [THREADS] [ROUNDS]` runs
//! larder-bench's thread-churn pattern instead (round after round, short-lived threads allocate
//! 2000 blocks of 16-2048 bytes, free half, hand the other half to the main thread and exit; the
//! main thread frees those after the join, into the exited threads' abandoned segments, which it
//! reclaims on free), prints the figures every 50 rounds and the highest of each over the run:
//! what the main thread keeps of those segments after freeing is what the next round's threads
//! cannot reuse.

use larder::Larder;

#[global_allocator]
static GLOBAL: Larder = Larder;

const ROUNDS: u64 = 10;
const SLOTS: usize = 5000;
const REPLACEMENTS: u64 = 60_000;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn print_stats(label: &str) -> larder::Stats {
    let s = larder::stats();
    println!(
        "{label:>8} live {:6.2} MiB  committed {:6.2}  dirty {:6.2}  cached {:6.2}  \
         segments {:3} (abandoned {:3})  heaps {}  rss {:6.2} MiB",
        mib(s.live_bytes),
        mib(s.committed_bytes),
        mib(s.dirty_bytes),
        mib(s.cached_bytes),
        s.segments,
        s.abandoned_segments,
        s.heaps,
        mib(s.resident_bytes),
    );
    s
}

fn main() {
    if std::env::args().nth(1).is_some_and(|a| a == "thread-churn") {
        thread_churn();
        return;
    }
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(2, |t| t.parse().expect("THREADS"));
    let collect = std::env::args().nth(2).is_some_and(|a| a == "collect");
    let mut rng = fastrand_lite(1);
    let mut slices: Vec<Vec<Vec<u8>>> = (0..threads)
        .map(|_| {
            (0..SLOTS)
                .map(|_| vec![1u8; 8 + (rng() % 993) as usize])
                .collect()
        })
        .collect();
    print_stats("start");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let stop = stop.clone();
        move || sample_peak(&stop)
    });
    for round in 0..ROUNDS {
        slices.rotate_left(1);
        slices = std::thread::scope(|scope| {
            let running: Vec<_> = slices
                .drain(..)
                .enumerate()
                .map(|(i, mut slice)| {
                    scope.spawn(move || {
                        let mut rng = fastrand_lite((round << 32) ^ (i as u64 + 1));
                        for _ in 0..REPLACEMENTS {
                            let victim = (rng() % SLOTS as u64) as usize;
                            slice[victim] = vec![1u8; 8 + (rng() % 993) as usize];
                        }
                        slice
                    })
                })
                .collect();
            running.into_iter().map(|h| h.join().unwrap()).collect()
        });
        if collect {
            larder::collect(false);
        }
        print_stats(&format!("round {round}"));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let s = sampler.join().unwrap();
    println!(
        "    peak live {:6.2} MiB  committed {:6.2}  dirty {:6.2}  segments {:3} (abandoned {:3})  \
         rss {:6.2} MiB",
        mib(s.live_bytes),
        mib(s.committed_bytes),
        mib(s.dirty_bytes),
        s.segments,
        s.abandoned_segments,
        mib(s.resident_bytes),
    );
}

/// `larder::stats()` at the highest resident size seen until `stop` is set.
fn sample_peak(stop: &std::sync::atomic::AtomicBool) -> larder::Stats {
    let mut highest = larder::stats();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let s = larder::stats();
        if s.resident_bytes > highest.resident_bytes {
            highest = s;
        }
        std::thread::sleep(std::time::Duration::from_micros(300));
    }
    highest
}

/// A log-uniform size in `[lo, hi]`, as larder-bench's `log_uniform`.
fn log_uniform(rng: &mut impl FnMut() -> u64, lo: usize, hi: usize) -> usize {
    let (l, h) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
    let u = (rng() >> 11) as f64 / (1u64 << 53) as f64;
    ((l + u * (h - l)).exp() as usize).clamp(lo, hi)
}

/// larder-bench's thread-churn pattern, with the figures every 50 rounds and the highest.
fn thread_churn() {
    let arg = |n: usize, default: u64| {
        std::env::args()
            .nth(n)
            .map_or(default, |a| a.parse().expect("THREADS ROUNDS"))
    };
    let (threads, rounds) = (arg(2, 2), arg(3, 600));
    let mut highest = [0u64; 4];
    for round in 0..rounds {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut rng = fastrand_lite((round << 20) ^ (t + 1));
                    let mut blocks: Vec<Vec<u8>> = (0..2000)
                        .map(|_| vec![1u8; log_uniform(&mut rng, 16, 2048)])
                        .collect();
                    blocks.split_off(1000)
                })
            })
            .collect();
        for handle in handles {
            drop(handle.join().unwrap());
        }
        let s = if round % 50 == 49 {
            print_stats(&format!("round {round}"))
        } else {
            larder::stats()
        };
        let figures = [
            s.committed_bytes,
            s.dirty_bytes,
            s.segments,
            s.resident_bytes,
        ];
        for (h, f) in highest.iter_mut().zip(figures) {
            *h = (*h).max(f);
        }
    }
    println!(
        " highest committed {:6.2}  dirty {:6.2}  segments {:3}  rss {:6.2} MiB",
        mib(highest[0]),
        mib(highest[1]),
        highest[2],
        mib(highest[3]),
    );
}

/// A xorshift generator (the example needs no crate for it).
fn fastrand_lite(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}
