//! Benchmarks the toolkit against the crates and std types it stands in for,
//! in one run: Arena vs bumpalo, Pool vs Box, Slab vs slab, Buffer vs Vec.
//! Pool and Buffer are also compared with `Box` and `Vec` in larder's own
//! allocator (`larder::Larder`; the binary's global allocator stays the
//! system's). Prints a markdown table of medians and ratios (kit time /
//! baseline time), then the reallocations each growth policy needs.
//!
//! Run: `cargo run --release -p larder --example kit_bench`

use std::hint::black_box;
use std::time::Duration;

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::boxed::Box as ApiBox;
use allocator_api2::vec::Vec as ApiVec;
use larder::{Arena, Buffer, Counting, Larder, Pool, Slab};

/// Timed repetitions per case; the median is reported.
const RUNS: usize = 7;
const ARENA_OBJECTS: u64 = 10_000_000;
const POOL_WINDOW: usize = 10_000;
const POOL_REPLACEMENTS: u64 = 10_000_000;
const POOL_FILL: u64 = 1_000_000;
const SLAB_KEYS: usize = 1 << 20;
const SLAB_WINDOW: usize = 10_000;
const SLAB_STEPS: usize = 10_000_000;
const BUFFER_PUSHES: u64 = 100_000_000;
const BUFFER_RUNS: usize = 5;

/// A small object as an arena or a pool would hold: 24 bytes.
#[derive(Clone, Copy)]
#[allow(dead_code)] // written, never read: the writes are what is measured
struct Small {
    id: u64,
    weight: f64,
    tag: u32,
}

impl Small {
    fn new(i: u64) -> Self {
        Small {
            id: i,
            weight: i as f64,
            tag: i as u32,
        }
    }
}

/// A 64-byte record, the kind of node a pool recycles.
#[allow(dead_code)] // written, never read: the writes are what is measured
struct Record {
    fields: [u64; 8],
}

/// CPU time this thread has used (user and system). The machines these
/// figures come from are shared, so wall time would count other people's
/// work; thread CPU time counts only ours (page faults included).
fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec, and the clock id is one
    // Linux supports.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    assert_eq!(status, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// One way of doing a case's work; each call does the whole round.
type Contender<'a> = Box<dyn FnMut() + 'a>;

/// Runs each contender once to warm up, then `runs` rounds in which every
/// contender runs once, starting each round with the next one, so that
/// noise from the machine falls on all of them alike. Returns the medians.
fn interleaved(runs: usize, mut contenders: Vec<Contender<'_>>) -> Vec<Duration> {
    for contender in &mut contenders {
        contender();
    }
    let mut samples = vec![Vec::with_capacity(runs); contenders.len()];
    for run in 0..runs {
        for offset in 0..contenders.len() {
            let which = (run + offset) % contenders.len();
            let start = thread_cpu_time();
            contenders[which]();
            samples[which].push(thread_cpu_time() - start);
        }
    }
    samples.into_iter().map(median).collect()
}

struct Row {
    case: String,
    kit: Duration,
    baseline_name: &'static str,
    baseline: Duration,
}

fn arena_rows() -> Vec<Row> {
    let mut arena = Arena::new();
    let mut bump = bumpalo::Bump::new();
    let times = interleaved(
        RUNS,
        vec![
            Box::new(|| {
                for i in 0..ARENA_OBJECTS {
                    black_box(arena.alloc(Small::new(i)));
                }
                arena.reset();
            }),
            Box::new(|| {
                for i in 0..ARENA_OBJECTS {
                    black_box(bump.alloc(Small::new(i)));
                }
                bump.reset();
            }),
        ],
    );
    vec![Row {
        case: format!(
            "Arena: {}M × 24 B allocs, then reset",
            ARENA_OBJECTS / 1_000_000
        ),
        kit: times[0],
        baseline_name: "bumpalo::Bump",
        baseline: times[1],
    }]
}

fn record(i: u64) -> Record {
    Record { fields: [i; 8] }
}

