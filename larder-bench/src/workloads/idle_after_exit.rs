//! Workload 12, idle after exit: `threads` threads allocate 512 MiB between them (half in
//! blocks of 16 B to 1 KiB, half in 64 KiB blocks, every page written) and exit, handing their
//! blocks to the main thread, which frees every one and then goes idle: it makes no allocator
//! call while it reads the resident set size every 10 ms for the window (2 s at full scale).
//! The memory was freed into the heaps of threads that no longer exist, and nothing allocates
//! afterwards, so an allocator that gives memory back only from inside its own calls, or only
//! from the heap of a live thread, keeps it all (issue 13). Reports the RSS over time after the
//! last free and the time until nine tenths of the freed memory left it.

use super::block::{Block, Tally};
use super::sizes::{log_uniform, resident_bytes, scaled};
use super::{verdict, Outcome, Params};
use std::time::{Duration, Instant};

const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// The times after the last free (ms) whose RSS is reported.
const REPORTED_MS: [u64; 5] = [0, 250, 500, 1000, 2000];

fn one_thread(seed: u64, bytes: u64) -> Vec<Block> {
    let mut rng = fastrand::Rng::with_seed(seed);
    // Room for every block at once (the small ones average over 200 bytes; this allows for
    // 48): a vector that grew would free its old buffers while the heap is built, and a free
    // that dirties memory then would start the purger before the pattern under test begins.
    let mut blocks = Vec::with_capacity((bytes / 2 / 48 + bytes / 2 / (64 << 10)) as usize + 64);
    let (mut small, mut large) = (0u64, 0u64);
    while small < bytes / 2 || large < bytes / 2 {
        let size = if large < small {
            64 << 10
        } else {
            log_uniform(&mut rng, 16, 1024)
        };
        let mut block = Block::new(size, rng.u64(..));
        block.touch_pages();
        if size == 64 << 10 {
            large += size as u64;
        } else {
            small += size as u64;
        }
        blocks.push(block);
    }
    blocks
}

/// The resident set size from `/proc/self/statm`, read with open/read into a stack buffer: the
/// sampling thread must make no allocator call (`resident_bytes` allocates a `String`).
fn resident_bytes_without_allocating() -> u64 {
    let mut buf = [0u8; 128];
    // SAFETY: a NUL-terminated path; `buf` is valid for its length; the descriptor is closed.
    let read = unsafe {
        let fd = libc::open(c"/proc/self/statm".as_ptr(), libc::O_RDONLY);
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let text = &buf[..read.max(0) as usize];
    let pages = text.split(|&b| b == b' ').nth(1).map_or(0, |field| {
        field
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
    });
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// The RSS of the last sample taken at or before `ms` (the first sample for a time before it).
fn rss_at(samples: &[(f64, u64)], ms: f64) -> Option<u64> {
    samples
        .iter()
        .take_while(|&&(t, _)| t <= ms)
        .last()
        .or(samples.first())
        .map(|&(_, rss)| rss)
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let threads = params.threads.max(1);
    let total = scaled(512 << 20, params.scale.min(1.0), 4 << 20);
    let window = Duration::from_millis(scaled(2000, params.scale, 300));
    let baseline_rss = resident_bytes();
    let handed: Vec<Vec<Block>> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..threads)
            .map(|t| {
                let seed = params.seed ^ (t as u64 + 1);
                scope.spawn(move || one_thread(seed, total / threads as u64))
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("idle-after-exit thread panicked"))
            .collect()
    });
    let rss_before_free = resident_bytes();
    // Room for every sample, made before the frees: the last allocator call is a free.
    let mut samples: Vec<(f64, u64)> =
        Vec::with_capacity((window.as_millis() / SAMPLE_EVERY.as_millis()) as usize + 2);
    let mut tally = Tally::default();
    let mut made = 0u64;
    for blocks in handed {
        made += blocks.len() as u64;
        for block in blocks {
            tally.check_and_free(block);
        }
    }
    let clock = Instant::now();
    loop {
        let at = clock.elapsed();
        samples.push((at.as_secs_f64() * 1e3, resident_bytes_without_allocating()));
        if at >= window || samples.len() == samples.capacity() {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY);
    }
    let freed = rss_before_free.saturating_sub(baseline_rss).max(1) as f64;
    let nine_tenths_back = baseline_rss as f64 + 0.1 * freed;
    let t90 = samples
        .iter()
        .find(|&&(_, rss)| rss as f64 <= nine_tenths_back)
        .map_or(-1.0, |&(ms, _)| ms);
    let mut outcome = Outcome {
        ops: made,
        ..Outcome::default()
    };
    outcome.metrics.extend([
        ("rss_before_free_bytes".to_string(), rss_before_free as f64),
        ("t90_ms".to_string(), t90),
        ("window_ms".to_string(), window.as_secs_f64() * 1e3),
    ]);
    for ms in REPORTED_MS {
        if let Some(rss) = rss_at(&samples, ms as f64) {
            outcome
                .metrics
                .push((format!("rss_at_{ms}ms_bytes"), rss as f64));
        }
    }
    verdict(tally, made, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rss_at_a_time_is_the_last_sample_before_it() {
        let samples = [(0.1, 100), (240.0, 80), (260.0, 40)];
        assert_eq!(rss_at(&samples, 0.0), Some(100));
        assert_eq!(rss_at(&samples, 250.0), Some(80));
        assert_eq!(rss_at(&samples, 5000.0), Some(40));
        assert_eq!(rss_at(&[], 1.0), None);
    }

    #[test]
    fn the_rss_read_without_allocating_agrees_with_statm() {
        let a = resident_bytes_without_allocating();
        let b = resident_bytes();
        assert!(a > 0 && a.abs_diff(b) < 16 << 20, "{a} vs {b}");
    }
}
