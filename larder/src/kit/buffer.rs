//! `Buffer<T, A>`: a growable buffer with a chosen growth factor, checked
//! capacity arithmetic, fallible growth with the strong guarantee, and growth
//! through the allocator's `grow` so that a block can grow in place and the
//! allocator's slack becomes capacity.
//!
//! Invariant: `ptr` is dangling while `capacity` is 0 (or `T` is zero-sized);
//! otherwise it is a block of `A` whose layout is `array::<T>(capacity)`, and
//! the first `len <= capacity` elements are initialised.

use core::fmt;
use core::marker::PhantomData;
use core::mem;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};

use allocator_api2::alloc::{handle_alloc_error, Allocator, Global, Layout};

/// Growth factor α as a fixed-point number with this many fractional bits.
const GROWTH_FRACTION_BITS: u32 = 8;
const GROWTH_ONE: u32 = 1 << GROWTH_FRACTION_BITS;
const DEFAULT_GROWTH: u32 = 2 * GROWTH_ONE;

/// The growth factors a buffer accepts: below 1.5 growth costs too many
/// copies, above 2 it wastes too much memory.
pub const GROWTH_RANGE: core::ops::RangeInclusive<f64> = 1.5..=2.0;

/// Why a buffer could not make room.
///
/// ```
/// use larder::kit::buffer::TryReserveError;
/// use larder::Buffer;
///
/// let mut buffer: Buffer<u64> = Buffer::new();
/// assert_eq!(buffer.try_reserve(usize::MAX), Err(TryReserveError::CapacityOverflow));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryReserveError {
    /// The capacity asked for does not fit in memory (over `isize::MAX` bytes).
    CapacityOverflow,
    /// The allocator refused a block of this layout.
    AllocError {
        /// The layout that was refused.
        layout: Layout,
    },
}

impl fmt::Display for TryReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryReserveError::CapacityOverflow => f.write_str("buffer capacity overflow"),
            TryReserveError::AllocError { layout } => write!(
                f,
                "allocator refused {} bytes aligned to {}",
                layout.size(),
                layout.align()
            ),
        }
    }
}

impl std::error::Error for TryReserveError {}

/// A push that found no room: the error and the value that was not pushed.
///
/// ```
/// use allocator_api2::alloc::Global;
/// use larder::{Buffer, Failing};
///
/// let failing = Failing::nth(Global, 1);
/// let mut names = Buffer::new_in(&failing);
/// let refused = names.try_push(String::from("kept")).unwrap_err();
/// assert_eq!(refused.value, "kept"); // the value comes back
/// names.push(refused.value); // the next request is granted
/// assert_eq!(names.as_slice(), ["kept"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryPushError<T> {
    /// The value given back to the caller.
    pub value: T,
    /// Why there was no room.
    pub error: TryReserveError,
}

impl<T> fmt::Display for TryPushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "push failed: {}", self.error)
    }
}

impl<T: fmt::Debug> std::error::Error for TryPushError<T> {}

/// A growth factor outside [`GROWTH_RANGE`] (or not a number).
///
/// ```
/// use larder::Buffer;
///
/// let refused = Buffer::<u8>::with_growth(2.5).unwrap_err();
/// assert_eq!(refused.alpha, 2.5);
/// assert_eq!(refused.to_string(), "growth factor 2.5 is outside [1.5, 2]");
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrowthFactorError {
    /// The factor that was refused.
    pub alpha: f64,
}

impl fmt::Display for GrowthFactorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "growth factor {} is outside [{}, {}]",
            self.alpha,
            GROWTH_RANGE.start(),
            GROWTH_RANGE.end()
        )
    }
}

impl std::error::Error for GrowthFactorError {}

/// A growable buffer of `T` in allocator `A`.
///
/// When full it grows its capacity by the factor α (2.0 unless chosen with
/// [`with_growth`](Buffer::with_growth)), or to what is needed if that is
/// more, through the allocator's `grow`, and takes as capacity everything the
/// allocator returned: a size class's slack is room for more elements.
/// Fallible operations (`try_reserve`, `try_push`, `try_extend_from_slice`)
/// leave the buffer exactly as it was when they fail.
///
/// ```
/// use larder::Buffer;
///
/// let mut buffer = Buffer::new();
/// buffer.extend_from_slice(b"abc");
/// buffer.push(b'd');
/// assert_eq!(buffer.as_slice(), b"abcd");
/// assert!(buffer.capacity() >= 4);
///
/// let mut gentle: Buffer<u32> = Buffer::with_growth(1.5).unwrap();
/// gentle.reserve(10);
/// assert!(gentle.capacity() >= 10);
/// assert!(Buffer::<u32>::with_growth(3.0).is_err());
///
/// assert!(buffer.try_reserve(usize::MAX).is_err());
/// assert_eq!(buffer.as_slice(), b"abcd"); // unchanged by the failure
/// ```
pub struct Buffer<T, A: Allocator = Global> {
    ptr: NonNull<T>,
    len: usize,
    capacity: usize,
    /// α in fixed point, `GROWTH_FRACTION_BITS` fractional bits.
    growth: u32,
    allocator: A,
    _owns: PhantomData<T>,
}