// Allocating a fresh box per replacement is the workload Pool replaces.
#[allow(clippy::replace_box)]
fn pool_rows() -> Vec<Row> {
    let pool = Pool::new();
    let mut pool_window: Vec<_> = (0..POOL_WINDOW as u64)
        .map(|i| pool.alloc(record(i)))
        .collect();
    let mut box_window: Vec<_> = (0..POOL_WINDOW as u64)
        .map(|i| Box::new(record(i)))
        .collect();
    let mut larder_window: Vec<_> = (0..POOL_WINDOW as u64)
        .map(|i| ApiBox::new_in(record(i), Larder))
        .collect();
    let churn = interleaved(
        RUNS,
        vec![
            Box::new(|| {
                for i in 0..POOL_REPLACEMENTS {
                    pool_window[i as usize % POOL_WINDOW] = pool.alloc(record(i));
                }
                black_box(pool_window[0].fields[0]);
            }),
            Box::new(|| {
                for i in 0..POOL_REPLACEMENTS {
                    box_window[i as usize % POOL_WINDOW] = Box::new(record(i));
                }
                black_box(box_window[0].fields[0]);
            }),
            Box::new(|| {
                for i in 0..POOL_REPLACEMENTS {
                    larder_window[i as usize % POOL_WINDOW] = ApiBox::new_in(record(i), Larder);
                }
                black_box(larder_window[0].fields[0]);
            }),
        ],
    );
    let fill = interleaved(
        RUNS,
        vec![
            Box::new(|| {
                let all: Vec<_> = (0..POOL_FILL).map(|i| pool.alloc(record(i))).collect();
                black_box(all.len());
            }),
            Box::new(|| {
                let all: Vec<_> = (0..POOL_FILL).map(|i| Box::new(record(i))).collect();
                black_box(all.len());
            }),
            Box::new(|| {
                let all: Vec<_> = (0..POOL_FILL)
                    .map(|i| ApiBox::new_in(record(i), Larder))
                    .collect();
                black_box(all.len());
            }),
        ],
    );
    let churn_case = format!(
        "Pool: {}M replacements in a window of {}k × 64 B",
        POOL_REPLACEMENTS / 1_000_000,
        POOL_WINDOW / 1000
    );
    let fill_case = format!(
        "Pool: {}M × 64 B allocs, then free all",
        POOL_FILL / 1_000_000
    );
    vec![
        Row {
            case: churn_case.clone(),
            kit: churn[0],
            baseline_name: "Box (system malloc)",
            baseline: churn[1],
        },
        Row {
            case: churn_case,
            kit: churn[0],
            baseline_name: "Box (larder)",
            baseline: churn[2],
        },
        Row {
            case: fill_case.clone(),
            kit: fill[0],
            baseline_name: "Box (system malloc)",
            baseline: fill[1],
        },
        Row {
            case: fill_case,
            kit: fill[0],
            baseline_name: "Box (larder)",
            baseline: fill[2],
        },
    ]
}

/// Visits every index below `SLAB_KEYS` once, in a scattered order.
fn scattered(i: usize) -> usize {
    // An odd multiplier permutes indices modulo a power of two.
    i.wrapping_mul(0x9E37_79B9) & (SLAB_KEYS - 1)
}

