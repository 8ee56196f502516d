//! `Pool<T>`: fixed-size slots for one type, taken from blocks, recycled
//! through an intrusive free list; `PoolBox` gives a slot back on drop.
//!
//! Invariant: every slot of every block is exactly one of: holding the value
//! of one live `PoolBox`, on the free list, or at or after `fresh` in the
//! newest block (never used yet). Blocks are handed out lazily, one slot at a
//! time, so a new block costs one allocation and no initialisation pass.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{self, ManuallyDrop};
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{handle_alloc_error, Allocator, Global, Layout};

/// Target size of the first block; later blocks double up to the maximum.
const FIRST_BLOCK_BYTES: usize = 4096;
const MAX_BLOCK_BYTES: usize = 1 << 20;

/// One slot: a value while in use, a free-list link while free.
#[repr(C)]
union Slot<T> {
    value: ManuallyDrop<T>,
    next_free: Option<NonNull<Slot<T>>>,
}

/// Sits at the start of each block; the slots follow at `slots_offset`.
struct BlockHeader {
    older: Option<NonNull<BlockHeader>>,
    /// Size of the block as allocated, header included.
    size: usize,
}

/// A pool of fixed-size slots for values of one type `T`.
///
/// `alloc` takes a slot from the free list (or the untouched end of the
/// newest block, or a new block twice as large as the last), moves the value
/// in and returns a [`PoolBox`]. Dropping the box drops the value and puts
/// the slot back on the free list. Blocks go back to the allocator when the
/// pool is dropped, which the borrow checker allows only once every box is
/// gone.
///
/// ```
/// use larder::Pool;
///
/// #[derive(Debug, PartialEq)]
/// struct Particle { x: f32, y: f32 }
///
/// let pool = Pool::new();
/// let mut a = pool.alloc(Particle { x: 0.0, y: 1.0 });
/// let b = pool.alloc(Particle { x: 2.0, y: 3.0 });
/// a.x += 1.0;
/// assert_eq!(*a, Particle { x: 1.0, y: 1.0 });
/// drop(b); // the slot is free again
/// let c = pool.alloc(Particle { x: 5.0, y: 5.0 });
/// assert_eq!(c.y, 5.0);
/// ```
///
/// A box cannot outlive its pool, so a slot cannot be freed into a pool that
/// is gone (nor into another pool: the box carries its own):
///
/// ```compile_fail,E0597
/// let boxed;
/// {
///     let pool = larder::Pool::new();
///     boxed = pool.alloc(7u32);
/// } // error: `pool` dropped while still borrowed
/// assert_eq!(*boxed, 7);
/// ```
///
/// A pool is not `Sync`, so boxes cannot travel to other threads:
///
/// ```compile_fail,E0277
/// fn share<T: Sync>(_: &T) {}
/// share(&larder::Pool::<u64>::new());
/// ```
pub struct Pool<T, A: Allocator = Global> {
    /// Head of the free list of slots given back by boxes.
    free: Cell<Option<NonNull<Slot<T>>>>,
    /// First never-used slot of the newest block.
    fresh: Cell<*mut Slot<T>>,
    /// One past the last slot of the newest block.
    fresh_end: Cell<*mut Slot<T>>,
    newest_block: Cell<Option<NonNull<BlockHeader>>>,
    /// Bytes to ask for the next block.
    next_block_bytes: Cell<usize>,
    allocator: A,
    _slots_hold: PhantomData<T>,
}

impl<T> Pool<T, Global> {
    /// An empty pool; the first `alloc` takes the first block.
    pub const fn new() -> Self {
        Self::new_in(Global)
    }
}

impl<T> Default for Pool<T, Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, A: Allocator> Pool<T, A> {
    /// An empty pool taking its blocks from `allocator`.
    pub const fn new_in(allocator: A) -> Self {
        Pool {
            free: Cell::new(None),
            fresh: Cell::new(ptr::null_mut()),
            fresh_end: Cell::new(ptr::null_mut()),
            newest_block: Cell::new(None),
            next_block_bytes: Cell::new(FIRST_BLOCK_BYTES),
            allocator,
            _slots_hold: PhantomData,
        }
    }

