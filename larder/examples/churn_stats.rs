//! Where larder-bench's server-churn pattern holds memory, from `larder::stats()`.
//!
//! `cargo run --release -p larder --example churn_stats [THREADS] [collect]` runs the workload's
//! pattern (10 rounds of fresh threads replacing random entries of a shared array with blocks of
//! 8-1000 bytes; the slices rotate, so most frees are of blocks other, exited, threads made)
//! with larder as the global allocator, and prints the heap's figures after each round. With
//! `collect`, the main thread calls `larder::collect(false)` after each round, which shows what
//! its own heap holds: its pages' blocks, freed by the workers, wait on the pages' remote lists
//! for a slow path that the main thread, blocked in `join`, never runs.

use larder::Larder;

#[global_allocator]
static GLOBAL: Larder = Larder;

const ROUNDS: u64 = 10;
const SLOTS: usize = 5000;
const REPLACEMENTS: u64 = 60_000;

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn print_stats(label: &str) {
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
}

fn main() {
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
