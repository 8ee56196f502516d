//! A futex lock for larder's few global structures (segment registry, span cache, abandoned
//! segments, heap pool). Unlike `std::sync::Mutex` it can be taken in a `fork` prepare handler
//! and released in the parent and child handlers, and it never allocates or panics.
//!
//! While a lock is held for `fork`, the forking thread may still enter it: an application's
//! atfork handler that runs between larder's prepare and larder's parent or child handler (one
//! registered before larder's, or in the child) allocates on that thread, and would otherwise
//! wait for ever on a lock its own thread holds. No other thread is inside the lock then (the
//! prepare handler waited for them), so that thread's entry is still exclusive.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::os;

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutual-exclusion lock around a `T`, const-constructible for statics.
pub struct Lock<T> {
    state: AtomicU32,
    /// The thread (`pthread_self`) that holds the lock for `fork`, or 0.
    fork_holder: AtomicUsize,
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
            fork_holder: AtomicUsize::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Takes the lock, sleeping on a futex while another thread holds it.
    pub fn lock(&self) -> LockGuard<'_, T> {
        if self.try_fast() {
            return LockGuard {
                lock: self,
                release: true,
            };
        }
        let release = !self.held_for_fork_by_me();
        if release {
            self.lock_contended();
        }
        LockGuard {
            lock: self,
            release,
        }
    }

    fn try_fast(&self) -> bool {
        self.state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn raw_lock(&self) {
        if !self.try_fast() {
            self.lock_contended();
        }
    }

    /// Whether the calling thread holds this lock through `lock_for_fork` (in a `fork` child,
    /// the copy of the thread that did: `pthread_self` is the same there).
    #[cold]
    fn held_for_fork_by_me(&self) -> bool {
        let holder = self.fork_holder.load(Ordering::Acquire);
        holder != 0 && holder == current_thread()
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
        self.fork_holder.store(current_thread(), Ordering::Release);
    }

    /// Releases a lock taken with `lock_for_fork`.
    ///
    /// # Safety
    /// The calling thread (or, after `fork`, its copy in the child) must hold the lock through
    /// `lock_for_fork`.
    pub unsafe fn unlock_after_fork(&self) {
        self.fork_holder.store(0, Ordering::Release);
        self.raw_unlock();
    }
}

fn current_thread() -> usize {
    // SAFETY: pthread_self has no preconditions, never fails and does not allocate.
    unsafe { libc::pthread_self() as usize }
}

/// Access to a locked value; releases the lock when dropped.
pub struct LockGuard<'a, T> {
    lock: &'a Lock<T>,
    /// False for the forking thread's entry into a lock it holds for `fork`: the parent or
    /// child handler releases it.
    release: bool,
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
        if self.release {
            self.lock.raw_unlock();
        }
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

    /// An atfork handler running between larder's prepare and parent handlers allocates on the
    /// forking thread: it enters the locks held for fork, and other threads still wait.
    #[test]
    fn the_fork_holder_enters_its_locks_and_others_wait() {
        static HELD: Lock<u64> = Lock::new(0);
        HELD.lock_for_fork();
        *HELD.lock() += 1;
        *HELD.lock() += 1;
        let other = std::thread::spawn(|| *HELD.lock() += 10);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(
            !other.is_finished(),
            "another thread entered a lock held for fork"
        );
        assert_eq!(*HELD.lock(), 2);
        // SAFETY: this thread took the lock with lock_for_fork above.
        unsafe { HELD.unlock_after_fork() };
        other.join().unwrap();
        assert_eq!(*HELD.lock(), 12);
    }
}
