//! `Failing<A>`: an allocator wrapper that makes chosen allocation requests
//! fail, so that error paths can be tested at every point they can be taken.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use allocator_api2::alloc::{AllocError, Allocator, Layout};

use super::asked::AskedSizes;

/// Which requests a [`Failing`] refuses.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FailurePlan {
    /// Only the n-th request (counting from 1).
    Nth(u64),
    /// Every n-th request: n, 2n, 3n, ...
    Every(u64),
    /// Each request independently with this probability.
    Random(f64),
    /// Any request that would bring the live bytes above this budget.
    Budget(usize),
}

/// Wraps any allocator and makes chosen allocation requests fail.
///
/// A *request* is a call to `allocate`, `allocate_zeroed`, `grow` or
/// `grow_zeroed`; requests are numbered from 1 in the order they arrive.
/// `deallocate` and `shrink` always pass through. A refused request returns
/// `Err(AllocError)` without touching the inner allocator.
///
/// ```
/// use allocator_api2::alloc::{Allocator, Global, Layout};
/// use larder::Failing;
///
/// let failing = Failing::nth(Global, 2);
/// let layout = Layout::new::<u64>();
/// let first = failing.allocate(layout).expect("the first request succeeds");
/// assert!(failing.allocate(layout).is_err(), "the second request fails");
/// // SAFETY: `first` came from `failing` with this layout.
/// unsafe { failing.deallocate(first.cast(), layout) };
/// assert_eq!((failing.calls(), failing.failures()), (2, 1));
/// ```
///
/// Wrappers stack through references, e.g. failing the third allocation
/// that goes through a [`Counting`](crate::Counting):
///
/// ```
/// use allocator_api2::alloc::Global;
/// use larder::{Buffer, Counting, Failing};
///
/// let counting = Counting::new(Global);
/// let failing = Failing::nth(&counting, 3);
/// let mut buffer = Buffer::new_in(&failing);
/// let mut pushed = 0u64;
/// while buffer.try_push(pushed).is_ok() {
///     pushed += 1;
/// }
/// assert_eq!(buffer.len() as u64, pushed); // nothing lost at the failure
/// drop(buffer);
/// counting.assert_no_leaks();
/// ```
#[derive(Debug)]
pub struct Failing<A> {
    inner: A,
    plan: FailurePlan,
    calls: AtomicU64,
    failures: AtomicU64,
    live_bytes: AtomicUsize,
    random_state: AtomicU64,
    /// What was asked for the blocks `inner` made bigger (the budget counts that).
    asked: AskedSizes,
}

impl<A> Failing<A> {
    fn with_plan(inner: A, plan: FailurePlan, seed: u64) -> Self {
        Failing {
            inner,
            plan,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            live_bytes: AtomicUsize::new(0),
            random_state: AtomicU64::new(seed),
            asked: AskedSizes::new(),
        }
    }

    /// Fails only the `n`-th request, counting from 1.
    ///
    /// # Panics
    /// If `n` is 0 (there is no request number 0).
    pub fn nth(inner: A, n: u64) -> Self {
        assert!(n >= 1, "Failing::nth counts requests from 1");
        Self::with_plan(inner, FailurePlan::Nth(n), 0)
    }

    /// Fails every `n`-th request: the `n`-th, the `2n`-th, and so on.
    ///
    /// # Panics
    /// If `n` is 0.
    pub fn every(inner: A, n: u64) -> Self {
        assert!(n >= 1, "Failing::every needs a period of at least 1");
        Self::with_plan(inner, FailurePlan::Every(n), 0)
    }

    /// Fails each request with probability `p`, drawn from a generator seeded
    /// with `seed`: the same seed and the same requests fail the same calls.
    ///
    /// # Panics
    /// If `p` is not within `0.0..=1.0`.
    pub fn random(inner: A, p: f64, seed: u64) -> Self {
        assert!(
            (0.0..=1.0).contains(&p),
            "Failing::random needs a probability in [0, 1], got {p}"
        );
        Self::with_plan(inner, FailurePlan::Random(p), seed)
    }

    /// Fails any request that would bring the bytes live through this wrapper
    /// above `bytes`. Freeing memory makes room again.
    pub fn budget(inner: A, bytes: usize) -> Self {
        Self::with_plan(inner, FailurePlan::Budget(bytes), 0)
    }

    /// Requests seen so far (refused ones included).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Requests refused so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Bytes (as requested by the layouts) live through this wrapper.
    pub fn live_bytes(&self) -> usize {
        self.live_bytes.load(Ordering::Relaxed)
    }