fn slab_rows() -> Vec<Row> {
    let times = interleaved(
        RUNS,
        vec![
            Box::new(|| {
                let mut slab = Slab::with_capacity(SLAB_KEYS);
                let keys: Vec<_> = (0..SLAB_KEYS as u64).map(|i| slab.insert(i)).collect();
                let mut sum = 0u64;
                for i in 0..SLAB_KEYS {
                    sum += slab.get(keys[scattered(i)]).copied().unwrap_or(0);
                }
                for i in (0..SLAB_KEYS).step_by(2) {
                    sum += slab.remove(keys[scattered(i)]).unwrap_or(0);
                }
                for i in 0..SLAB_KEYS as u64 / 2 {
                    sum += slab.insert(i).index() as u64;
                }
                black_box(sum);
            }),
            Box::new(|| {
                let mut slab = slab::Slab::with_capacity(SLAB_KEYS);
                let keys: Vec<_> = (0..SLAB_KEYS as u64).map(|i| slab.insert(i)).collect();
                let mut sum = 0u64;
                for i in 0..SLAB_KEYS {
                    sum += slab.get(keys[scattered(i)]).copied().unwrap_or(0);
                }
                for i in (0..SLAB_KEYS).step_by(2) {
                    sum += slab.try_remove(keys[scattered(i)]).unwrap_or(0);
                }
                for i in 0..SLAB_KEYS as u64 / 2 {
                    sum += slab.insert(i) as u64;
                }
                black_box(sum);
            }),
        ],
    );
    let mut kit_slab = Slab::new();
    let mut kit_keys: Vec<_> = (0..SLAB_WINDOW as u64)
        .map(|i| kit_slab.insert(i))
        .collect();
    let mut crate_slab = slab::Slab::new();
    let mut crate_keys: Vec<_> = (0..SLAB_WINDOW as u64)
        .map(|i| crate_slab.insert(i))
        .collect();
    let churn = interleaved(
        RUNS,
        vec![
            Box::new(|| {
                let mut sum = 0u64;
                for step in 0..SLAB_STEPS {
                    let slot = step % SLAB_WINDOW;
                    sum += kit_slab.remove(kit_keys[slot]).unwrap_or(0);
                    kit_keys[slot] = kit_slab.insert(step as u64);
                    let probe = kit_keys[step.wrapping_mul(7919) % SLAB_WINDOW];
                    sum += kit_slab.get(probe).copied().unwrap_or(0);
                }
                black_box(sum);
            }),
            Box::new(|| {
                let mut sum = 0u64;
                for step in 0..SLAB_STEPS {
                    let slot = step % SLAB_WINDOW;
                    sum += crate_slab.try_remove(crate_keys[slot]).unwrap_or(0);
                    crate_keys[slot] = crate_slab.insert(step as u64);
                    let probe = crate_keys[step.wrapping_mul(7919) % SLAB_WINDOW];
                    sum += crate_slab.get(probe).copied().unwrap_or(0);
                }
                black_box(sum);
            }),
        ],
    );
    vec![
        Row {
            case: "Slab: 1M inserts, 1M scattered gets, 0.5M removes, 0.5M reinserts".to_string(),
            kit: times[0],
            baseline_name: "slab::Slab",
            baseline: times[1],
        },
        Row {
            case: format!(
                "Slab: {}M × (remove, insert, get) in a table of {}k",
                SLAB_STEPS / 1_000_000,
                SLAB_WINDOW / 1000
            ),
            kit: churn[0],
            baseline_name: "slab::Slab",
            baseline: churn[1],
        },
    ]
}

/// Pushes `BUFFER_PUSHES` u64, one at a time, into a Buffer growing by `alpha`.
fn push_all_buffer<A: Allocator>(alpha: f64, allocator: A) {
    let mut b = Buffer::with_growth_in(alpha, allocator).expect("alpha is in range");
    for i in 0..BUFFER_PUSHES {
        b.push(i);
    }
    black_box(b.len());
}

fn buffer_rows() -> Vec<Row> {
    let times = interleaved(
        BUFFER_RUNS,
        vec![
            Box::new(|| push_all_buffer(2.0, Global)),
            Box::new(|| push_all_buffer(1.5, Global)),
            Box::new(|| {
                let mut v = Vec::new();
                for i in 0..BUFFER_PUSHES {
                    v.push(i);
                }
                black_box(v.len());
            }),
            Box::new(|| push_all_buffer(2.0, Larder)),
            Box::new(|| push_all_buffer(1.5, Larder)),
            Box::new(|| {
                let mut v = ApiVec::new_in(Larder);
                for i in 0..BUFFER_PUSHES {
                    v.push(i);
                }
                black_box(v.len());
            }),
        ],
    );
    let millions = BUFFER_PUSHES / 1_000_000;
    vec![
        Row {
            case: format!("Buffer α=2: push {millions}M u64"),
            kit: times[0],
            baseline_name: "std Vec",
            baseline: times[2],
        },
        Row {
            case: format!("Buffer α=1.5: push {millions}M u64"),
            kit: times[1],
            baseline_name: "std Vec",
            baseline: times[2],
        },
        Row {
            case: format!("Buffer α=2 in larder: push {millions}M u64"),
            kit: times[3],
            baseline_name: "Vec in larder",
            baseline: times[5],
        },
        Row {
            case: format!("Buffer α=1.5 in larder: push {millions}M u64"),
            kit: times[4],
            baseline_name: "Vec in larder",
            baseline: times[5],
        },
    ]
}

