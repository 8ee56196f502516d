//! The atomic words of the cross-thread free list, behind one trait, so that the code of
//! `remote.rs` runs unchanged on core's atomics in larder and on loom's in the model checker
//! (`tests/loom_remote.rs`, built with `--cfg loom`). Larder's structures keep core's atomics
//! (their constructors are `const`, loom's are not); the functions of `remote.rs` are generic
//! over this trait, so in larder they compile to exactly the code they would on core's types.

pub use core::sync::atomic::Ordering;
use core::sync::atomic::{AtomicPtr, AtomicUsize};

/// A word the cross-thread free list updates atomically: only the operations it uses.
pub trait AtomicWord {
    /// What the word holds (`usize` or a pointer).
    type Value: Copy;

    /// Loads the value.
    fn load(&self, order: Ordering) -> Self::Value;

    /// Stores `new` if the word holds `current`; may fail spuriously.
    fn compare_exchange_weak(
        &self,
        current: Self::Value,
        new: Self::Value,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Self::Value, Self::Value>;

    /// Stores `value`, returning what the word held.
    fn swap(&self, value: Self::Value, order: Ordering) -> Self::Value;

    /// Lets other threads run while this one waits for another thread to change the word.
    fn wait_for_change(&self);
}

/// Spins once, then gives the core away: the thread being waited for may be on this core.
#[inline]
fn yield_core() {
    core::hint::spin_loop();
    // SAFETY: sched_yield has no preconditions.
    unsafe { libc::sched_yield() };
}

impl AtomicWord for AtomicUsize {
    type Value = usize;

    #[inline(always)]
    fn load(&self, order: Ordering) -> usize {
        AtomicUsize::load(self, order)
    }

    #[inline(always)]
    fn compare_exchange_weak(
        &self,
        current: usize,
        new: usize,
        success: Ordering,
        failure: Ordering,
    ) -> Result<usize, usize> {
        AtomicUsize::compare_exchange_weak(self, current, new, success, failure)
    }

    #[inline(always)]
    fn swap(&self, value: usize, order: Ordering) -> usize {
        AtomicUsize::swap(self, value, order)
    }

    #[inline]
    fn wait_for_change(&self) {
        yield_core();
    }
}

impl<T> AtomicWord for AtomicPtr<T> {
    type Value = *mut T;

    #[inline(always)]
    fn load(&self, order: Ordering) -> *mut T {
        AtomicPtr::load(self, order)
    }

    #[inline(always)]
    fn compare_exchange_weak(
        &self,
        current: *mut T,
        new: *mut T,
        success: Ordering,
        failure: Ordering,
    ) -> Result<*mut T, *mut T> {
        AtomicPtr::compare_exchange_weak(self, current, new, success, failure)
    }

    #[inline(always)]
    fn swap(&self, value: *mut T, order: Ordering) -> *mut T {
        AtomicPtr::swap(self, value, order)
    }

    #[inline]
    fn wait_for_change(&self) {
        yield_core();
    }
}

/// Loom's atomics: every operation is a point where the model checker may switch threads, and
/// waiting yields to it (a spin would make it explore the spin forever).
#[cfg(loom)]
mod model {
    use super::{AtomicWord, Ordering};
    use loom::sync::atomic::{AtomicPtr, AtomicUsize};

    impl AtomicWord for AtomicUsize {
        type Value = usize;

        fn load(&self, order: Ordering) -> usize {
            AtomicUsize::load(self, order)
        }

        fn compare_exchange_weak(
            &self,
            current: usize,
            new: usize,
            success: Ordering,
            failure: Ordering,
        ) -> Result<usize, usize> {
            AtomicUsize::compare_exchange_weak(self, current, new, success, failure)
        }

        fn swap(&self, value: usize, order: Ordering) -> usize {
            AtomicUsize::swap(self, value, order)
        }

        fn wait_for_change(&self) {
            loom::thread::yield_now();
        }
    }

    impl<T> AtomicWord for AtomicPtr<T> {
        type Value = *mut T;

        fn load(&self, order: Ordering) -> *mut T {
            AtomicPtr::load(self, order)
        }

        fn compare_exchange_weak(
            &self,
            current: *mut T,
            new: *mut T,
            success: Ordering,
            failure: Ordering,
        ) -> Result<*mut T, *mut T> {
            AtomicPtr::compare_exchange_weak(self, current, new, success, failure)
        }

        fn swap(&self, value: *mut T, order: Ordering) -> *mut T {
            AtomicPtr::swap(self, value, order)
        }

        fn wait_for_change(&self) {
            loom::thread::yield_now();
        }
    }
}