    /// The wrapped allocator.
    pub fn inner(&self) -> &A {
        &self.inner
    }

    /// Numbers the request and decides whether it is refused; for the budget
    /// plan, also reserves `added_bytes` of the budget when it is granted.
    fn admit(&self, added_bytes: usize) -> Result<(), AllocError> {
        let number = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        let refused = match self.plan {
            FailurePlan::Nth(n) => number == n,
            FailurePlan::Every(n) => number % n == 0,
            FailurePlan::Random(p) => unit_interval(self.next_random()) < p,
            FailurePlan::Budget(limit) => self
                .live_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |live| {
                    live.checked_add(added_bytes)
                        .filter(|&total| total <= limit)
                })
                .is_err(),
        };
        if refused {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return Err(AllocError);
        }
        if !matches!(self.plan, FailurePlan::Budget(_)) {
            self.live_bytes.fetch_add(added_bytes, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Gives back bytes taken by `admit` (the inner allocator failed on its
    /// own, or a block was freed or shrunk).
    fn release(&self, bytes: usize) {
        self.live_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// SplitMix64: a counter stepped by a fixed odd constant, then mixed.
    /// Stepping is one atomic add, so the sequence stays reproducible.
    fn next_random(&self) -> u64 {
        const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut z = self
            .random_state
            .fetch_add(GOLDEN_GAMMA, Ordering::Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Maps 64 random bits to a float uniform in `[0, 1)` (53 bits of precision).
fn unit_interval(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

// SAFETY: a granted request is forwarded unchanged to `inner`, and a refused
// one returns an error without allocating, so every block handed out is a
// block of `inner`, valid under `inner`'s guarantees.
unsafe impl<A: Allocator> Allocator for Failing<A> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.admit(layout.size())?;
        let block = self
            .inner
            .allocate(layout)
            .inspect_err(|_| self.release(layout.size()))?;
        self.asked.note(block, layout.size());
        Ok(block)
    }

    fn allocate_zeroed(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        self.admit(layout.size())?;
        let block = self
            .inner
            .allocate_zeroed(layout)
            .inspect_err(|_| self.release(layout.size()))?;
        self.asked.note(block, layout.size());
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        let counted = self.asked.take(ptr).unwrap_or(layout.size());
        // SAFETY: the caller upholds `deallocate`'s contract, which is `inner`'s.
        unsafe { self.inner.deallocate(ptr, layout) };
        self.release(counted);
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded unchanged; the caller upholds `grow`'s contract.
        self.grow_with(ptr, old_layout, new_layout, |inner| unsafe {
            inner.grow(ptr, old_layout, new_layout)
        })
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded unchanged; the caller upholds `grow_zeroed`'s contract.
        self.grow_with(ptr, old_layout, new_layout, |inner| unsafe {
            inner.grow_zeroed(ptr, old_layout, new_layout)
        })
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let taken = self.asked.take(ptr);
        // SAFETY: forwarded unchanged; the caller upholds `shrink`'s contract.
        let block = match unsafe { self.inner.shrink(ptr, old_layout, new_layout) } {
            Ok(block) => block,
            Err(error) => {
                self.asked.restore(ptr, taken);
                return Err(error);
            }
        };
        self.asked.note(block, new_layout.size());
        // The size counted may be below the new one when the caller had taken slack.
        let counted = taken.unwrap_or(old_layout.size());
        if counted >= new_layout.size() {
            self.release(counted - new_layout.size());
        } else {
            self.live_bytes
                .fetch_add(new_layout.size() - counted, Ordering::Relaxed);
        }
        Ok(block)
    }
}

impl<A: Allocator> Failing<A> {
    /// A grow request: numbered and admitted (or refused) like an allocation of the bytes it
    /// adds, then forwarded to `inner_grow`.
    fn grow_with(
        &self,
        ptr: NonNull<u8>,
        old_layout: Layout,
        new_layout: Layout,
        inner_grow: impl FnOnce(&A) -> Result<NonNull<[u8]>, AllocError>,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let taken = self.asked.take(ptr);
        let added = new_layout.size() - taken.unwrap_or(old_layout.size());
        let granted = self
            .admit(added)
            .and_then(|()| inner_grow(&self.inner).inspect_err(|_| self.release(added)));
        match granted {
            Ok(block) => {
                self.asked.note(block, new_layout.size());
                Ok(block)
            }
            Err(error) => {
                self.asked.restore(ptr, taken);
                Err(error)
            }
        }
    }
}
