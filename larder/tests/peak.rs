//! The peak of live bytes when the frees happen on a thread that never allocates: each round a
//! new thread allocates a batch of small blocks and exits, and this thread frees them all. The
//! peak must stay near one batch, not grow with the rounds (it would if this thread's frees were
//! never published).

use larder::Larder;

#[global_allocator]
static GLOBAL: Larder = Larder;

/// Separate 96 B blocks, each its own allocation (sent from the thread that made them).
#[allow(clippy::vec_box)]
struct Blocks(Vec<Box<[u8; 96]>>);

#[test]
fn frees_on_a_thread_that_never_allocates_lower_the_peak() {
    const BATCH: usize = 40_000; // 40,000 × 96 B: 3.7 MiB per round
    const ROUNDS: usize = 12;
    let batch_bytes = (BATCH * 96) as u64;
    let mut batches = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        let made = std::thread::spawn(move || {
            Blocks(
                (0..BATCH)
                    .map(|i| Box::new([(round + i) as u8; 96]))
                    .collect(),
            )
        })
        .join()
        .expect("allocating thread");
        batches.push(made);
        // Free the batch here; the only allocation this thread made above is `batches`.
        let Blocks(blocks) = batches.pop().expect("just pushed");
        for (i, b) in blocks.iter().enumerate() {
            assert_eq!(b[0], (round + i) as u8);
        }
        drop(blocks);
    }
    let peak = larder::stats().peak_live_bytes;
    assert!(
        peak < 3 * batch_bytes,
        "peak live {peak} B after {ROUNDS} rounds of {batch_bytes} B freed at once"
    );
}
