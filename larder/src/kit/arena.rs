//! `Arena`: bump allocation in geometrically growing chunks, freed all at once.
//!
//! Chunks come from the arena's allocator `A` and are linked newest first
//! through a header at their low end. Allocation moves a pointer *down* from
//! the top of the newest chunk: one subtraction, one mask, one compare.
//! Values with drop glue are threaded on an intrusive list (a header placed
//! in front of each value) and dropped newest first on `reset` and on drop.

use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::mem;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{handle_alloc_error, AllocError, Allocator, Global};

/// Usable bytes of the first chunk when none is asked for.
const FIRST_CHUNK_BYTES: usize = 4096 - CHUNK_HEADER_BYTES;
/// Alignment of every chunk; larger alignments pad inside the chunk.
const CHUNK_ALIGN: usize = 16;
const CHUNK_HEADER_BYTES: usize = mem::size_of::<ChunkHeader>();
/// The floor of an arena without chunks: above the null bump pointer, so
/// every request, even of zero bytes, takes the slow path.
const NO_CHUNK_FLOOR: usize = 1;

/// Sits at the low end of each chunk; the bump region is the rest of it.
#[repr(C, align(16))]
struct ChunkHeader {
    /// The chunk allocated before this one (smaller or equal in size).
    older: Option<NonNull<ChunkHeader>>,
    /// Size of the whole chunk, header included, as allocated from `A`.
    size: usize,
}

/// Precedes each value with drop glue; the list runs newest to oldest.
#[repr(C)]
struct DropHeader {
    older: Option<NonNull<DropHeader>>,
    drop_value: unsafe fn(NonNull<DropHeader>),
}

#[repr(C)]
struct WithDrop<T> {
    header: DropHeader,
    value: T,
}

/// Drops the `T` that follows `header`.
///
/// # Safety
/// `header` must be the header of a live `WithDrop<T>` whose value has not
/// been dropped, and nothing may use the value afterwards.
unsafe fn drop_value<T>(header: NonNull<DropHeader>) {
    let node = header.cast::<WithDrop<T>>().as_ptr();
    // SAFETY: by the contract, `node` points to a live `WithDrop<T>` whose
    // value is initialised and never used again.
    unsafe { ptr::drop_in_place(ptr::addr_of_mut!((*node).value)) };
}

/// A bump allocator: many small allocations, one cheap release.
///
/// Allocation hands out memory from the newest chunk; when it is full a new
/// chunk twice as large (or large enough for the request) is taken from `A`.
/// [`reset`](Arena::reset) drops the values that need it, frees every chunk
/// but the newest (the largest) and starts over in it, so an arena reset
/// between rounds of similar work stops allocating from `A` after the first.
///
/// ```
/// use larder::Arena;
///
/// let mut arena = Arena::new();
/// let point = arena.alloc((1.0f32, 2.0f32));
/// point.0 += 1.0;
/// let name = arena.alloc_str("larder");
/// let primes = arena.alloc_slice_copy(&[2u32, 3, 5, 7]);
/// assert_eq!((*point, &*name, &*primes), ((2.0, 2.0), "larder", &[2, 3, 5, 7][..]));
/// assert!(arena.allocated_bytes() >= 8 + 6 + 16);
/// arena.reset();
/// assert_eq!(arena.allocated_bytes(), 0);
/// ```
///
/// `&Arena` is an [`Allocator`], so collections can live in it:
///
/// ```
/// use allocator_api2::vec::Vec;
/// use larder::Arena;
///
/// let arena = Arena::new();
/// let mut squares: Vec<u64, &Arena> = Vec::new_in(&arena);
/// squares.extend((0..100u64).map(|i| i * i));
/// assert_eq!(squares[9], 81);
/// ```
///
/// Values that own resources are dropped on `reset` and when the arena is
/// dropped:
///
/// ```
/// use std::rc::Rc;
/// use larder::Arena;
///
/// let shared = Rc::new("payload");
/// let mut arena = Arena::new();
/// for _ in 0..1000 {
///     arena.alloc(Rc::clone(&shared));
/// }
/// assert_eq!(Rc::strong_count(&shared), 1001);
/// arena.reset();
/// assert_eq!(Rc::strong_count(&shared), 1);
/// ```
///
/// A reference into the arena cannot outlive a reset:
///
/// ```compile_fail,E0502
/// let mut arena = larder::Arena::new();
/// let x = arena.alloc(5u32);
/// arena.reset();
/// assert_eq!(*x, 5); // error: `arena` is still borrowed by `x`
/// ```
///
/// An arena is not `Sync` (its bump pointer is a plain `Cell`), so it cannot
/// be shared between threads:
///
/// ```compile_fail,E0277
/// fn share<T: Sync>(_: &T) {}
/// share(&larder::Arena::new());
/// ```
///
/// Nor `Send`, because the values it will drop may be tied to this thread
/// (an `Rc` clone, for instance):
///
/// ```compile_fail,E0277
/// fn send<T: Send>(_: T) {}
/// send(larder::Arena::new());
/// ```
pub struct Arena<A: Allocator = Global> {
    /// The next allocation ends at or below this address; it only moves down.
    bump: Cell<*mut u8>,
    /// Lowest address the bump pointer may reach in the newest chunk; 1
    /// while there is no chunk, so that the fast path never yields null.
    floor: Cell<usize>,
    /// Newest chunk; the others hang off its `older` link.
    newest_chunk: Cell<Option<NonNull<ChunkHeader>>>,
    /// Bytes handed out from chunks older than the newest, since the last reset.
    retired_bytes: Cell<usize>,
    /// Values waiting to be dropped, newest first.
    pending_drops: Cell<Option<NonNull<DropHeader>>>,
    allocator: A,
    /// The arena owns values of unknown types, some of them not thread-safe.
    _not_send: PhantomData<*mut ()>,
}

