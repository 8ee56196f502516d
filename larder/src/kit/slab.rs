//! `Slab<T>`: values stored by index, reached through generational keys, so
//! a key to a removed value misses instead of finding the value that reused
//! its slot.
//!
//! Each entry carries a 64-bit stamp: a generation in the high half, whose
//! parity is the entry's state (odd while it holds a value, even while
//! vacant; inserting and removing each add one), and in the low half the
//! entry's own index while occupied, or the next free entry while vacant.
//! A key is the stamp its entry had when the value went in, so
//! `entry.stamp == key.stamp` alone proves that the entry is occupied and the
//! key current: a lookup is one bounds check and one 64-bit compare.
//!
//! Invariant: a vacant entry is on the free list, or retired (generation 0:
//! its generations ran out and it is never reused). `len` counts the entries
//! with odd generations.

use core::fmt;
use core::mem::MaybeUninit;

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::vec::Vec;

/// No next free entry.
const END_OF_FREE_LIST: u32 = u32::MAX;
/// The generation of an entry that may never be used again.
const RETIRED: u32 = 0;

const fn stamp(generation: u32, low: u32) -> u64 {
    ((generation as u64) << 32) | low as u64
}

const fn generation_of(stamp: u64) -> u32 {
    (stamp >> 32) as u32
}

const fn low_half(stamp: u64) -> u32 {
    stamp as u32
}

/// A handle to a value in a [`Slab`]: its index and the generation stamp of
/// the slot when the value was inserted.
///
/// ```
/// use std::collections::HashSet;
/// use larder::{Key, Slab};
///
/// let mut slab = Slab::new();
/// let first: Key = slab.insert('x');
/// let copy = first; // keys are Copy
/// let mut seen = HashSet::new();
/// seen.insert(first); // and Hash + Eq
/// assert!(seen.contains(&copy));
/// assert_eq!((first.index(), first.generation()), (0, 1));
/// slab.remove(first);
/// let second = slab.insert('y');
/// assert_eq!((second.index(), second.generation()), (0, 3));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The entry's stamp when the value was inserted: odd generation, index.
    stamp: u64,
}

impl Key {
    /// The slot this key points at (stable while the value lives).
    pub fn index(self) -> usize {
        low_half(self.stamp) as usize
    }

    /// How many times the slot had been filled or emptied when this key was
    /// made (always odd).
    pub fn generation(self) -> u32 {
        generation_of(self.stamp)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("index", &self.index())
            .field("generation", &self.generation())
            .finish()
    }
}

struct Entry<T> {
    /// Generation (odd: `value` is initialised) and, while occupied, this
    /// entry's index; while vacant, the next entry on the free list.
    stamp: u64,
    value: MaybeUninit<T>,
}

/// Index-based storage with generational keys.
///
/// `insert` reuses the most recently vacated slot, or appends one. Removing a
/// value bumps its slot's generation, so every key made before the removal
/// stops matching: a stale key gets `None`, never another value. A slot whose
/// generation stamps run out (after 2³¹ reuses) is retired, not wrapped.
///
/// ```
/// use larder::Slab;
///
/// let mut players = Slab::new();
/// let ada = players.insert("Ada");
/// let bob = players.insert("Bob");
/// assert_eq!(players.get(ada), Some(&"Ada"));
/// *players.get_mut(bob).unwrap() = "Robert";
/// assert_eq!(players.remove(ada), Some("Ada"));
///
/// let cy = players.insert("Cy"); // reuses Ada's slot
/// assert_eq!(cy.index(), ada.index());
/// assert_eq!(players.get(ada), None); // the stale key misses
/// assert_eq!(players.get(cy), Some(&"Cy"));
/// assert_eq!(players.len(), 2);
/// ```
pub struct Slab<T, A: Allocator = Global> {
    entries: Vec<Entry<T>, A>,
    /// Most recently vacated reusable entry, or `END_OF_FREE_LIST`.
    free_head: u32,
    len: usize,
}

impl<T> Slab<T, Global> {
    /// An empty slab.
    pub fn new() -> Self {
        Self::new_in(Global)
    }

    /// An empty slab with room for `capacity` values before it reallocates.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_in(capacity, Global)
    }
}

impl<T> Default for Slab<T, Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, A: Allocator> Slab<T, A> {
    /// An empty slab storing its entries in `allocator`.
    pub fn new_in(allocator: A) -> Self {
        Slab {
            entries: Vec::new_in(allocator),
            free_head: END_OF_FREE_LIST,
            len: 0,
        }
    }

    /// An empty slab with room for `capacity` values, in `allocator`.
    pub fn with_capacity_in(capacity: usize, allocator: A) -> Self {
        Slab {
            entries: Vec::with_capacity_in(capacity, allocator),
            free_head: END_OF_FREE_LIST,
            len: 0,
        }
    }

