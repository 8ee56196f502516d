//! Arena against a model: random allocation sequences between resets, every
//! value checked after every step; drops, chunk reuse and the allocator
//! interface checked directly.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;

use allocator_api2::alloc::{Allocator, Global, Layout};
use allocator_api2::vec::Vec as ApiVec;
use larder::{Arena, Counting, Failing};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Word(u64),
    Text(String),
    Bytes(Vec<u8>),
    Wide(u128),
    Shared,
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u64>().prop_map(Op::Word),
        2 => ".{0,40}".prop_map(Op::Text),
        2 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(Op::Bytes),
        1 => any::<u128>().prop_map(Op::Wide),
        2 => Just(Op::Shared),
        1 => Just(Op::Reset),
    ]
}

/// A reference into the arena next to the value it must still hold.
enum Held<'a> {
    Word(&'a mut u64, u64),
    Text(&'a mut str, String),
    Owned(&'a mut String, String),
    Bytes(&'a mut [u8], Vec<u8>),
    Wide(&'a mut u128, u128),
}

fn check(held: &[Held<'_>]) {
    for item in held {
        match item {
            Held::Word(got, want) => assert_eq!(**got, *want),
            Held::Text(got, want) => assert_eq!(&**got, want.as_str()),
            Held::Owned(got, want) => assert_eq!(*got, want),
            Held::Bytes(got, want) => assert_eq!(&**got, want.as_slice()),
            Held::Wide(got, want) => {
                assert_eq!(**got, *want);
                assert_eq!(
                    *got as *const u128 as usize % std::mem::align_of::<u128>(),
                    0
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arena_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let counting = Counting::new(Global);
        let shared = Rc::new(());
        {
            let mut arena = Arena::new_in(&counting);
            for epoch in ops.split(|op| matches!(op, Op::Reset)) {
                let mut held = Vec::new();
                let mut shared_clones = 0;
                let mut min_bytes = 0;
                for op in epoch {
                    match op {
                        Op::Word(v) => {
                            held.push(Held::Word(arena.alloc(*v), *v));
                            min_bytes += 8;
                        }
                        Op::Text(s) => {
                            held.push(Held::Text(arena.alloc_str(s), s.clone()));
                            held.push(Held::Owned(arena.alloc(s.clone()), s.clone()));
                            min_bytes += s.len() + std::mem::size_of::<String>();
                        }
                        Op::Bytes(b) => {
                            held.push(Held::Bytes(arena.alloc_slice_copy(b), b.clone()));
                            min_bytes += b.len();
                        }
                        Op::Wide(v) => {
                            held.push(Held::Wide(arena.alloc(*v), *v));
                            min_bytes += 16;
                        }
                        Op::Shared => {
                            arena.alloc(Rc::clone(&shared));
                            shared_clones += 1;
                        }
                        Op::Reset => unreachable!("split on resets"),
                    }
                    check(&held);
                    prop_assert_eq!(Rc::strong_count(&shared), 1 + shared_clones);
                    prop_assert!(arena.allocated_bytes() >= min_bytes);
                }
                drop(held);
                arena.reset();
                prop_assert_eq!(Rc::strong_count(&shared), 1, "reset drops every clone");
                prop_assert_eq!(arena.allocated_bytes(), 0);
                prop_assert!(counting.live_blocks() <= 1, "reset keeps only one chunk");
            }
        }
        counting.assert_no_leaks();
    }
}

#[test]
fn drop_of_the_arena_drops_its_values() {
    let shared = Rc::new(5);
    {
        let arena = Arena::new();
        for _ in 0..10_000 {
            arena.alloc(Rc::clone(&shared));
        }
        assert_eq!(Rc::strong_count(&shared), 10_001);
    }
    assert_eq!(Rc::strong_count(&shared), 1);
}

#[test]
fn reset_keeps_the_largest_chunk_and_reuses_it() {
    let counting = Counting::new(Global);
    let mut arena = Arena::new_in(&counting);
    for round in 0..3 {
        for i in 0..100_000u64 {
            arena.alloc(i);
        }
        assert!(arena.allocated_bytes() >= 800_000);
        let allocations_before_reset = counting.total_allocations();
        arena.reset();
        assert_eq!(counting.live_blocks(), 1);
        if round > 0 {
            // The kept chunk holds a whole round: nothing more was asked for.
            assert_eq!(allocations_before_reset, counting.total_allocations());
        }
    }
    drop(arena);
    counting.assert_no_leaks();
}

#[test]
fn with_capacity_serves_that_many_bytes_from_one_chunk() {
    let counting = Counting::new(Global);
    let arena = Arena::with_capacity_in(1 << 16, &counting);
    assert_eq!(counting.total_allocations(), 1);
    for i in 0..(1 << 13) as u64 {
        arena.alloc(i);
    }
    assert_eq!(counting.total_allocations(), 1);
    assert_eq!(arena.allocated_bytes(), 1 << 16);
}

#[test]
fn arena_is_an_allocator_for_collections() {
    let arena = Arena::new();
    let mut words: ApiVec<String, &Arena> = ApiVec::new_in(&arena);
    for i in 0..1000 {
        words.push(i.to_string());
    }
    assert_eq!(words[999], "999");
    let sum: usize = words.iter().map(|w| w.len()).sum();
    assert_eq!(sum, 10 + 90 * 2 + 900 * 3);
}

#[test]
fn large_alignments_are_honoured() {
    let arena = Arena::new();
    for align in [1usize, 2, 8, 64, 4096, 1 << 16] {
        let layout = Layout::from_size_align(24, align).unwrap();
        let block = (&arena).allocate(layout).unwrap();
        assert_eq!(block.cast::<u8>().as_ptr() as usize % align, 0);
        assert_eq!(block.len(), 24);
    }
    let empty = (&arena)
        .allocate(Layout::from_size_align(0, 32).unwrap())
        .unwrap();
    assert_eq!(empty.cast::<u8>().as_ptr() as usize % 32, 0);
}

#[test]
fn zero_sized_values_and_empty_slices() {
    let arena = Arena::new();
    let unit: &mut () = arena.alloc(());
    *unit = ();
    let empty: &mut [u64] = arena.alloc_slice_copy(&[]);
    assert!(empty.is_empty());
    assert_eq!(arena.alloc_str(""), "");
}

#[test]
fn a_refused_chunk_is_an_error_through_the_allocator_interface() {
    let counting = Counting::new(Global);
    let failing = Failing::nth(&counting, 2);
    let arena = Arena::new_in(&failing);
    let mut small: ApiVec<u8, &Arena<&Failing<&Counting<Global>>>> = ApiVec::new_in(&arena);
    small.try_reserve(100).expect("the first chunk is granted");
    assert!(
        small.try_reserve(1 << 20).is_err(),
        "the second chunk is refused"
    );
    assert_eq!(small.capacity(), 100);
    drop(small);
    drop(arena);
    counting.assert_no_leaks();
}

#[test]
fn a_panicking_destructor_does_not_stop_the_others() {
    struct Bomb(Rc<Cell<u32>>, bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            if self.1 {
                panic!("bomb");
            }
        }
    }
    let dropped = Rc::new(Cell::new(0));
    let mut arena = Arena::new();
    for i in 0..10 {
        arena.alloc(Bomb(Rc::clone(&dropped), i == 5));
    }
    let result = catch_unwind(AssertUnwindSafe(|| arena.reset()));
    assert!(result.is_err());
    assert_eq!(dropped.get(), 10);
    arena.reset();
    assert_eq!(dropped.get(), 10, "nothing is dropped twice");
}
