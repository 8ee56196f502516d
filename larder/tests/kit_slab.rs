//! Slab against a model: random insert / remove / lookup sequences, with
//! every key ever issued checked after each step: live keys find their
//! value, stale keys miss.

use std::collections::{HashMap, HashSet};

use allocator_api2::alloc::Global;
use larder::{Counting, Key, Slab};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Insert(u32),
    Remove(usize),
    RemoveStale(usize),
    Mutate(usize, u32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => any::<u32>().prop_map(Op::Insert),
        3 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::RemoveStale),
        2 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Op::Mutate(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn slab_matches_model(ops in proptest::collection::vec(op(), 1..400)) {
        let counting = Counting::new(Global);
        {
            let mut slab = Slab::new_in(&counting);
            let mut model: HashMap<Key, u32> = HashMap::new();
            let mut live: Vec<Key> = Vec::new();
            let mut stale: Vec<Key> = Vec::new();
            for op in &ops {
                match *op {
                    Op::Insert(value) => {
                        let key = slab.insert(value);
                        prop_assert!(!model.contains_key(&key), "a live key was issued twice");
                        prop_assert!(!stale.contains(&key), "a stale key was issued again");
                        model.insert(key, value);
                        live.push(key);
                    }
                    Op::Remove(i) if !live.is_empty() => {
                        let key = live.swap_remove(i % live.len());
                        prop_assert_eq!(slab.remove(key), model.remove(&key));
                        stale.push(key);
                    }
                    Op::RemoveStale(i) if !stale.is_empty() => {
                        let key = stale[i % stale.len()];
                        prop_assert_eq!(slab.remove(key), None);
                    }
                    Op::Mutate(i, value) if !live.is_empty() => {
                        let key = live[i % live.len()];
                        *slab.get_mut(key).unwrap() = value;
                        model.insert(key, value);
                    }
                    _ => {}
                }
                prop_assert_eq!(slab.len(), model.len());
                for (key, value) in &model {
                    prop_assert_eq!(slab.get(*key), Some(value));
                }
                for key in &stale {
                    prop_assert_eq!(slab.get(*key), None);
                    prop_assert!(!slab.contains(*key));
                }
                let listed: HashSet<Key> = slab.iter().map(|(key, _)| key).collect();
                prop_assert_eq!(listed, model.keys().copied().collect::<HashSet<_>>());
            }
        }
        counting.assert_no_leaks();
    }
}

#[test]
fn a_stale_key_after_remove_and_reinsert_returns_none() {
    let mut slab = Slab::new();
    let old = slab.insert(String::from("first"));
    assert_eq!(slab.remove(old).as_deref(), Some("first"));
    let new = slab.insert(String::from("second"));
    assert_eq!(new.index(), old.index(), "the slot is reused");
    assert_ne!(new, old);
    assert_eq!(slab.get(old), None);
    assert!(slab.get_mut(old).is_none());
    assert_eq!(slab.remove(old), None);
    assert_eq!(slab.get(new).map(String::as_str), Some("second"));
}

#[test]
fn a_key_misses_in_a_slab_that_never_issued_it() {
    let mut one = Slab::new();
    let two: Slab<u8> = Slab::new();
    let key = one.insert(1u8);
    assert_eq!(two.get(key), None);
}

#[test]
fn removing_values_drops_them_once() {
    use std::rc::Rc;
    let shared = Rc::new(());
    let mut slab = Slab::new();
    let keys: Vec<Key> = (0..100).map(|_| slab.insert(Rc::clone(&shared))).collect();
    for key in &keys[..50] {
        drop(slab.remove(*key));
    }
    assert_eq!(Rc::strong_count(&shared), 51);
    drop(slab);
    assert_eq!(Rc::strong_count(&shared), 1);
}
