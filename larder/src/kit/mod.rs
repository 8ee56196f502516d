//! Allocation strategies matched to lifetimes, and allocator wrappers for tests.
//!
//! - [`Arena`]: bump allocation, everything freed at once on `reset`.
//! - [`Pool`] / [`PoolBox`]: fixed-size slots for one type, recycled.
//! - [`Slab`] / [`Key`]: values by index, generational keys that miss once stale.
//! - [`Buffer`]: a growable buffer with fallible growth and slack-aware capacity.
//! - [`Failing`]: makes chosen allocations fail. [`Counting`]: counts live blocks.
//!
//! Every type takes its memory from an `allocator_api2` [`Allocator`]
//! (`Global` by default), and the wrappers are allocators themselves, so they
//! stack: an `Arena` inside a `Failing` inside a `Counting`.
//!
//! [`Allocator`]: allocator_api2::alloc::Allocator

pub mod arena;
mod asked;
pub mod buffer;
pub mod counting;
pub mod failing;
pub mod pool;
pub mod slab;

pub use arena::Arena;
pub use buffer::Buffer;
pub use counting::Counting;
pub use failing::Failing;
pub use pool::{Pool, PoolBox};
pub use slab::{Key, Slab};

/// The examples of `docs/TOOLKIT.md`, run as doctests so the guide stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/TOOLKIT.md")]
pub struct ToolkitGuide;
