//! Buffer against a model (`Vec`), the two tests of the growable-buffer
//! design, and the buffer under `Failing` at every failure point of a
//! sequence of pushes, with `Counting` checking that nothing leaks.

use std::ptr::NonNull;
use std::rc::Rc;

use allocator_api2::alloc::{AllocError, Allocator, Global, Layout};
use larder::kit::buffer::{TryReserveError, GROWTH_RANGE};
use larder::{Arena, Buffer, Counting, Failing};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(u16),
    TryPush(u16),
    Reserve(usize),
    TryReserve(usize),
    Extend(Vec<u16>),
    TryExtend(Vec<u16>),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => any::<u16>().prop_map(Op::Push),
        4 => any::<u16>().prop_map(Op::TryPush),
        1 => (0usize..300).prop_map(Op::Reserve),
        1 => prop_oneof![0usize..300, Just(usize::MAX), Just(isize::MAX as usize)].prop_map(Op::TryReserve),
        2 => proptest::collection::vec(any::<u16>(), 0..100).prop_map(Op::Extend),
        2 => proptest::collection::vec(any::<u16>(), 0..100).prop_map(Op::TryExtend),
        1 => Just(Op::Clear),
    ]
}

/// Applies `op` to the buffer and the model; fallible operations that fail
/// must leave the buffer exactly as it was, and then the model is not changed.
fn apply<A: Allocator>(buffer: &mut Buffer<u16, A>, model: &mut Vec<u16>, op: &Op) {
    let before = (buffer.capacity(), buffer.as_ptr());
    let failed = match op {
        Op::Push(v) => {
            buffer.push(*v);
            model.push(*v);
            false
        }
        Op::TryPush(v) => match buffer.try_push(*v) {
            Ok(()) => {
                model.push(*v);
                false
            }
            Err(e) => {
                assert_eq!(e.value, *v, "the value comes back");
                true
            }
        },
        Op::Reserve(n) => {
            buffer.reserve(*n);
            assert!(buffer.capacity() - buffer.len() >= *n);
            false
        }
        Op::TryReserve(n) => match buffer.try_reserve(*n) {
            Ok(()) => {
                assert!(buffer.capacity() - buffer.len() >= *n);
                false
            }
            Err(_) => true,
        },
        Op::Extend(items) => {
            buffer.extend_from_slice(items);
            model.extend_from_slice(items);
            false
        }
        Op::TryExtend(items) => match buffer.try_extend_from_slice(items) {
            Ok(()) => {
                model.extend_from_slice(items);
                false
            }
            Err(_) => true,
        },
        Op::Clear => {
            buffer.clear();
            model.clear();
            false
        }
    };
    if failed {
        assert_eq!(
            (buffer.capacity(), buffer.as_ptr()),
            before,
            "a failure changes nothing"
        );
    }
    assert_eq!(buffer.as_slice(), model.as_slice());
    assert!(buffer.capacity() >= buffer.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn buffer_matches_model(
        alpha in GROWTH_RANGE,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let counting = Counting::new(Global);
        {
            let mut buffer = Buffer::with_growth_in(alpha, &counting).unwrap();
            let mut model = Vec::new();
            for op in &ops {
                apply(&mut buffer, &mut model, op);
            }
        }
        counting.assert_no_leaks();
    }

    #[test]
    fn buffer_matches_model_when_allocations_fail_at_random(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let counting = Counting::new(Global);
        {
            let failing = Failing::random(&counting, 0.3, seed);
            let mut buffer = Buffer::new_in(&failing);
            let mut model = Vec::new();
            for op in &ops {
                // Only the fallible operations may meet a refusal.
                let op = match op {
                    Op::Push(v) => Op::TryPush(*v),
                    Op::Reserve(n) => Op::TryReserve(*n),
                    Op::Extend(items) => Op::TryExtend(items.clone()),
                    other => other.clone(),
                };
                apply(&mut buffer, &mut model, &op);
            }
        }
        counting.assert_no_leaks();
    }
}

/// Design test 1: a buffer of capacity 8 holding "abc", grown to 128 in an
/// allocator that cannot grow in place (an arena moves every growing block),
/// still holds "abc".
#[test]
fn growing_from_8_to_128_moves_and_keeps_the_contents() {
    let arena = Arena::new();
    let mut buffer = Buffer::new_in(&arena);
    buffer.reserve(8);
    assert_eq!(buffer.capacity(), 8);
    buffer.extend_from_slice(b"abc");
    let before = buffer.as_ptr();
    buffer.reserve(128 - buffer.len());
    assert_eq!(buffer.capacity(), 128);
    assert_ne!(buffer.as_ptr(), before, "the block moved");
    assert_eq!(buffer.as_slice(), b"abc");

    // The same through the global allocator, whichever way it grows.
    let mut global = Buffer::new();
    global.reserve(8);
    global.extend_from_slice(b"abc");
    global.reserve(125);
    assert!(global.capacity() >= 128);
    assert_eq!(global.as_slice(), b"abc");
}

/// Design test 2: an error path frees what it allocated.
#[test]
fn an_error_path_frees_what_it_allocated() {
    fn build_table<A: Allocator>(
        allocator: A,
        rows: u64,
    ) -> Result<Buffer<u64, A>, TryReserveError> {
        let mut table = Buffer::new_in(allocator);
        table.try_reserve(4)?;
        for row in 0..rows {
            table.try_push(row).map_err(|e| e.error)?;
        }
        Ok(table)
    }

    let counting = Counting::new(Global);
    let failing = Failing::nth(&counting, 2);
    let result = build_table(&failing, 1000);
    assert!(matches!(result, Err(TryReserveError::AllocError { .. })));
    assert_eq!(failing.failures(), 1);
    assert_eq!(
        counting.total_allocations(),
        1,
        "the first block was allocated"
    );
    counting.assert_no_leaks();

    let table = build_table(&counting, 1000).expect("no failure without Failing");
    assert_eq!(table.len(), 1000);
    assert_eq!(counting.live_blocks(), 1);
    drop(table);
    counting.assert_no_leaks();
}

/// Pushes `count` values through `Failing::nth(n)`; checks that a refused
/// push leaves the buffer as it was, retries it, and returns the failures.
fn pushes_failing_at(n: u64, count: u64, alpha: f64) -> u64 {
    let counting = Counting::new(Global);
    let failures;
    {
        let failing = Failing::nth(&counting, n);
        let mut buffer = Buffer::with_growth_in(alpha, &failing).unwrap();
        for value in 0..count {
            let before: Vec<u64> = buffer.as_slice().to_vec();
            let capacity = buffer.capacity();
            if let Err(refused) = buffer.try_push(value) {
                assert_eq!(refused.value, value);
                assert_eq!(buffer.as_slice(), before.as_slice());
                assert_eq!(buffer.capacity(), capacity);
                buffer.try_push(value).expect("only one request is refused");
            }
        }
        assert!(buffer.iter().copied().eq(0..count));
        failures = failing.failures();
    }
    counting.assert_no_leaks();
    failures
}

#[test]
fn pushes_survive_a_failure_at_every_point() {
    for alpha in [1.5, 2.0] {
        let count = 3000;
        let probe = Failing::nth(Global, u64::MAX);
        let mut buffer = Buffer::with_growth_in(alpha, &probe).unwrap();
        for value in 0..count {
            buffer.push(value);
        }
        let requests = probe.calls();
        assert!(
            requests > 5,
            "{requests} growth requests for {count} pushes"
        );
        for n in 1..=requests {
            assert_eq!(
                pushes_failing_at(n, count, alpha),
                1,
                "request {n} of {requests}"
            );
        }
        assert_eq!(pushes_failing_at(requests + 1, count, alpha), 0);
    }
}

#[test]
fn growth_factor_outside_the_range_is_refused() {
    for alpha in [1.0, 1.49, 2.01, 3.0, f64::NAN, f64::INFINITY, -2.0] {
        let refused = Buffer::<u8>::with_growth(alpha).unwrap_err();
        assert!(refused.alpha.is_nan() || refused.alpha == alpha);
    }
    for alpha in [1.5, 1.75, 2.0] {
        assert_eq!(Buffer::<u8>::with_growth(alpha).unwrap().growth(), alpha);
    }
}

#[test]
fn capacity_grows_by_the_chosen_factor() {
    for (alpha, expected) in [(2.0, [4, 8, 16, 32, 64]), (1.5, [4, 6, 9, 13, 19])] {
        let mut buffer: Buffer<u32> = Buffer::with_growth(alpha).unwrap();
        let mut capacities = Vec::new();
        for value in 0..40 {
            buffer.push(value);
            if capacities.last() != Some(&buffer.capacity()) {
                capacities.push(buffer.capacity());
            }
        }
        assert_eq!(capacities[..5], expected, "alpha {alpha}");
    }
}

#[test]
fn capacity_overflow_is_an_error_not_a_wrap() {
    let mut buffer: Buffer<u64> = Buffer::new();
    buffer.push(1);
    assert_eq!(
        buffer.try_reserve(usize::MAX),
        Err(TryReserveError::CapacityOverflow)
    );
    assert_eq!(
        buffer.try_reserve(usize::MAX / 8),
        Err(TryReserveError::CapacityOverflow)
    );
    assert_eq!(buffer.as_slice(), &[1]);
    let mut units: Buffer<()> = Buffer::new();
    units.push(());
    assert_eq!(units.capacity(), usize::MAX);
    assert_eq!(
        units.try_reserve(usize::MAX),
        Err(TryReserveError::CapacityOverflow)
    );
}

#[test]
#[should_panic(expected = "capacity overflow")]
fn reserve_panics_on_overflow() {
    let mut buffer: Buffer<u64> = Buffer::new();
    buffer.push(1);
    buffer.reserve(usize::MAX);
}

/// A real allocator with slack: it hands out the next power of two.
struct PowerOfTwo<A>(A);

fn rounded(layout: Layout) -> Layout {
    Layout::from_size_align(layout.size().next_power_of_two(), layout.align()).unwrap()
}

// SAFETY: every block is a block of the inner allocator of the rounded
// layout, and rounding is idempotent, so a layout that fits the returned
// block rounds to the layout it was allocated with.
unsafe impl<A: Allocator> Allocator for PowerOfTwo<A> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.0.allocate(rounded(layout))
    }
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the block was allocated with `rounded(layout)`.
        unsafe { self.0.deallocate(ptr, rounded(layout)) }
    }
}

#[test]
fn slack_the_allocator_returns_becomes_capacity() {
    let counting = Counting::new(Global);
    {
        let mut buffer: Buffer<[u8; 3], _> = Buffer::new_in(PowerOfTwo(&counting));
        buffer.push([1, 2, 3]);
        // Asked for 4 elements (12 bytes), got 16 bytes: room for 5.
        assert_eq!(buffer.capacity(), 5);
        for i in 0..100u8 {
            buffer.push([i; 3]);
        }
        assert_eq!(buffer.len(), 101);
        assert_eq!(buffer[100], [99; 3]);
    }
    counting.assert_no_leaks();
}

#[test]
fn elements_are_dropped_once_by_clear_and_drop() {
    let shared = Rc::new(());
    let mut buffer = Buffer::new();
    for _ in 0..100 {
        buffer.push(Rc::clone(&shared));
    }
    buffer.clear();
    assert_eq!(Rc::strong_count(&shared), 1);
    assert!(buffer.capacity() >= 100);
    buffer.extend_from_slice(&[Rc::clone(&shared), Rc::clone(&shared)]);
    assert_eq!(Rc::strong_count(&shared), 3);
    drop(buffer);
    assert_eq!(Rc::strong_count(&shared), 1);
}
