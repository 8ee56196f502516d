//! `Slab<T>`: values stored by index, reached through generational keys, so
//! a key to a removed value misses instead of finding the value that reused
//! its slot.
//!
//! Invariant: a vacant entry is either on the free list (its `generation`
//! is the one its next occupant will get) or retired (its generation ran out
//! and it is never reused). An occupied entry matches exactly one live key.

use core::fmt;

use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::vec::Vec;

/// No next free entry.
const END_OF_FREE_LIST: u32 = u32::MAX;

/// A handle to a value in a [`Slab`]: its index and the generation of the
/// slot when the value was inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    index: u32,
    generation: u32,
}

impl Key {
    /// The slot this key points at (stable while the value lives).
    pub fn index(self) -> usize {
        self.index as usize
    }

    /// How many times the slot had been vacated when this key was made.
    pub fn generation(self) -> u32 {
        self.generation
    }
}

/// One slot. The generation sits in both variants so that it shares the
/// tag's word: an entry of a `u64` is 16 bytes, as in a slab without keys.
enum Entry<T> {
    Occupied { generation: u32, value: T },
    Vacant { generation: u32, next_free: u32 },
}

/// Index-based storage with generational keys.
///
/// `insert` reuses the most recently vacated slot, or appends one. Removing a
/// value bumps its slot's generation, so every key made before the removal
/// stops matching: a stale key gets `None`, never another value. A slot whose
/// generation counter runs out (after 2³² reuses) is retired, not wrapped.
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
        if self.free_head == END_OF_FREE_LIST {
            return self.push_entry(value);
        }
        let index = self.free_head;
        let entry = &mut self.entries[index as usize];
        let Entry::Vacant {
            generation,
            next_free,
        } = *entry
        else {
            unreachable!("the free list holds only vacant entries")
        };
        self.free_head = next_free;
        *entry = Entry::Occupied { generation, value };
        self.len += 1;
        Key { index, generation }
    }

    #[inline]
    fn push_entry(&mut self, value: T) -> Key {
        let index = self.entries.len();
        let index = match u32::try_from(index) {
            Ok(index) if index != END_OF_FREE_LIST => index,
            _ => slab_full(),
        };
        self.entries.push(Entry::Occupied {
            generation: 0,
            value,
        });
        self.len += 1;
        Key {
            index,
            generation: 0,
        }
    }

    /// The value of `key`, or `None` if it was removed (or never was here).
    #[inline]
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.entries.get(key.index as usize) {
            Some(Entry::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    /// The value of `key`, mutably, or `None` if it was removed.
    #[inline]
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize) {
            Some(Entry::Occupied { generation, value }) if *generation == key.generation => {
                Some(value)
            }
            _ => None,
        }
    }

    /// Whether `key` still points at a value.
    #[inline]
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Takes the value of `key` out; every copy of `key` misses from now on.
    #[inline]
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let entry = self.entries.get_mut(key.index as usize)?;
        match entry {
            Entry::Occupied { generation, .. } if *generation == key.generation => {}
            _ => return None,
        }
        self.len -= 1;
        let vacated = match key.generation.checked_add(1) {
            Some(generation) => {
                let next_free = self.free_head;
                self.free_head = key.index;
                Entry::Vacant {
                    generation,
                    next_free,
                }
            }
            // Out of generations: retire the entry rather than wrap around.
            None => Entry::Vacant {
                generation: u32::MAX,
                next_free: END_OF_FREE_LIST,
            },
        };
        match core::mem::replace(entry, vacated) {
            Entry::Occupied { value, .. } => Some(value),
            Entry::Vacant { .. } => unreachable!("checked occupied above"),
        }
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
            .enumerate()
            .filter_map(|(index, entry)| match entry {
                Entry::Occupied { generation, value } => Some((
                    Key {
                        index: index as u32,
                        generation: *generation,
                    },
                    value,
                )),
                Entry::Vacant { .. } => None,
            })
    }
}

#[cold]
#[inline(never)]
fn slab_full() -> ! {
    panic!("Slab is full: keys index slots with 32 bits");
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
        // Fast-forward the slot to its last generation.
        slab.entries[0] = Entry::Vacant {
            generation: u32::MAX,
            next_free: END_OF_FREE_LIST,
        };
        let last = slab.insert('b');
        assert_eq!(last.generation(), u32::MAX);
        assert_eq!(slab.remove(last), Some('b'));
        let next = slab.insert('c');
        assert_ne!(
            next.index(),
            last.index(),
            "the exhausted slot is not reused"
        );
        assert_eq!(slab.get(last), None);
        assert_eq!(
            slab.get(Key {
                index: 0,
                generation: 0
            }),
            None
        );
        assert_eq!(slab.len(), 1);
    }
}