// SAFETY: a `Buffer` owns its elements and its block like a `Vec` does, so it
// may move to or be shared with another thread when `T` and `A` may.
unsafe impl<T: Send, A: Allocator + Send> Send for Buffer<T, A> {}
// SAFETY: as above; `&Buffer` gives only shared access to elements.
unsafe impl<T: Sync, A: Allocator + Sync> Sync for Buffer<T, A> {}

impl<T> Buffer<T, Global> {
    /// An empty buffer; it allocates on the first push.
    pub const fn new() -> Self {
        Self::new_in(Global)
    }

    /// An empty buffer growing by `alpha`, which must lie in [`GROWTH_RANGE`].
    pub fn with_growth(alpha: f64) -> Result<Self, GrowthFactorError> {
        Self::with_growth_in(alpha, Global)
    }
}

impl<T> Default for Buffer<T, Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, A: Allocator> Buffer<T, A> {
    /// An empty buffer in `allocator`, growing by 2.
    pub const fn new_in(allocator: A) -> Self {
        Buffer {
            ptr: NonNull::dangling(),
            len: 0,
            capacity: if mem::size_of::<T>() == 0 {
                usize::MAX
            } else {
                0
            },
            growth: DEFAULT_GROWTH,
            allocator,
            _owns: PhantomData,
        }
    }

    /// An empty buffer in `allocator`, growing by `alpha`, which must lie in
    /// [`GROWTH_RANGE`].
    pub fn with_growth_in(alpha: f64, allocator: A) -> Result<Self, GrowthFactorError> {
        if !GROWTH_RANGE.contains(&alpha) {
            return Err(GrowthFactorError { alpha });
        }
        let mut buffer = Self::new_in(allocator);
        // In range, so the product lies in [384, 512] and converts exactly.
        buffer.growth = (alpha * f64::from(GROWTH_ONE)).round() as u32;
        Ok(buffer)
    }

