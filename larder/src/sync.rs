//! A futex lock for larder's few global structures (segment registry, span cache, abandoned
//! segments, heap pool). Unlike `std::sync::Mutex` it can be taken in a `fork` prepare handler
//! and released in the parent and child handlers, and it never allocates or panics.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::os;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutual-exclusion lock around a `T`, const-constructible for statics.
pub struct Lock<T> {
    state: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: access to `value` is serialised by `state`, as a mutex's is.
unsafe impl<T: Send> Sync for Lock<T> {}
// SAFETY: the lock owns its value.
unsafe impl<T: Send> Send for Lock<T> {}

impl<T> Lock<T> {
    /// A new, unlocked lock.
    pub const fn new(value: T) -> Self {
        Lock {
            state: AtomicU32::new(UNLOCKED),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, sleeping on a futex while another thread holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        self.raw_lock();
        LockGuard { lock: self }
    }

    fn raw_lock(&self) {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        self.lock_contended();
    }

    /// A thread that went through here may have sleepers behind it, so it always takes the
    /// lock as CONTENDED: its unlock then wakes the next sleeper. (Taking it as LOCKED would
    /// lose that wake-up and leave a sleeper asleep forever.)
    #[cold]
    fn lock_contended(&self) {
        let mut spins = 0;
        loop {
            let s = self.state.load(Ordering::Relaxed);
            if s == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, CONTENDED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            if spins < 64 {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            if self.state.swap(CONTENDED, Ordering::Acquire) == UNLOCKED {
                return;
            }
            os::futex_wait(&self.state, CONTENDED, None);
        }
    }

    fn raw_unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            os::futex_wake(&self.state, 1);
        }
    }

    /// Takes the lock and keeps it held beyond any scope (for `fork` prepare handlers).
    pub fn lock_for_fork(&self) {
        self.raw_lock();
    }

    /// Releases a lock taken with `lock_for_fork`.
    ///
    /// # Safety
    /// The calling thread (or, after `fork`, its copy in the child) must hold the lock through
    /// `lock_for_fork`.
    pub unsafe fn unlock_after_fork(&self) {
        self.raw_unlock();
    }
}

/// Access to a locked value; releases the lock when dropped.
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
}

impl<T> core::ops::Deref for LockGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard proves the lock is held, so no other reference is live.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> core::ops::DerefMut for LockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard proves the lock is held, so this is the only reference.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for LockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw_unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_serialises_increments() {
        static COUNTER: Lock<u64> = Lock::new(0);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..50_000 {
                        *COUNTER.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*COUNTER.lock(), 200_000);
    }

    /// Long critical sections force waiters onto the futex; a lost wake-up hangs this test
    /// (it did, before contended acquisitions kept the CONTENDED state).
    #[test]
    fn sleepers_are_always_woken() {
        static SLOW: Lock<u64> = Lock::new(0);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..300 {
                        let mut g = SLOW.lock();
                        *g += 1;
                        for _ in 0..2000 {
                            core::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*SLOW.lock(), 2400);
    }
}
