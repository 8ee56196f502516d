//! Where larder maps its segments: its own address range, far from the kernel's placements.
//! Large blocks that grow in place must not end that range early (a block growing into the
//! addresses the next segment was to take once made that mapping fail, and enough failures
//! made larder give the range up for the rest of the process).

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

/// The own range spans 20 TiB to 64 TiB (see `os.rs`).
fn in_own_range(p: *const u8) -> bool {
    (20usize << 40..64usize << 40).contains(&(p as usize))
}

#[test]
fn growing_large_blocks_keep_segments_in_the_own_range() {
    let mut kept = Vec::new();
    for round in 0..24 {
        let mut grown: Vec<u8> = Vec::with_capacity(256 << 10);
        grown.resize(256 << 10, round as u8);
        // Grows past its 4 MiB span: in place when the address space after it is free.
        grown.reserve_exact(6 << 20);
        grown.resize(6 << 20, 1);
        let next: Vec<u8> = vec![round as u8; 256 << 10];
        assert!(
            in_own_range(grown.as_ptr()) && in_own_range(next.as_ptr()),
            "round {round}: a block at {:p} / {:p}, outside larder's range",
            grown.as_ptr(),
            next.as_ptr()
        );
        kept.push((grown, next));
    }
}