    /// The growth factor α, as stored (rounded to 1/256).
    pub fn growth(&self) -> f64 {
        f64::from(self.growth) / f64::from(GROWTH_ONE)
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no elements.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements the buffer can hold before it must grow.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The allocator the buffer lives in.
    pub fn allocator(&self) -> &A {
        &self.allocator
    }

    /// The elements.
    #[inline]
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: the first `len` elements are initialised; `ptr` is non-null
        // and aligned even when dangling.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as for `as_slice`, and `&mut self` makes the access unique.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Appends `value`, growing if full.
    ///
    /// Panics on capacity overflow and aborts through `handle_alloc_error`
    /// if the allocator refuses.
    #[inline]
    pub fn push(&mut self, value: T) {
        if self.len == self.capacity {
            self.grow_for_push();
        }
        // SAFETY: `len < capacity`, so the slot is inside the block and unused.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
    }

    /// Appends `value`, or gives it back with the error if there is no room
    /// and none can be had; the buffer is then exactly as it was.
    #[inline]
    pub fn try_push(&mut self, value: T) -> Result<(), TryPushError<T>> {
        if self.len == self.capacity {
            if let Err(error) = self.grow_to(self.len.checked_add(1)) {
                return Err(TryPushError { value, error });
            }
        }
        // SAFETY: `len < capacity`, so the slot is inside the block and unused.
        unsafe { self.ptr.as_ptr().add(self.len).write(value) };
        self.len += 1;
        Ok(())
    }

    /// Makes room for at least `additional` more elements beyond the length.
    ///
    /// Panics on capacity overflow and aborts through `handle_alloc_error`
    /// if the allocator refuses.
    #[inline]
    pub fn reserve(&mut self, additional: usize) {
        if self.capacity - self.len < additional {
            self.reserve_or_die(additional);
        }
    }

    /// Makes room for at least `additional` more elements beyond the length,
    /// or says why it cannot; the buffer is then exactly as it was.
    #[inline]
    pub fn try_reserve(&mut self, additional: usize) -> Result<(), TryReserveError> {
        if self.capacity - self.len < additional {
            return self.grow_to(self.len.checked_add(additional));
        }
        Ok(())
    }

    /// Removes every element, keeping the capacity.
    pub fn clear(&mut self) {
        let elements: *mut [T] = self.as_mut_slice();
        // Set the length first: if a destructor panics, the rest leak
        // instead of being dropped twice.
        self.len = 0;
        // SAFETY: the elements were initialised and are no longer counted.
        unsafe { ptr::drop_in_place(elements) };
    }

    #[cold]
    #[inline(never)]
    fn grow_for_push(&mut self) {
        let required = self.len.checked_add(1);
        if let Err(error) = self.grow_to(required) {
            fail(error);
        }
    }

    #[cold]
    #[inline(never)]
    fn reserve_or_die(&mut self, additional: usize) {
        if let Err(error) = self.grow_to(self.len.checked_add(additional)) {
            fail(error);
        }
    }

    /// The capacity to grow to so that `required` elements fit: α times the
    /// current capacity (at least a small minimum), or `required` if more,
    /// clamped to what a layout can describe.
    fn next_capacity(&self, required: usize) -> Result<usize, TryReserveError> {
        let element = mem::size_of::<T>();
        let max_capacity = isize::MAX as usize / element;
        if required > max_capacity {
            return Err(TryReserveError::CapacityOverflow);
        }
        // Small buffers start with a few elements, as `Vec` does.
        let minimum = match element {
            1 => 8,
            2..=1024 => 4,
            _ => 1,
        };
        let scaled = (self.capacity as u128 * u128::from(self.growth)) >> GROWTH_FRACTION_BITS;
        let geometric = usize::try_from(scaled)
            .unwrap_or(usize::MAX)
            .min(max_capacity);
        Ok(geometric.max(required).max(minimum))
    }

    /// Grows so that `required` elements fit. On error nothing has changed.
    fn grow_to(&mut self, required: Option<usize>) -> Result<(), TryReserveError> {
        // Zero-sized elements never need memory: capacity is already
        // `usize::MAX`, so reaching here means the count overflowed.
        let required = required.ok_or(TryReserveError::CapacityOverflow)?;
        if mem::size_of::<T>() == 0 {
            return Err(TryReserveError::CapacityOverflow);
        }
        let new_capacity = self.next_capacity(required)?;
        let new_layout =
            Layout::array::<T>(new_capacity).map_err(|_| TryReserveError::CapacityOverflow)?;
        let block = if self.capacity == 0 {
            self.allocator.allocate(new_layout)
        } else {
            // SAFETY: `ptr` is a live block of this allocator with the
            // layout of the current capacity (see the invariant), and the
            // new layout is larger with the same alignment.
            unsafe {
                self.allocator
                    .grow(self.ptr.cast(), self.current_layout(), new_layout)
            }
        };
        // On failure `grow` leaves the old block as it was, and so do we.
        let block = block.map_err(|_| TryReserveError::AllocError { layout: new_layout })?;
        self.ptr = block.cast();
        // The allocator may return more than asked for; all of it is usable.
        self.capacity = block.len() / mem::size_of::<T>();
        Ok(())
    }

    /// The layout of the current block (only meaningful when it exists).
    fn current_layout(&self) -> Layout {
        // SAFETY: this layout was valid when the block was allocated (its
        // size is at most what the allocator returned, itself at most
        // `isize::MAX` rounded down to a multiple of the alignment).
        unsafe {
            Layout::from_size_align_unchecked(
                self.capacity * mem::size_of::<T>(),
                mem::align_of::<T>(),
            )
        }
    }
}

impl<T: Clone, A: Allocator> Buffer<T, A> {
    /// Appends clones of `elements`, growing once if needed.
    pub fn extend_from_slice(&mut self, elements: &[T]) {
        self.reserve(elements.len());
        self.append_clones(elements);
    }

    /// Appends clones of `elements`, or says why there is no room for them;
    /// the buffer is then exactly as it was.
    pub fn try_extend_from_slice(&mut self, elements: &[T]) -> Result<(), TryReserveError> {
        self.try_reserve(elements.len())?;
        self.append_clones(elements);
        Ok(())
    }

    /// Appends clones; the caller has reserved room for all of them.
    fn append_clones(&mut self, elements: &[T]) {
        debug_assert!(self.capacity - self.len >= elements.len());
        for element in elements {
            // SAFETY: room was reserved for every element, and `len` counts
            // each one as soon as it is written, so a panicking `clone`
            // leaves only initialised elements counted.
            unsafe { self.ptr.as_ptr().add(self.len).write(element.clone()) };
            self.len += 1;
        }
    }
}

#[cold]
#[inline(never)]
fn fail(error: TryReserveError) -> ! {
    match error {
        TryReserveError::CapacityOverflow => panic!("buffer capacity overflow"),
        TryReserveError::AllocError { layout } => handle_alloc_error(layout),
    }
}

impl<T, A: Allocator> Drop for Buffer<T, A> {
    fn drop(&mut self) {
        self.clear();
        if self.capacity != 0 && mem::size_of::<T>() != 0 {
            // SAFETY: the block is live, from this allocator, with this layout.
            unsafe {
                self.allocator
                    .deallocate(self.ptr.cast(), self.current_layout())
            };
        }
    }
}

impl<T, A: Allocator> Deref for Buffer<T, A> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        self.as_slice()
    }
}

impl<T, A: Allocator> DerefMut for Buffer<T, A> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
}

impl<T: fmt::Debug, A: Allocator> fmt::Debug for Buffer<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}