    /// Moves `value` into a slot of the pool.
    ///
    /// Aborts through `handle_alloc_error` if the allocator refuses a block.
    #[inline]
    pub fn alloc(&self, value: T) -> PoolBox<'_, T, A> {
        let slot = match self.free.get() {
            // SAFETY: a slot on the free list holds a valid link.
            Some(slot) => unsafe {
                self.free.set((*slot.as_ptr()).next_free);
                slot
            },
            None => self.fresh_slot(),
        };
        let value_ptr = slot.cast::<T>();
        // SAFETY: the slot is unused, sized and aligned for `T` (`Slot<T>`
        // is `repr(C)`, its `value` field is at offset 0).
        unsafe { value_ptr.as_ptr().write(value) };
        PoolBox {
            value: value_ptr,
            pool: self,
        }
    }

    #[inline]
    fn fresh_slot(&self) -> NonNull<Slot<T>> {
        let fresh = self.fresh.get();
        if fresh == self.fresh_end.get() {
            return self.fresh_slot_from_new_block();
        }
        // SAFETY: `fresh` is below `fresh_end`, so it is a slot of the newest
        // block and `fresh + 1` is at most one past its end.
        unsafe {
            self.fresh.set(fresh.add(1));
            NonNull::new_unchecked(fresh)
        }
    }

    #[cold]
    #[inline(never)]
    fn fresh_slot_from_new_block(&self) -> NonNull<Slot<T>> {
        let (layout, slots_offset) = block_layout::<T>(self.next_block_bytes.get());
        let Ok(block) = self.allocator.allocate(layout) else {
            handle_alloc_error(layout)
        };
        // Use the allocator's slack: it may return more than asked for.
        let size = block.len();
        let slot_count = (size - slots_offset) / mem::size_of::<Slot<T>>();
        let header = block.cast::<BlockHeader>();
        // SAFETY: the block starts with room for a `BlockHeader` and is
        // aligned for it (`block_layout` makes sure of both).
        unsafe {
            header.as_ptr().write(BlockHeader {
                older: self.newest_block.get(),
                size,
            })
        };
        self.newest_block.set(Some(header));
        self.next_block_bytes
            .set((self.next_block_bytes.get() * 2).min(MAX_BLOCK_BYTES));
        // SAFETY: `slots_offset + slot_count * size_of::<Slot<T>>()` is within
        // the block, and `slots_offset` is aligned for `Slot<T>`.
        unsafe {
            let first = block
                .cast::<u8>()
                .as_ptr()
                .add(slots_offset)
                .cast::<Slot<T>>();
            self.fresh.set(first.add(1));
            self.fresh_end.set(first.add(slot_count));
            NonNull::new_unchecked(first)
        }
    }

    /// # Safety
    /// `value` must be the slot of a box of this pool whose value has been
    /// dropped or moved out; it must not be used again.
    #[inline]
    unsafe fn release(&self, value: NonNull<T>) {
        let slot = value.cast::<Slot<T>>();
        // SAFETY: by the contract the slot is ours and unused; writing the
        // link field makes it a free slot.
        unsafe { ptr::addr_of_mut!((*slot.as_ptr()).next_free).write(self.free.get()) };
        self.free.set(Some(slot));
    }
}

/// The layout of a block of about `bytes` bytes (at least one slot), and the
/// offset of its first slot.
fn block_layout<T>(bytes: usize) -> (Layout, usize) {
    let slot = Layout::new::<Slot<T>>();
    let count = (bytes / slot.size()).max(1);
    let Ok(slots) = Layout::array::<Slot<T>>(count) else {
        handle_alloc_error(slot)
    };
    let Ok((layout, offset)) = Layout::new::<BlockHeader>().extend(slots) else {
        handle_alloc_error(slots)
    };
    (layout, offset)
}

impl<T, A: Allocator> Drop for Pool<T, A> {
    fn drop(&mut self) {
        // No box is alive (each borrows the pool), so no slot holds a value
        // that still needs dropping: boxes drop theirs, forgotten ones leak.
        let align = block_layout::<T>(0).0.align();
        let mut next = self.newest_block.take();
        while let Some(block) = next {
            // SAFETY: each block on the list is live and owned by the pool,
            // allocated with this alignment and the recorded size (which
            // fits the block); its link is read before it is freed.
            unsafe {
                next = (*block.as_ptr()).older;
                let size = (*block.as_ptr()).size;
                let layout = Layout::from_size_align_unchecked(size, align);
                self.allocator.deallocate(block.cast(), layout);
            }
        }
    }
}

impl<T, A: Allocator> fmt::Debug for Pool<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").finish_non_exhaustive()
    }
}

/// A value in a slot of a [`Pool`]; dereferences to `T` and gives the slot
/// back to its pool when dropped.
pub struct PoolBox<'pool, T, A: Allocator = Global> {
    value: NonNull<T>,
    pool: &'pool Pool<T, A>,
}

impl<T, A: Allocator> PoolBox<'_, T, A> {
    /// Moves the value out and gives the slot back.
    ///
    /// ```
    /// let pool = larder::Pool::new();
    /// let name = pool.alloc(String::from("slot"));
    /// let owned: String = larder::PoolBox::into_inner(name);
    /// assert_eq!(owned, "slot");
    /// ```
    pub fn into_inner(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        // SAFETY: the box owns an initialised value; reading it moves it out,
        // and `ManuallyDrop` keeps the box's destructor from dropping it again.
        unsafe {
            let value = this.value.as_ptr().read();
            this.pool.release(this.value);
            value
        }
    }
}

impl<T, A: Allocator> Deref for PoolBox<'_, T, A> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the box owns an initialised value for its whole life.
        unsafe { self.value.as_ref() }
    }
}

impl<T, A: Allocator> DerefMut for PoolBox<'_, T, A> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the box owns an initialised value, and `&mut self` makes
        // this the only access to it.
        unsafe { self.value.as_mut() }
    }
}

impl<T, A: Allocator> Drop for PoolBox<'_, T, A> {
    #[inline]
    fn drop(&mut self) {
        // Give the slot back even if `T`'s destructor panics.
        struct Release<'a, T, A: Allocator>(&'a Pool<T, A>, NonNull<T>);
        impl<T, A: Allocator> Drop for Release<'_, T, A> {
            #[inline]
            fn drop(&mut self) {
                // SAFETY: the value in this slot has been dropped (or its
                // destructor unwound) and the box is going away.
                unsafe { self.0.release(self.1) };
            }
        }
        let _release = Release(self.pool, self.value);
        // SAFETY: the box owns an initialised value, dropped exactly once here.
        unsafe { ptr::drop_in_place(self.value.as_ptr()) };
    }
}

impl<T: fmt::Debug, A: Allocator> fmt::Debug for PoolBox<'_, T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}
