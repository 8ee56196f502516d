//! larder: a memory allocator and the toolkit around it.

pub mod kit;