impl Arena<Global> {
    /// An empty arena; the first allocation takes its first chunk.
    pub const fn new() -> Self {
        Self::new_in(Global)
    }

    /// An arena whose first chunk holds at least `bytes`.
    pub fn with_capacity(bytes: usize) -> Self {
        Self::with_capacity_in(bytes, Global)
    }
}

impl Default for Arena<Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Allocator> Arena<A> {
    /// An empty arena taking its chunks from `allocator`.
    pub const fn new_in(allocator: A) -> Self {
        Arena {
            bump: Cell::new(ptr::null_mut()),
            floor: Cell::new(NO_CHUNK_FLOOR),
            newest_chunk: Cell::new(None),
            retired_bytes: Cell::new(0),
            pending_drops: Cell::new(None),
            allocator,
            _not_send: PhantomData,
        }
    }

    /// An arena taking its chunks from `allocator`, the first of which holds
    /// at least `bytes`.
    pub fn with_capacity_in(bytes: usize, allocator: A) -> Self {
        let arena = Self::new_in(allocator);
        if bytes > 0 {
            let Ok(layout) = Layout::from_size_align(bytes, 1) else {
                capacity_overflow()
            };
            if arena.push_chunk(layout).is_err() {
                handle_alloc_error(layout);
            }
        }
        arena
    }

