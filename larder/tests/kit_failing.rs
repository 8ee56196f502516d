//! Failing and Counting: which requests each plan refuses, what the counters
//! say, and that the wrappers stack.

use std::ptr::NonNull;

use allocator_api2::alloc::{Allocator, Global, Layout};
use allocator_api2::vec::Vec as ApiVec;
use larder::{Arena, Counting, Failing};

fn word() -> Layout {
    Layout::new::<u64>()
}

/// Makes `count` requests of `layout`, frees the granted ones, and returns
/// which request numbers (from 1) were refused.
fn refused_requests<A: Allocator>(allocator: &A, count: u64, layout: Layout) -> Vec<u64> {
    let mut refused = Vec::new();
    for number in 1..=count {
        match allocator.allocate(layout) {
            // SAFETY: the block was just allocated from `allocator` with `layout`.
            Ok(block) => unsafe { allocator.deallocate(block.cast(), layout) },
            Err(_) => refused.push(number),
        }
    }
    refused
}

#[test]
fn nth_refuses_only_that_request() {
    let failing = Failing::nth(Global, 3);
    assert_eq!(refused_requests(&failing, 10, word()), [3]);
    assert_eq!((failing.calls(), failing.failures()), (10, 1));
}

#[test]
fn every_refuses_each_multiple() {
    let failing = Failing::every(Global, 3);
    assert_eq!(refused_requests(&failing, 10, word()), [3, 6, 9]);
    assert_eq!(failing.failures(), 3);
    let always = Failing::every(Global, 1);
    assert_eq!(refused_requests(&always, 4, word()).len(), 4);
}

#[test]
fn random_is_reproducible_and_near_its_probability() {
    let first = refused_requests(&Failing::random(Global, 0.3, 42), 10_000, word());
    let again = refused_requests(&Failing::random(Global, 0.3, 42), 10_000, word());
    let other = refused_requests(&Failing::random(Global, 0.3, 43), 10_000, word());
    assert_eq!(first, again, "same seed, same failures");
    assert_ne!(first, other, "another seed, other failures");
    assert!(
        (2_700..3_300).contains(&first.len()),
        "{} of 10000 refused",
        first.len()
    );
    assert!(refused_requests(&Failing::random(Global, 0.0, 7), 1000, word()).is_empty());
    assert_eq!(
        refused_requests(&Failing::random(Global, 1.0, 7), 1000, word()).len(),
        1000
    );
}

#[test]
#[should_panic(expected = "probability")]
fn random_refuses_a_probability_outside_0_1() {
    let _ = Failing::random(Global, 1.5, 0);
}

#[test]
#[should_panic(expected = "from 1")]
fn nth_refuses_request_zero() {
    let _ = Failing::nth(Global, 0);
}

#[test]
fn budget_refuses_what_would_exceed_it_and_frees_make_room() {
    let failing = Failing::budget(Global, 100);
    let sixty = Layout::from_size_align(60, 1).unwrap();
    let fifty = Layout::from_size_align(50, 1).unwrap();
    let forty = Layout::from_size_align(40, 1).unwrap();
    let a = failing.allocate(sixty).unwrap();
    assert!(failing.allocate(fifty).is_err());
    let b = failing.allocate(forty).unwrap();
    assert_eq!(failing.live_bytes(), 100);
    // SAFETY: `b` came from `failing` with `forty`; the grow is refused.
    assert!(unsafe { failing.grow(b.cast(), forty, fifty) }.is_err());
    // SAFETY: `a` came from `failing` with `sixty`.
    unsafe { failing.deallocate(a.cast(), sixty) };
    // SAFETY: `b` came from `failing` with `forty`; now the grow fits.
    let b = unsafe { failing.grow(b.cast(), forty, fifty) }.unwrap();
    assert_eq!(failing.live_bytes(), 50);
    // SAFETY: `b` came from `failing` with `fifty`.
    unsafe { failing.deallocate(b.cast(), fifty) };
    assert_eq!(failing.live_bytes(), 0);
    assert_eq!((failing.calls(), failing.failures()), (5, 2));
}

#[test]
fn a_refused_request_never_reaches_the_inner_allocator() {
    let counting = Counting::new(Global);
    let failing = Failing::every(&counting, 2);
    assert_eq!(refused_requests(&failing, 10, word()), [2, 4, 6, 8, 10]);
    assert_eq!(counting.total_allocations(), 5);
    counting.assert_no_leaks();
}

#[test]
fn counting_follows_grow_and_shrink() {
    let counting = Counting::new(Global);
    let small = Layout::from_size_align(16, 8).unwrap();
    let large = Layout::from_size_align(1000, 8).unwrap();
    let block: NonNull<[u8]> = counting.allocate_zeroed(small).unwrap();
    assert_eq!((counting.live_blocks(), counting.live_bytes()), (1, 16));
    // SAFETY: `block` came from `counting` with `small`.
    let block = unsafe { counting.grow(block.cast(), small, large) }.unwrap();
    assert_eq!((counting.live_blocks(), counting.live_bytes()), (1, 1000));
    assert_eq!(
        (counting.total_allocations(), counting.total_grows()),
        (1, 1)
    );
    // SAFETY: `block` came from `counting` with `large`.
    let block = unsafe { counting.shrink(block.cast(), large, small) }.unwrap();
    assert_eq!((counting.live_blocks(), counting.live_bytes()), (1, 16));
    // SAFETY: `block` came from `counting` with `small`.
    unsafe { counting.deallocate(block.cast(), small) };
    counting.assert_no_leaks();
}

#[test]
#[should_panic(expected = "leak: 1 block(s) holding 8 byte(s) still live")]
fn assert_no_leaks_names_the_count() {
    let counting = Counting::new(Global);
    let _kept = counting.allocate(word()).unwrap();
    counting.assert_no_leaks();
}

#[test]
fn wrappers_stack_through_references() {
    let counting = Counting::new(Global);
    {
        let failing = Failing::nth(&counting, 3);
        let arena = Arena::with_capacity_in(64, &failing);
        let mut items: ApiVec<u64, &Arena<&Failing<&Counting<Global>>>> = ApiVec::new_in(&arena);
        items.extend(0..8u64);
        // Second chunk: request 2, granted. Third chunk: request 3, refused.
        assert!(items.try_reserve(1000).is_ok());
        assert!(items.try_reserve(100_000).is_err());
        assert_eq!(failing.failures(), 1);
        assert_eq!(counting.live_blocks(), 2);
    }
    counting.assert_no_leaks();
}
