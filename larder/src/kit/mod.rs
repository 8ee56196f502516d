//! Allocation strategies matched to lifetimes (arena, pool, slab, buffer) and
//! allocator wrappers for tests (failing, counting).