    /// Moves `value` into the arena and returns a reference to it, valid until
    /// the next [`reset`](Arena::reset). Its destructor, if any, runs then.
    ///
    /// `T: 'static` is what makes running destructors sound: a value that
    /// borrowed from the arena could see a neighbour already dropped. Values
    /// that borrow go through [`alloc_no_drop`](Arena::alloc_no_drop).
    ///
    /// Aborts through `handle_alloc_error` if the allocator refuses a chunk.
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc<T: 'static>(&self, value: T) -> &mut T {
        if !mem::needs_drop::<T>() {
            return self.alloc_no_drop(value);
        }
        let node = self
            .alloc_layout(Layout::new::<WithDrop<T>>())
            .cast::<WithDrop<T>>();
        let header = DropHeader {
            older: self.pending_drops.get(),
            drop_value: drop_value::<T>,
        };
        // SAFETY: `node` is fresh arena memory sized and aligned for a
        // `WithDrop<T>`; nothing else refers to it.
        unsafe { node.as_ptr().write(WithDrop { header, value }) };
        self.pending_drops.set(Some(node.cast()));
        // SAFETY: the value was just initialised; the returned borrow is tied
        // to `&self`, and the drop list touches the value only in `reset` or
        // `drop`, which need the arena exclusively.
        unsafe { &mut (*node.as_ptr()).value }
    }

    /// Moves `value` into the arena without ever running its destructor (as
    /// `mem::forget` would). Any `T` is accepted, including values that hold
    /// references into this same arena.
    ///
    /// ```
    /// use larder::Arena;
    ///
    /// struct Node<'a> { name: &'a str, parent: Option<&'a Node<'a>> }
    /// let arena = Arena::new();
    /// let root = arena.alloc_no_drop(Node { name: arena.alloc_str("root"), parent: None });
    /// let leaf = arena.alloc_no_drop(Node { name: "leaf", parent: Some(root) });
    /// assert_eq!(leaf.parent.map(|p| p.name), Some("root"));
    /// ```
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc_no_drop<T>(&self, value: T) -> &mut T {
        let slot = self.alloc_layout(Layout::new::<T>()).cast::<T>();
        // SAFETY: `slot` is fresh arena memory sized and aligned for `T`,
        // disjoint from every other allocation, and lives as long as `&self`.
        unsafe {
            slot.as_ptr().write(value);
            &mut *slot.as_ptr()
        }
    }

    /// Copies `source` into the arena.
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc_slice_copy<T: Copy>(&self, source: &[T]) -> &mut [T] {
        let layout = Layout::for_value(source);
        let start = self.alloc_layout(layout).cast::<T>();
        // SAFETY: `start` is fresh arena memory with room and alignment for
        // `source.len()` values of `T`; `T: Copy`, so a bitwise copy is a copy.
        unsafe {
            ptr::copy_nonoverlapping(source.as_ptr(), start.as_ptr(), source.len());
            core::slice::from_raw_parts_mut(start.as_ptr(), source.len())
        }
    }

    /// Copies `source` into the arena.
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out fresh, disjoint memory
    pub fn alloc_str(&self, source: &str) -> &mut str {
        let bytes = self.alloc_slice_copy(source.as_bytes());
        // SAFETY: `bytes` is a copy of a `str`, hence valid UTF-8.
        unsafe { core::str::from_utf8_unchecked_mut(bytes) }
    }

    /// Bytes handed out since creation or the last reset: every allocation's
    /// size plus the alignment padding before it, whether still used or not
    /// (memory given back to an arena is not reused before a reset).
    pub fn allocated_bytes(&self) -> usize {
        let in_newest = match self.newest_chunk.get() {
            Some(chunk) => chunk_end(chunk) as usize - self.bump.get() as usize,
            None => 0,
        };
        self.retired_bytes.get() + in_newest
    }

    /// Drops every value that needs it, frees all chunks but the newest (the
    /// largest) and makes all of it available again.
    pub fn reset(&mut self) {
        self.run_pending_drops();
        let Some(newest) = self.newest_chunk.get() else {
            return;
        };
        // SAFETY: `newest` is a live chunk owned by this arena; `&mut self`
        // guarantees no reference into any chunk survives.
        let mut older = unsafe { (*newest.as_ptr()).older.take() };
        while let Some(chunk) = older {
            // SAFETY: each chunk on the list is live and owned by the arena,
            // and is unlinked here before it is freed.
            unsafe {
                older = (*chunk.as_ptr()).older;
                self.free_chunk(chunk);
            }
        }
        self.bump.set(chunk_end(newest));
        self.floor.set(chunk_floor(newest) as usize);
        self.retired_bytes.set(0);
    }

    /// The fast path: bump down inside the newest chunk.
    #[inline(always)]
    fn try_bump(&self, layout: Layout) -> Option<NonNull<u8>> {
        let bump = self.bump.get();
        let below = (bump as usize).checked_sub(layout.size())? & !(layout.align() - 1);
        if below < self.floor.get() {
            return None;
        }
        // Derive from `bump` so the pointer keeps the chunk's provenance.
        let start = bump.wrapping_sub(bump as usize - below);
        self.bump.set(start);
        // SAFETY: `start >= floor >= 1`, so it is not null.
        Some(unsafe { NonNull::new_unchecked(start) })
    }

    #[inline]
    fn alloc_layout(&self, layout: Layout) -> NonNull<u8> {
        match self.try_bump(layout) {
            Some(start) => start,
            None => self.alloc_in_new_chunk(layout),
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_in_new_chunk(&self, layout: Layout) -> NonNull<u8> {
        match self.try_alloc_in_new_chunk(layout) {
            Ok(start) => start,
            Err(AllocError) => handle_alloc_error(layout),
        }
    }

    #[inline]
    fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        match self.try_bump(layout) {
            Some(start) => Ok(start),
            None => self.try_alloc_in_new_chunk(layout),
        }
    }

    #[cold]
    #[inline(never)]
    fn try_alloc_in_new_chunk(&self, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        self.push_chunk(layout)?;
        // A fresh chunk has room for `layout` at any alignment by construction.
        self.try_bump(layout).ok_or(AllocError)
    }

    /// Takes a new chunk from the allocator, with room for `layout` and at
    /// least twice the size of the newest one, and makes it the newest.
    fn push_chunk(&self, layout: Layout) -> Result<(), AllocError> {
        let previous_size = self
            .newest_chunk
            .get()
            // SAFETY: chunks on the list are live and owned by the arena.
            .map_or(0, |chunk| unsafe { (*chunk.as_ptr()).size });
        let needed = layout
            .size()
            .checked_add(layout.align().max(CHUNK_ALIGN))
            .and_then(|bytes| bytes.checked_add(CHUNK_HEADER_BYTES))
            .ok_or(AllocError)?;
        let size = needed
            .max(previous_size.saturating_mul(2))
            .max(FIRST_CHUNK_BYTES + CHUNK_HEADER_BYTES);
        let chunk_layout = Layout::from_size_align(size, CHUNK_ALIGN).map_err(|_| AllocError)?;
        let block = self.allocator.allocate(chunk_layout)?;
        // The allocator may hand out more than asked (a size class's slack).
        let size = block.len();
        let chunk = block.cast::<ChunkHeader>();
        // SAFETY: the block is at least `CHUNK_HEADER_BYTES` long and aligned
        // to `CHUNK_ALIGN`, which satisfies `ChunkHeader`.
        unsafe {
            chunk.as_ptr().write(ChunkHeader {
                older: self.newest_chunk.get(),
                size,
            })
        };
        if self.newest_chunk.get().is_some() {
            let used = self.chunk_bytes_handed_out();
            self.retired_bytes.set(self.retired_bytes.get() + used);
        }
        self.newest_chunk.set(Some(chunk));
        self.bump.set(chunk_end(chunk));
        self.floor.set(chunk_floor(chunk) as usize);
        Ok(())
    }

    fn chunk_bytes_handed_out(&self) -> usize {
        self.newest_chunk.get().map_or(0, |chunk| {
            chunk_end(chunk) as usize - self.bump.get() as usize
        })
    }

    /// # Safety
    /// `chunk` must be a chunk of this arena, unlinked, and not used again.
    unsafe fn free_chunk(&self, chunk: NonNull<ChunkHeader>) {
        // SAFETY: by the contract the chunk is live; its size and alignment
        // are those it was allocated with (the returned size fits the block).
        unsafe {
            let size = (*chunk.as_ptr()).size;
            let layout = Layout::from_size_align_unchecked(size, CHUNK_ALIGN);
            self.allocator.deallocate(chunk.cast(), layout);
        }
    }

    fn run_pending_drops(&mut self) {
        /// Keeps dropping the rest if one destructor panics.
        struct ContinueOnUnwind<'a>(&'a Cell<Option<NonNull<DropHeader>>>);
        impl Drop for ContinueOnUnwind<'_> {
            fn drop(&mut self) {
                drop_all(self.0);
            }
        }
        fn drop_all(list: &Cell<Option<NonNull<DropHeader>>>) {
            while let Some(node) = list.get() {
                // SAFETY: nodes on the list are live headers written by
                // `alloc`, each followed by a value not yet dropped; the node
                // is unlinked before its value is dropped, so it is dropped
                // once even if the destructor panics.
                unsafe {
                    list.set((*node.as_ptr()).older);
                    let guard = ContinueOnUnwind(list);
                    ((*node.as_ptr()).drop_value)(node);
                    mem::forget(guard);
                }
            }
        }
        drop_all(&self.pending_drops);
    }
}

