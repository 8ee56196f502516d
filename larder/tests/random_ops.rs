//! Randomised interleavings of malloc / free / realloc with random sizes (0 B to 4 MiB, skewed
//! small) and alignments; every block carries a pattern derived from its id, checked before it
//! is freed and after it is moved. A proptest model does the same on short sequences and shrinks
//! failures.

// These tests drive the raw allocator API directly. Every unsafe call below follows one rule,
// stated once here instead of at each call: a pointer is used only while the test's own
// bookkeeping (the `live` list or the local variable) holds it as a live block of the layout it
// was allocated with, within that layout's size, and it is freed exactly once.
#![allow(clippy::undocumented_unsafe_blocks)]

use std::alloc::{GlobalAlloc, Layout};

use larder::Larder;
use proptest::prelude::*;

#[global_allocator]
static GLOBAL: Larder = Larder;

struct Live {
    ptr: *mut u8,
    layout: Layout,
    id: u64,
}

fn pattern(id: u64, i: usize) -> u8 {
    (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8 ^ (i as u8).wrapping_mul(31)
}

/// Fills the first and last 64 bytes and a stride in between (full fills of 4 MiB blocks a
/// million times would take minutes).
fn touched(len: usize) -> impl Iterator<Item = usize> {
    let head = 0..len.min(64);
    let tail = len.saturating_sub(64).max(len.min(64))..len;
    let stride = (64..len.saturating_sub(64)).step_by(4093);
    head.chain(stride).chain(tail)
}

unsafe fn fill(b: &Live) {
    for i in touched(b.layout.size()) {
        unsafe { *b.ptr.add(i) = pattern(b.id, i) };
    }
}

unsafe fn check(b: &Live, len: usize) {
    for i in touched(len) {
        let got = unsafe { *b.ptr.add(i) };
        assert_eq!(got, pattern(b.id, i), "block {} byte {i} of {len}", b.id);
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn size(&mut self) -> usize {
        match self.next() % 100 {
            0..=69 => (self.next() % 257) as usize,
            70..=89 => (self.next() % 8193) as usize,
            90..=98 => (self.next() % 262_145) as usize,
            _ => (self.next() % (4 << 20)) as usize,
        }
    }
    fn align(&mut self) -> usize {
        match self.next() % 10 {
            0 => 1 << (self.next() % 21),
            1 => 16,
            _ => 8,
        }
    }
}

fn run(ops: usize, seed: u64) {
    let a = Larder;
    let mut rng = Rng(seed | 1);
    let mut live: Vec<Live> = Vec::new();
    let mut next_id = 0;
    for _ in 0..ops {
        let op = rng.next() % 10;
        if op < 5 || live.is_empty() {
            let layout = Layout::from_size_align(rng.size(), rng.align()).unwrap();
            let ptr = unsafe { a.alloc(layout) };
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % layout.align(), 0);
            assert!(unsafe { larder::usable_size(ptr) } >= layout.size());
            next_id += 1;
            let b = Live {
                ptr,
                layout,
                id: next_id,
            };
            unsafe { fill(&b) };
            live.push(b);
        } else if op < 8 {
            let i = (rng.next() as usize) % live.len();
            let b = live.swap_remove(i);
            unsafe {
                check(&b, b.layout.size());
                a.dealloc(b.ptr, b.layout);
            }
        } else {
            let i = (rng.next() as usize) % live.len();
            let new_size = rng.size();
            let b = &mut live[i];
            let ptr = unsafe { a.realloc(b.ptr, b.layout, new_size) };
            assert!(!ptr.is_null());
            assert_eq!(ptr as usize % b.layout.align(), 0);
            let kept = b.layout.size().min(new_size);
            let old_len = b.layout.size();
            b.ptr = ptr;
            // The bytes that survive the move must be the old pattern.
            for i in touched(old_len).filter(|&i| i < kept) {
                assert_eq!(
                    unsafe { *ptr.add(i) },
                    pattern(b.id, i),
                    "realloc lost byte {i}"
                );
            }
            b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
            unsafe { fill(b) };
        }
        if live.len() > 2000 {
            let b = live.swap_remove(0);
            unsafe {
                check(&b, b.layout.size());
                a.dealloc(b.ptr, b.layout);
            }
        }
    }
    for b in live {
        unsafe {
            check(&b, b.layout.size());
            a.dealloc(b.ptr, b.layout);
        }
    }
}

#[test]
fn a_million_random_operations() {
    run(1_000_000, 0x1234_5678);
}

#[test]
fn random_operations_on_four_threads() {
    let threads: Vec<_> = (0..4)
        .map(|t| std::thread::spawn(move || run(150_000, 99 + t)))
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { size: usize, align_log: u32 },
    Free { index: usize },
    Realloc { index: usize, size: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![0usize..300, 0usize..70_000, 0usize..(3 << 20)];
    prop_oneof![
        (size.clone(), 0u32..21).prop_map(|(size, align_log)| Op::Alloc { size, align_log }),
        any::<usize>().prop_map(|index| Op::Free { index }),
        (any::<usize>(), size).prop_map(|(index, size)| Op::Realloc { index, size }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The model: a map from id to (size, alignment); larder must keep every block's contents
    /// and alignment through any sequence.
    #[test]
    fn blocks_keep_contents_and_alignment(ops in prop::collection::vec(op(), 1..120)) {
        let a = Larder;
        let mut live: Vec<Live> = Vec::new();
        for (id, op) in ops.into_iter().enumerate() {
            match op {
                Op::Alloc { size, align_log } => {
                    let layout = Layout::from_size_align(size, 1 << align_log).unwrap();
                    let ptr = unsafe { a.alloc(layout) };
                    prop_assert!(!ptr.is_null());
                    prop_assert_eq!(ptr as usize % layout.align(), 0);
                    let b = Live { ptr, layout, id: id as u64 };
                    unsafe { fill(&b) };
                    live.push(b);
                }
                Op::Free { index } if !live.is_empty() => {
                    let b = live.swap_remove(index % live.len());
                    unsafe { check(&b, b.layout.size()); a.dealloc(b.ptr, b.layout) };
                }
                Op::Realloc { index, size } if !live.is_empty() => {
                    let n = live.len();
                    let b = &mut live[index % n];
                    unsafe { check(b, b.layout.size()) };
                    let p = unsafe { a.realloc(b.ptr, b.layout, size) };
                    prop_assert!(!p.is_null());
                    prop_assert_eq!(p as usize % b.layout.align(), 0);
                    let kept = b.layout.size().min(size);
                    for i in touched(b.layout.size()).filter(|&i| i < kept) {
                        prop_assert_eq!(unsafe { *p.add(i) }, pattern(b.id, i));
                    }
                    b.ptr = p;
                    b.layout = Layout::from_size_align(size, b.layout.align()).unwrap();
                    unsafe { fill(b) };
                }
                _ => {}
            }
        }
        for b in live {
            unsafe { check(&b, b.layout.size()); a.dealloc(b.ptr, b.layout) };
        }
    }
}