    /// Stores `value` and returns its key.
    ///
    /// # Panics
    /// If the slab would need more than `u32::MAX - 1` slots.
    #[inline]
    pub fn insert(&mut self, value: T) -> Key {
        let index = self.free_head;
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return self.push_entry(value);
        };
        let vacant = entry.stamp;
        // Entries on the free list are vacant with an even generation below
        // `u32::MAX`, so adding one gives an odd generation without overflow.
        debug_assert!(generation_of(vacant) % 2 == 0 && generation_of(vacant) != RETIRED);
        entry.stamp = stamp(generation_of(vacant) + 1, index);
        entry.value.write(value);
        self.free_head = low_half(vacant);
        self.len += 1;
        Key { stamp: entry.stamp }
    }

    #[cold]
    #[inline(never)]
    fn push_entry(&mut self, value: T) -> Key {
        let index = match u32::try_from(self.entries.len()) {
            Ok(index) if index != END_OF_FREE_LIST => index,
            _ => slab_full(),
        };
        let occupied = stamp(1, index);
        self.entries.push(Entry {
            stamp: occupied,
            value: MaybeUninit::new(value),
        });
        self.len += 1;
        Key { stamp: occupied }
    }

    /// The value of `key`, or `None` if it was removed (or never was here).
    #[inline]
    pub fn get(&self, key: Key) -> Option<&T> {
        let entry = self.entries.get(key.index())?;
        if entry.stamp != key.stamp {
            return None;
        }
        // SAFETY: key generations are odd, so the entry's generation is odd:
        // it holds an initialised value (module invariant).
        Some(unsafe { entry.value.assume_init_ref() })
    }

    /// The value of `key`, mutably, or `None` if it was removed.
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let entry = self.entries.get_mut(key.index())?;
        if entry.stamp != key.stamp {
            return None;
        }
        // SAFETY: as in `get`, the odd generation means the value is
        // initialised.
        Some(unsafe { entry.value.assume_init_mut() })
    }

    /// Whether `key` still points at a value.
    #[inline]
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Takes the value of `key` out; every copy of `key` misses from now on.
    #[inline]
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get_mut(key.index())?;
        if entry.stamp != key.stamp {
            return None;
        }
        // The last odd generation, `u32::MAX`, wraps to `RETIRED`: the entry
        // is then left off the free list rather than reused with old keys.
        let generation = generation_of(key.stamp).wrapping_add(1);
        entry.stamp = stamp(generation, self.free_head);
        if generation != RETIRED {
            self.free_head = low_half(key.stamp);
        }
        self.len -= 1;
        // SAFETY: the generation was odd, so the value was initialised; it is
        // now even, so the value will not be read again before a new write.
        Some(unsafe { entry.value.assume_init_read() })
    }

    /// Number of values stored.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is stored.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Iterates over the stored values with their keys, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> + '_ {
        self.entries
            .iter()
            .filter(|entry| generation_of(entry.stamp) % 2 == 1)
            .map(|entry| {
                let key = Key { stamp: entry.stamp };
                // SAFETY: the generation is odd, so the value is initialised.
                (key, unsafe { entry.value.assume_init_ref() })
            })
    }
}

#[cold]
#[inline(never)]
fn slab_full() -> ! {
    panic!("Slab is full: keys index slots with 32 bits");
}

impl<T, A: Allocator> Drop for Slab<T, A> {
    fn drop(&mut self) {
        if !core::mem::needs_drop::<T>() {
            return;
        }
        for entry in self.entries.iter_mut() {
            if generation_of(entry.stamp) % 2 == 1 {
                // Mark it vacant first: a panicking destructor leaks the
                // rest instead of dropping anything twice.
                entry.stamp = stamp(RETIRED, END_OF_FREE_LIST);
                // SAFETY: the generation was odd, so the value is
                // initialised, and it is dropped once.
                unsafe { entry.value.assume_init_drop() };
            }
        }
    }
}

impl<T: fmt::Debug, A: Allocator> fmt::Debug for Slab<T, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_out_of_generations_is_retired_not_wrapped() {
        let mut slab = Slab::new();
        let first = slab.insert('a');
        slab.remove(first);
        // Fast-forward the vacant slot to its last even generation.
        slab.entries[0].stamp = stamp(u32::MAX - 1, END_OF_FREE_LIST);
        let last = slab.insert('b');
        assert_eq!(last.index(), 0);
        assert_eq!(last.generation(), u32::MAX);
        assert_eq!(slab.remove(last), Some('b'));
        let next = slab.insert('c');
        assert_ne!(
            next.index(),
            last.index(),
            "the exhausted slot is not reused"
        );
        assert_eq!(slab.get(last), None);
        assert_eq!(slab.get(first), None);
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.iter().count(), 1);
    }
}
