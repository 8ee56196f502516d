//! `AskedSizes`: what was asked for, remembered for the blocks an allocator made bigger, so
//! that the wrappers that count bytes (`Counting`, `Failing`'s budget) stay exact over an
//! allocator that reports slack, such as larder's.
//!
//! An `Allocator` may hand out more than was asked for, and its caller may then free or resize
//! the block with any size between the two (the layout only has to *fit* the block). A
//! `Buffer` does exactly that: it takes the slack as capacity and passes the larger size back.
//! A wrapper that counted the size asked for cannot tell, from the size passed back, what it
//! counted; this table tells it. Blocks handed out at exactly the size asked for are not
//! remembered, and while there has been none with slack a lookup is one relaxed load.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, Ordering};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Sizes asked for, by block address, for the live blocks handed out with slack.
#[derive(Debug, Default)]
pub(crate) struct AskedSizes {
    /// Some block was handed out with slack (so lookups must consult the table).
    any: AtomicBool,
    by_address: Mutex<BTreeMap<usize, usize>>,
}

impl AskedSizes {
    pub(crate) const fn new() -> Self {
        AskedSizes {
            any: AtomicBool::new(false),
            by_address: Mutex::new(BTreeMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, BTreeMap<usize, usize>> {
        // A panic while the lock was held left the map whole (each update is one call).
        self.by_address
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a block just handed out for a request of `asked` bytes.
    pub(crate) fn note(&self, block: NonNull<[u8]>, asked: usize) {
        if block.len() > asked {
            // Relaxed suffices: whoever frees the block learned of it from this thread
            // through some synchronisation, which also makes this store visible.
            self.any.store(true, Ordering::Relaxed);
            self.table()
                .insert(block.cast::<u8>().as_ptr() as usize, asked);
        }
    }

    /// Takes the block at `ptr` out of the table (it is about to be freed or resized), giving
    /// the size asked for when it was handed out if that was less than the block.
    ///
    /// Take before the block goes back to the allocator: once it is freed, another thread may
    /// be handed the same address and note it.
    pub(crate) fn take(&self, ptr: NonNull<u8>) -> Option<usize> {
        if !self.any.load(Ordering::Relaxed) {
            return None;
        }
        self.table().remove(&(ptr.as_ptr() as usize))
    }

    /// Puts back what `take` took, for a block that stayed as it was (a refused resize).
    pub(crate) fn restore(&self, ptr: NonNull<u8>, taken: Option<usize>) {
        if let Some(asked) = taken {
            self.table().insert(ptr.as_ptr() as usize, asked);
        }
    }
}
