//! Random sizes and the per-process measurements workloads share (resident memory).

/// A size drawn log-uniformly from `min..=max`: as many blocks between 16 and 32 bytes as between
/// 512 and 1024, which is closer to real programs than a uniform draw (most blocks are small).
pub fn log_uniform(rng: &mut fastrand::Rng, min: usize, max: usize) -> usize {
    debug_assert!(0 < min && min <= max);
    let (lo, hi) = ((min as f64).ln(), (max as f64 + 1.0).ln());
    let size = (lo + rng.f64() * (hi - lo)).exp() as usize;
    size.clamp(min, max)
}

/// Scales a full-size count by `scale`, never below `floor`.
pub fn scaled(full: u64, scale: f64, floor: u64) -> u64 {
    ((full as f64 * scale).round() as u64).max(floor)
}

/// The process's resident set size in bytes, from `/proc/self/statm` (0 if unreadable).
pub fn resident_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_uniform_stays_in_range_and_favours_small_sizes() {
        let mut rng = fastrand::Rng::with_seed(1);
        let draws: Vec<usize> = (0..100_000)
            .map(|_| log_uniform(&mut rng, 8, 1024))
            .collect();
        assert!(draws.iter().all(|&s| (8..=1024).contains(&s)));
        let below_64 = draws.iter().filter(|&&s| s < 64).count();
        let above_512 = draws.iter().filter(|&&s| s >= 512).count();
        // log2(64/8) = 3 of 7 doublings below 64, 1 of 7 above 512.
        assert!(below_64 > 2 * above_512, "{below_64} vs {above_512}");
        assert!(draws.contains(&8) && draws.contains(&1024));
    }

    #[test]
    fn scaled_rounds_and_respects_the_floor() {
        assert_eq!(scaled(1000, 0.5, 1), 500);
        assert_eq!(scaled(1000, 0.0001, 3), 3);
    }

    #[test]
    fn resident_bytes_grows_when_memory_is_touched() {
        let before = resident_bytes();
        let mut block = crate::workloads::block::Block::new(64 << 20, 1);
        block.touch_pages();
        let after = resident_bytes();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
    }
}
