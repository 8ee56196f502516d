//! The cost of one small malloc+free pair, for larder, glibc (the system allocator) and the
//! `mimalloc` crate, called through `GlobalAlloc` the same way for each.
//!
//! `cargo run --release --example pair_cost` times 10 million 32-byte pairs per allocator
//! (interleaved, median of 5). `pair_cost ALLOCATOR SIZE N` runs N pairs of one allocator once,
//! for `valgrind --tool=callgrind`: `bench/pair_cost_callgrind.sh` subtracts two such runs to get
//! instructions per pair without the start-up cost.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::Instant;

fn pairs(a: &dyn GlobalAlloc, size: usize, n: u64) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    for _ in 0..n {
        // SAFETY: the block is freed with the layout it was allocated with, right away.
        unsafe {
            let p = a.alloc(black_box(layout));
            black_box(p);
            a.dealloc(p, layout);
        }
    }
}

fn allocator(name: &str) -> &'static dyn GlobalAlloc {
    match name {
        "larder" => &larder::Larder,
        "glibc" => &System,
        "mimalloc" => &mimalloc::MiMalloc,
        other => panic!("unknown allocator {other}: larder, glibc or mimalloc"),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [name, size, n] = &args[..] {
        pairs(allocator(name), size.parse().unwrap(), n.parse().unwrap());
        return;
    }
    let names = ["larder", "glibc", "mimalloc"];
    let n = 10_000_000;
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for _ in 0..5 {
        for (i, name) in names.iter().enumerate() {
            let a = allocator(name);
            pairs(a, 32, 1000);
            let t = Instant::now();
            pairs(a, 32, n);
            times[i].push(t.elapsed().as_secs_f64());
        }
    }
    println!("| allocator | 10M × 32 B malloc+free (ms, median of 5) | ns per pair | vs larder |");
    println!("|---|---:|---:|---:|");
    let medians: Vec<f64> = times
        .iter_mut()
        .map(|t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect();
    for (name, m) in names.iter().zip(&medians) {
        println!(
            "| {name} | {:.1} | {:.2} | {:.2}× |",
            m * 1e3,
            m * 1e9 / n as f64,
            m / medians[0]
        );
    }
}
