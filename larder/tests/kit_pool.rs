//! Pool against a model: random alloc / free / mutate sequences with every
//! live box checked after each step; slot reuse and block release checked.

use std::cell::Cell;
use std::rc::Rc;

use allocator_api2::alloc::Global;
use larder::{Counting, Pool, PoolBox};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Alloc(u64),
    Free(usize),
    Mutate(usize, u64),
    IntoInner(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => any::<u64>().prop_map(Op::Alloc),
        3 => any::<usize>().prop_map(Op::Free),
        2 => (any::<usize>(), any::<u64>()).prop_map(|(i, v)| Op::Mutate(i, v)),
        1 => any::<usize>().prop_map(Op::IntoInner),
    ]
}

/// A value that counts its drops, so the test sees each one exactly once.
struct Tracked {
    value: u64,
    padding: [u64; 3],
    drops: Rc<Cell<usize>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pool_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        let counting = Counting::new(Global);
        let drops = Rc::new(Cell::new(0));
        let mut created = 0usize;
        {
            let pool = Pool::new_in(&counting);
            let mut live: Vec<PoolBox<'_, Tracked, &Counting<Global>>> = Vec::new();
            let mut model: Vec<u64> = Vec::new();
            for op in &ops {
                match *op {
                    Op::Alloc(value) => {
                        live.push(pool.alloc(Tracked { value, padding: [value; 3], drops: Rc::clone(&drops) }));
                        model.push(value);
                        created += 1;
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let i = i % live.len();
                        drop(live.swap_remove(i));
                        model.swap_remove(i);
                    }
                    Op::Mutate(i, value) if !live.is_empty() => {
                        let i = i % live.len();
                        live[i].value = value;
                        live[i].padding = [value; 3];
                        model[i] = value;
                    }
                    Op::IntoInner(i) if !live.is_empty() => {
                        let i = i % live.len();
                        let inner = PoolBox::into_inner(live.swap_remove(i));
                        prop_assert_eq!(inner.value, model.swap_remove(i));
                    }
                    _ => {}
                }
                for (boxed, want) in live.iter().zip(&model) {
                    prop_assert_eq!(boxed.value, *want);
                    prop_assert_eq!(boxed.padding, [*want; 3]);
                }
                // Distinct live boxes never share a slot.
                let mut addresses: Vec<usize> = live.iter().map(|b| &**b as *const Tracked as usize).collect();
                addresses.sort_unstable();
                addresses.dedup();
                prop_assert_eq!(addresses.len(), live.len());
                prop_assert_eq!(drops.get(), created - live.len());
            }
        }
        prop_assert_eq!(drops.get(), created);
        counting.assert_no_leaks();
    }
}

#[test]
fn a_freed_slot_is_reused_before_new_memory() {
    let pool = Pool::new();
    let a = pool.alloc([1u8; 48]);
    let address = &*a as *const [u8; 48];
    drop(a);
    let b = pool.alloc([2u8; 48]);
    assert_eq!(&*b as *const [u8; 48], address);
    assert_eq!(*b, [2u8; 48]);
}

#[test]
fn blocks_grow_and_go_back_when_the_pool_drops() {
    let counting = Counting::new(Global);
    {
        let pool = Pool::new_in(&counting);
        let boxes: Vec<_> = (0..100_000u64).map(|i| pool.alloc(i)).collect();
        assert!(boxes.iter().enumerate().all(|(i, b)| **b == i as u64));
        // Blocks double, so 800 KB of slots take a handful of blocks.
        assert!(
            counting.live_blocks() < 20,
            "{} blocks",
            counting.live_blocks()
        );
    }
    counting.assert_no_leaks();
}

#[test]
fn zero_sized_values_get_slots_too() {
    let pool = Pool::new();
    let units: Vec<_> = (0..1000).map(|_| pool.alloc(())).collect();
    assert_eq!(units.len(), 1000);
}

#[test]
fn over_aligned_values_are_aligned() {
    #[repr(align(256))]
    struct Page(u8);
    let pool = Pool::new();
    let pages: Vec<_> = (0..50).map(|i| pool.alloc(Page(i))).collect();
    for (i, page) in pages.iter().enumerate() {
        assert_eq!(&**page as *const Page as usize % 256, 0);
        assert_eq!(page.0, i as u8);
    }
}
