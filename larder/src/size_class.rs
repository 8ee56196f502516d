//! Size classes: which block size serves a request, as pure const tables and arithmetic.
//!
//! Classes are multiples of 8 up to 128 bytes, then eight classes per doubling. Above 128 bytes
//! a request wastes at most one class spacing, which is 1/9 of the class or less, so internal
//! waste stays under 12.5% (the bound is proven by the unit tests below for every size). Below
//! 64 bytes the 8-byte granularity (the minimum alignment) dominates: at most 7 bytes, but for
//! requests under 16 bytes, which share the 16-byte class (`MIN_BLOCK`; bin 1 is never used).
//!
//! Every class above 128 bytes is a multiple of 16, and a class of a size rounded up to a power
//! of two `a` is itself a multiple of `a`: the allocator gets aligned blocks by rounding the size
//! before the lookup (see `alloc.rs`).

/// The smallest block: two words, so that a freed block holds its free-list link and the
/// freed mark (`freed.rs`). Requests of 1 to 16 bytes share this class (glibc's smallest chunk
/// holds 24).
pub const MIN_BLOCK: usize = 16;
/// Largest block served from small pages (64 KiB pages hold at least 8 of them).
pub const SMALL_MAX: usize = 8 * 1024;
/// Largest block served from medium pages (512 KiB pages hold at least 8 of them).
pub const MEDIUM_MAX: usize = 64 * 1024;
/// Largest request served through the heap's direct table (one load from size to page).
pub const DIRECT_MAX: usize = 1024;
/// Entries of the direct table: index `(size + 7) / 8` for sizes `0..=DIRECT_MAX`.
pub const DIRECT_SLOTS: usize = DIRECT_MAX / 8 + 1;
/// Number of bins (bin 0 is unused, so that a bin index is never zero for a real class).
pub const BIN_COUNT: usize = 89;

/// The bin serving `size` bytes, for `1 <= size <= MEDIUM_MAX` (0 is served as 1).
#[inline]
pub const fn bin_of(size: usize) -> usize {
    if size <= 128 {
        if size <= MIN_BLOCK {
            MIN_BLOCK >> 3
        } else {
            (size + 7) >> 3
        }
    } else {
        let s = size - 1;
        let b = (usize::BITS - 1 - s.leading_zeros()) as usize; // floor(log2(s)), >= 7
        17 + (b - 7) * 8 + ((s >> (b - 3)) & 7)
    }
}

/// The block size of a bin.
#[inline]
pub const fn class_size(bin: usize) -> usize {
    CLASS_SIZES[bin]
}

const fn compute_class_size(bin: usize) -> usize {
    if bin == 0 {
        0
    } else if bin <= 16 {
        bin * 8
    } else {
        let j = bin - 17;
        let d = j / 8;
        let k = j % 8;
        (128 << d) + (k + 1) * (16 << d)
    }
}

const CLASS_SIZES: [usize; BIN_COUNT] = {
    let mut t = [0usize; BIN_COUNT];
    let mut i = 0;
    while i < BIN_COUNT {
        t[i] = compute_class_size(i);
        i += 1;
    }
    t
};

/// Bin for each direct-table slot, so that a page change can refresh the slots it serves.
pub const DIRECT_BIN: [u8; DIRECT_SLOTS] = {
    let mut t = [0u8; DIRECT_SLOTS];
    let mut i = 0;
    while i < DIRECT_SLOTS {
        t[i] = bin_of(i * 8) as u8;
        i += 1;
    }
    t
};

/// The direct-table slots that lead to `bin`'s page: those of the sizes it serves, from 0 for
/// the smallest class (requests of 0 to 16 bytes share it).
pub const fn direct_slots(bin: usize) -> core::ops::RangeInclusive<usize> {
    let first = if bin <= MIN_BLOCK >> 3 {
        0
    } else {
        class_size(bin - 1) / 8 + 1
    };
    first..=class_size(bin) / 8
}

