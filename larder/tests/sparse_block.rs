//! A big block touched here and there stays small in RSS: by default larder does not advise big
//! blocks for transparent huge pages, under which each scattered first touch would make 2 MiB
//! resident (mimalloc-bench's barnes sizes its arrays for the most bodies and fills part).
//! Skipped where the kernel gives every mapping huge pages itself (THP `always`).

#[global_allocator]
static GLOBAL: larder::Larder = larder::Larder;

#[test]
fn scattered_touches_of_a_big_block_cost_small_pages() {
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp.contains("[always]") {
        eprintln!("THP is always on here: the kernel decides, not larder; skipped");
        return;
    }
    const SIZE: usize = 64 << 20;
    const STRIDE: usize = 4 << 20;
    let layout = std::alloc::Layout::from_size_align(SIZE, 16).unwrap();
    // SAFETY: a non-zero size; the block is written inside its bounds and freed once.
    unsafe {
        let block = std::alloc::alloc(layout);
        assert!(!block.is_null());
        let before = larder::stats().resident_bytes;
        for offset in (0..SIZE).step_by(STRIDE) {
            block.add(offset).write_volatile(1);
        }
        let grown = larder::stats().resident_bytes.saturating_sub(before);
        std::alloc::dealloc(block, layout);
        // 16 touches: 64 KiB in small pages, 32 MiB in huge ones.
        assert!(
            grown < 4 << 20,
            "16 scattered touches made {grown} bytes resident"
        );
    }
}
