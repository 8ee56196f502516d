//! Failing and Counting against a model: random sequences of allocate, grow,
//! shrink and deallocate through `Counting<Failing<Global>>`; the model
//! predicts which requests each plan refuses and what the counters read.

use std::ptr::NonNull;

use allocator_api2::alloc::{Allocator, Global, Layout};
use larder::{Counting, Failing};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Allocate {
        size: usize,
        align_log2: u32,
        zeroed: bool,
    },
    Grow {
        block: usize,
        extra: usize,
    },
    Shrink {
        block: usize,
        less: usize,
    },
    Deallocate {
        block: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..512, 0u32..7, any::<bool>())
            .prop_map(|(size, align_log2, zeroed)| Op::Allocate { size, align_log2, zeroed }),
        2 => (any::<usize>(), 1usize..512).prop_map(|(block, extra)| Op::Grow { block, extra }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(block, less)| Op::Shrink { block, less }),
        3 => any::<usize>().prop_map(|block| Op::Deallocate { block }),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Plan {
    Nth(u64),
    Every(u64),
    Budget(usize),
}

fn plan() -> impl Strategy<Value = Plan> {
    prop_oneof![
        (1u64..40).prop_map(Plan::Nth),
        (1u64..6).prop_map(Plan::Every),
        (0usize..4096).prop_map(Plan::Budget),
    ]
}

/// What the model expects of request number `number` adding `added` bytes
/// to `live` under `plan`.
fn refuses(plan: Plan, number: u64, live: usize, added: usize) -> bool {
    match plan {
        Plan::Nth(n) => number == n,
        Plan::Every(n) => number % n == 0,
        Plan::Budget(limit) => live + added > limit,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn wrappers_match_model(plan in plan(), ops in proptest::collection::vec(op(), 1..150)) {
        let failing = match plan {
            Plan::Nth(n) => Failing::nth(Global, n),
            Plan::Every(n) => Failing::every(Global, n),
            Plan::Budget(bytes) => Failing::budget(Global, bytes),
        };
        let counting = Counting::new(failing);
        // Live blocks with their layout and the byte each was filled with.
        let mut blocks: Vec<(NonNull<u8>, Layout, u8)> = Vec::new();
        let (mut calls, mut failures, mut live_bytes) = (0u64, 0u64, 0usize);
        for (step, op) in ops.iter().enumerate() {
            let fill = step as u8;
            match *op {
                Op::Allocate { size, align_log2, zeroed } => {
                    let layout = Layout::from_size_align(size, 1 << align_log2).unwrap();
                    calls += 1;
                    let expect_refusal = refuses(plan, calls, live_bytes, size);
                    let result = if zeroed {
                        counting.allocate_zeroed(layout)
                    } else {
                        counting.allocate(layout)
                    };
                    prop_assert_eq!(result.is_err(), expect_refusal);
                    if let Ok(block) = result {
                        let start = block.cast::<u8>();
                        prop_assert_eq!(start.as_ptr() as usize % layout.align(), 0);
                        if zeroed {
                            // SAFETY: the block is live and at least `size` long.
                            let bytes = unsafe { std::slice::from_raw_parts(start.as_ptr(), size) };
                            prop_assert!(bytes.iter().all(|&b| b == 0));
                        }
                        // SAFETY: as above.
                        unsafe { start.as_ptr().write_bytes(fill, size) };
                        blocks.push((start, layout, fill));
                        live_bytes += size;
                    } else {
                        failures += 1;
                    }
                }
                Op::Grow { block, extra } if !blocks.is_empty() => {
                    let i = block % blocks.len();
                    let (start, old, fill) = blocks[i];
                    let new = Layout::from_size_align(old.size() + extra, old.align()).unwrap();
                    calls += 1;
                    let expect_refusal = refuses(plan, calls, live_bytes, extra);
                    // SAFETY: `start` is live with layout `old`; `new` is larger.
                    let result = unsafe { counting.grow(start, old, new) };
                    prop_assert_eq!(result.is_err(), expect_refusal);
                    match result {
                        Ok(grown) => {
                            let grown = grown.cast::<u8>();
                            // SAFETY: the grown block is live, `new.size()` long.
                            let bytes = unsafe { std::slice::from_raw_parts(grown.as_ptr(), old.size()) };
                            prop_assert!(bytes.iter().all(|&b| b == fill), "grow keeps the contents");
                            // SAFETY: as above.
                            unsafe { grown.as_ptr().write_bytes(fill, new.size()) };
                            blocks[i] = (grown, new, fill);
                            live_bytes += extra;
                        }
                        Err(_) => {
                            failures += 1;
                            // SAFETY: a refused grow leaves the old block live.
                            let bytes = unsafe { std::slice::from_raw_parts(start.as_ptr(), old.size()) };
                            prop_assert!(bytes.iter().all(|&b| b == fill), "a refusal keeps the block");
                        }
                    }
                }
                Op::Shrink { block, less } if !blocks.is_empty() => {
                    let i = block % blocks.len();
                    let (start, old, fill) = blocks[i];
                    let new_size = old.size() - less % (old.size() + 1);
                    let new = Layout::from_size_align(new_size, old.align()).unwrap();
                    // SAFETY: `start` is live with layout `old`; `new` is not larger.
                    let shrunk = unsafe { counting.shrink(start, old, new) }.expect("shrink is never refused");
                    blocks[i] = (shrunk.cast(), new, fill);
                    live_bytes -= old.size() - new_size;
                }
                Op::Deallocate { block } if !blocks.is_empty() => {
                    let (start, layout, fill) = blocks.swap_remove(block % blocks.len());
                    // SAFETY: the block is live with this layout.
                    let bytes = unsafe { std::slice::from_raw_parts(start.as_ptr(), layout.size()) };
                    prop_assert!(bytes.iter().all(|&b| b == fill));
                    // SAFETY: as above; it is not used again.
                    unsafe { counting.deallocate(start, layout) };
                    live_bytes -= layout.size();
                }
                _ => {}
            }
            prop_assert_eq!(counting.live_blocks(), blocks.len());
            prop_assert_eq!(counting.live_bytes(), live_bytes);
            prop_assert_eq!(counting.inner().live_bytes(), live_bytes);
            prop_assert_eq!(counting.inner().calls(), calls);
            prop_assert_eq!(counting.inner().failures(), failures);
        }
        for (start, layout, _) in blocks.drain(..) {
            // SAFETY: each block is live with its layout.
            unsafe { counting.deallocate(start, layout) };
        }
        counting.assert_no_leaks();
    }
}