/// Reallocations of one growth policy: `grow` calls, and how many of them moved the block.
#[derive(Clone, Copy)]
struct Reallocations {
    grows: usize,
    moves: usize,
}

/// Pushes `BUFFER_PUSHES` u64 into `collection` and counts the successful
/// `grow` calls `counting` saw, and the ones after which the elements had moved.
fn reallocations_to_push_all<A: Allocator, C>(
    counting: &Counting<A>,
    mut collection: C,
    push: impl Fn(&mut C, u64),
    elements: impl Fn(&C) -> *const u64,
) -> Reallocations {
    let before = counting.total_grows();
    let mut moves = 0;
    let mut last = elements(&collection);
    let mut grows_seen = before;
    for i in 0..BUFFER_PUSHES {
        push(&mut collection, i);
        let grows = counting.total_grows();
        if grows != grows_seen {
            grows_seen = grows;
            let now = elements(&collection);
            moves += usize::from(now != last);
            last = now;
        }
    }
    black_box(&collection);
    drop(collection);
    Reallocations {
        grows: counting.total_grows() - before,
        moves,
    }
}

/// Reallocations to push `BUFFER_PUSHES` u64, counted through `Counting`, for
/// Buffer (α = 2 and 1.5) and for allocator-api2's `Vec` (the growth policy
/// of std's `Vec`, which ignores the allocator's slack), in `allocator`.
fn reallocation_counts<A: Allocator>(allocator: A) -> [Reallocations; 3] {
    let counting = Counting::new(allocator);
    let buffer = reallocations_to_push_all(
        &counting,
        Buffer::new_in(&counting),
        |b, i| b.push(i),
        |b| b.as_slice().as_ptr(),
    );
    let gentle = reallocations_to_push_all(
        &counting,
        Buffer::with_growth_in(1.5, &counting).expect("1.5 is in range"),
        |b, i| b.push(i),
        |b| b.as_slice().as_ptr(),
    );
    let vec = reallocations_to_push_all(
        &counting,
        ApiVec::new_in(&counting),
        |v, i| v.push(i),
        |v| v.as_ptr(),
    );
    [buffer, gentle, vec]
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let mut rows = Vec::new();
    rows.extend(arena_rows());
    rows.extend(pool_rows());
    rows.extend(slab_rows());
    rows.extend(buffer_rows());

    println!(
        "Thread CPU time, median of {RUNS} interleaved runs ({BUFFER_RUNS} for the Buffer rows) \
         after one warm-up run."
    );
    println!("Ratio = kit / baseline: below 1.00 the kit is faster.\n");
    println!("| case | kit | baseline | baseline time | ratio |");
    println!("|---|---:|---|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {} | {} | {} | {:.2} |",
            row.case,
            millis(row.kit),
            row.baseline_name,
            millis(row.baseline),
            row.kit.as_secs_f64() / row.baseline.as_secs_f64()
        );
    }
    println!();
    println!(
        "| grow calls (moves) to push {}M u64 | Buffer α=2 | Buffer α=1.5 | Vec |",
        BUFFER_PUSHES / 1_000_000
    );
    println!("|---|---:|---:|---:|");
    let allocators = [
        (
            "system malloc (reports no slack)",
            reallocation_counts(Global),
        ),
        ("larder (reports its slack)", reallocation_counts(Larder)),
    ];
    for (allocator, counts) in allocators {
        let cells: Vec<String> = counts
            .iter()
            .map(|r| format!("{} ({})", r.grows, r.moves))
            .collect();
        println!("| {allocator} | {} |", cells.join(" | "));
    }
}
