//! larder: a memory allocator and the toolkit around it.

pub mod kit;

pub use kit::{Arena, Buffer, Counting, Failing, Key, Pool, PoolBox, Slab};
