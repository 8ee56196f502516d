//! The toolkit on larder itself: a `Buffer` in `larder::Larder` takes the slack of larder's
//! size classes as capacity, grows large blocks in place, and so needs fewer reallocations than
//! the same growth policy in an allocator that reports no slack.

use allocator_api2::alloc::{Allocator, Global, Layout};
use allocator_api2::vec::Vec as ApiVec;
use larder::{Buffer, Counting, Failing, Larder};

/// Pushes `bytes` bytes one at a time and records, for every growth, the pointer and capacity
/// before and after.
fn growths(alpha: f64, bytes: usize) -> (Buffer<u8, Larder>, Vec<Growth>) {
    let mut buffer = Buffer::with_growth_in(alpha, Larder).expect("alpha is in range");
    let mut seen = Vec::new();
    let mut before = (buffer.as_slice().as_ptr(), buffer.capacity());
    for i in 0..bytes {
        buffer.push(i as u8);
        let now = (buffer.as_slice().as_ptr(), buffer.capacity());
        if now.1 != before.1 {
            // SAFETY: the buffer's block is a live block of larder's.
            let usable = unsafe { larder::usable_size(now.0) };
            seen.push(Growth {
                old_ptr: before.0,
                old_capacity: before.1,
                new_ptr: now.0,
                new_capacity: now.1,
                usable,
            });
            before = now;
        }
    }
    (buffer, seen)
}

struct Growth {
    old_ptr: *const u8,
    old_capacity: usize,
    new_ptr: *const u8,
    new_capacity: usize,
    usable: usize,
}

#[test]
fn a_buffer_in_larder_takes_the_slack_and_grows_in_place() {
    const BYTES: usize = 48 << 20;
    let (buffer, seen) = growths(1.5, BYTES);
    for g in &seen {
        assert_eq!(
            g.new_capacity, g.usable,
            "capacity {} is not the block's usable size {}",
            g.new_capacity, g.usable
        );
    }
    // α = 1.5 asks for sizes between larder's classes: the class's slack becomes capacity.
    let with_slack = seen
        .iter()
        .filter(|g| g.old_capacity != 0 && g.new_capacity > g.old_capacity * 3 / 2 + 1)
        .count();
    assert!(
        with_slack > 0,
        "no growth took more capacity than it asked for"
    );
    // Large blocks live in their own segments and grow into the address space after them.
    let in_place = seen
        .iter()
        .filter(|g| g.old_capacity != 0 && g.new_ptr == g.old_ptr)
        .count();
    assert!(
        in_place > 0,
        "no growth of {} kept the block in place",
        seen.len()
    );
    assert_eq!(buffer.len(), BYTES);
    assert!(buffer.iter().enumerate().all(|(i, &b)| b == i as u8));
}

/// Grow calls to push `count` u64 into a Buffer growing by `alpha` in `allocator`.
fn grows_to_push<A: Allocator>(alpha: f64, allocator: A, count: u64) -> usize {
    let counting = Counting::new(allocator);
    let mut buffer = Buffer::with_growth_in(alpha, &counting).expect("alpha is in range");
    for i in 0..count {
        buffer.push(i);
    }
    assert!(buffer.iter().copied().eq(0..count));
    drop(buffer);
    counting.assert_no_leaks();
    counting.total_grows()
}

#[test]
fn larders_slack_saves_reallocations() {
    const PUSHES: u64 = 1 << 20;
    // The system allocator's `Allocator` impl reports exactly the size asked for; larder's
    // reports its size class, so the same growth policy needs fewer `grow` calls.
    let without_slack = grows_to_push(1.5, Global, PUSHES);
    let with_slack = grows_to_push(1.5, Larder, PUSHES);
    assert!(
        with_slack < without_slack,
        "α=1.5: {with_slack} grows in larder, {without_slack} without slack"
    );
    // Vec asks for powers of two, which are exact classes: no slack, the same growths.
    let counting = Counting::new(Larder);
    let mut vec = ApiVec::new_in(&counting);
    for i in 0..PUSHES {
        vec.push(i);
    }
    let vec_grows = counting.total_grows();
    assert_eq!(vec_grows, grows_to_push(2.0, Larder, PUSHES));
}

/// A block handed out with slack may come back with any size between the one asked for and
/// the one handed out; the counting wrappers must still balance to zero.
#[test]
fn counting_and_budgets_balance_when_the_caller_takes_the_slack() {
    let counting = Counting::new(Larder);
    let budget = Failing::budget(&counting, 1 << 20);
    let asked = Layout::from_size_align(12, 4).unwrap();
    let block = budget.allocate(asked).unwrap();
    assert!(block.len() > 12, "larder hands out its size class");
    assert_eq!((counting.live_bytes(), budget.live_bytes()), (12, 12));
    let taken = Layout::from_size_align(block.len(), 4).unwrap();
    let middle = Layout::from_size_align(14, 4).unwrap();
    // SAFETY: the block is live; `taken` fits it (between asked and handed-out sizes), and
    // `middle` is smaller.
    let block = unsafe { budget.shrink(block.cast(), taken, middle).unwrap() };
    assert_eq!((counting.live_bytes(), budget.live_bytes()), (14, 14));
    // SAFETY: the block is live and `middle` fits it.
    unsafe { budget.deallocate(block.cast(), middle) };
    assert_eq!(budget.live_bytes(), 0);
    counting.assert_no_leaks();

    // The same through a Buffer, whose capacity is the slack (3-byte elements, so its
    // layouts are not the block sizes either).
    let mut buffer: Buffer<[u8; 3], _> = Buffer::with_growth_in(1.5, &budget).unwrap();
    for i in 0..100_000u32 {
        buffer.push([i as u8; 3]);
    }
    assert!(counting.live_bytes() >= 300_000);
    assert_eq!(counting.live_bytes(), budget.live_bytes());
    drop(buffer);
    assert_eq!(budget.live_bytes(), 0);
    counting.assert_no_leaks();
}