/// Rounds a large request up to its class with the same eight-per-doubling spacing, so that
/// large blocks also waste under 12.5% and leave room to grow in place. `None` on overflow.
#[inline]
pub const fn round_large(size: usize) -> Option<usize> {
    if size <= 128 {
        return Some(if size == 0 { 8 } else { (size + 7) & !7 });
    }
    let s = size - 1;
    let b = (usize::BITS - 1 - s.leading_zeros()) as usize;
    let spacing = 1usize << (b - 3);
    match s.checked_add(spacing) {
        Some(v) => Some(v & !(spacing - 1)),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_maps_to_a_class_that_fits_and_is_the_smallest() {
        for size in 1..=MEDIUM_MAX {
            let bin = bin_of(size);
            assert!((1..BIN_COUNT).contains(&bin), "size {size} bin {bin}");
            assert!(
                class_size(bin) >= size,
                "size {size} class {}",
                class_size(bin)
            );
            assert!(
                class_size(bin - 1) < size || size <= MIN_BLOCK,
                "size {size} fits a smaller class"
            );
            assert!(class_size(bin) >= MIN_BLOCK);
        }
        assert_eq!(class_size(BIN_COUNT - 1), MEDIUM_MAX);
    }

    #[test]
    fn waste_stays_under_one_eighth_above_64_bytes() {
        for size in 57..=MEDIUM_MAX {
            let class = class_size(bin_of(size));
            let waste = (class - size) as f64 / class as f64;
            assert!(waste <= 0.125, "size {size} class {class} waste {waste}");
        }
        for size in MIN_BLOCK..=56usize {
            assert!(class_size(bin_of(size)) - size < 8);
        }
    }

    #[test]
    fn classes_are_increasing_and_aligned() {
        for bin in 2..BIN_COUNT {
            assert!(class_size(bin) > class_size(bin - 1));
            assert_eq!(class_size(bin) % 8, 0);
            if class_size(bin) > 128 {
                assert_eq!(class_size(bin) % 16, 0);
            }
        }
    }

    #[test]
    fn rounding_to_an_alignment_lands_on_an_aligned_class() {
        let mut align = 8;
        while align <= MEDIUM_MAX {
            for size in (1..=MEDIUM_MAX).step_by(7) {
                let rounded = (size + align - 1) & !(align - 1);
                if rounded > MEDIUM_MAX {
                    continue;
                }
                let class = class_size(bin_of(rounded));
                assert_eq!(class % align, 0, "size {size} align {align} class {class}");
            }
            align *= 2;
        }
    }

    #[test]
    fn direct_table_agrees_with_bin_of() {
        for size in 0..=DIRECT_MAX {
            assert_eq!(DIRECT_BIN[(size + 7) >> 3] as usize, bin_of(size.max(1)));
        }
    }

    #[test]
    fn direct_slots_cover_exactly_their_bins_sizes() {
        for (slot, &bin) in DIRECT_BIN.iter().enumerate() {
            assert!(direct_slots(bin as usize).contains(&slot), "slot {slot}");
        }
        // Bin 1 (8 bytes) is below the smallest block and never used.
        for bin in (MIN_BLOCK >> 3)..BIN_COUNT {
            if class_size(bin) <= DIRECT_MAX {
                for slot in direct_slots(bin) {
                    assert_eq!(DIRECT_BIN[slot] as usize, bin, "bin {bin} slot {slot}");
                }
            }
        }
    }

    #[test]
    fn large_rounding_fits_and_wastes_little() {
        let mut size = MEDIUM_MAX + 1;
        while size < (1 << 40) {
            let r = round_large(size).unwrap();
            assert!(r >= size);
            assert!(
                ((r - size) as f64) / (r as f64) <= 0.125,
                "size {size} -> {r}"
            );
            size = size * 9 / 8 + 13;
        }
        assert_eq!(round_large(usize::MAX), None);
        assert_eq!(round_large(MEDIUM_MAX), Some(MEDIUM_MAX));
    }
}