fn chunk_end(chunk: NonNull<ChunkHeader>) -> *mut u8 {
    // SAFETY: the chunk is live and `size` is its allocated length, so the
    // end is one past the block (computed from the block's own pointer).
    unsafe { chunk.as_ptr().cast::<u8>().add((*chunk.as_ptr()).size) }
}

fn chunk_floor(chunk: NonNull<ChunkHeader>) -> *mut u8 {
    // SAFETY: every chunk is longer than its header.
    unsafe { chunk.as_ptr().cast::<u8>().add(CHUNK_HEADER_BYTES) }
}

#[cold]
#[inline(never)]
fn capacity_overflow() -> ! {
    panic!("arena capacity overflow");
}

impl<A: Allocator> Drop for Arena<A> {
    fn drop(&mut self) {
        self.run_pending_drops();
        let mut next = self.newest_chunk.take();
        while let Some(chunk) = next {
            // SAFETY: every chunk on the list is live and owned by the arena;
            // the link is read before the chunk is freed.
            unsafe {
                next = (*chunk.as_ptr()).older;
                self.free_chunk(chunk);
            }
        }
    }
}

impl<A: Allocator> core::fmt::Debug for Arena<A> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Arena")
            .field("allocated_bytes", &self.allocated_bytes())
            .finish_non_exhaustive()
    }
}

// SAFETY: blocks are carved from chunks that stay allocated until `reset` or
// drop, both of which need the arena exclusively, i.e. no `&Arena` alive; the
// blocks handed out are disjoint and aligned as asked.
unsafe impl<A: Allocator> Allocator for &Arena<A> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let start = self.try_alloc_layout(layout)?;
        Ok(NonNull::slice_from_raw_parts(start, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, _ptr: NonNull<u8>, _layout: Layout) {
        // Memory comes back all at once, on reset.
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        _old_layout: Layout,
        new_layout: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if ptr.as_ptr() as usize % new_layout.align() == 0 {
            return Ok(NonNull::slice_from_raw_parts(ptr, new_layout.size()));
        }
        let moved = self.try_alloc_layout(new_layout)?;
        // SAFETY: `ptr` holds at least `new_layout.size()` bytes (the caller's
        // contract), `moved` is fresh and disjoint from it.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), moved.as_ptr(), new_layout.size()) };
        Ok(NonNull::slice_from_raw_parts(moved, new_layout.size()))
    }
}
