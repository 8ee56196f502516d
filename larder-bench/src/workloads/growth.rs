//! Workload 5, growth: buffers grown by appends until they hold 1 MiB, several at once so that
//! they compete for the space behind them.
//!
//! Half are `String`s grown by `push_str` (the standard library doubles their capacity, so they
//! reallocate about twenty times each); the other half are `Vec<u8>`s grown with
//! `reserve_exact` before every append, the way C code calls `realloc(buf, len + n)`: hundreds
//! of reallocations each, cheap only if the allocator can grow a block in place (or remap it).
//! Every byte's value is known from its position, and sampled positions are checked.

use super::sizes::scaled;
use super::{Outcome, Params};

const TARGET: usize = 1 << 20;
const STRINGS: usize = 4;
const VECTORS: usize = 4;
const ALPHABET: usize = 26;
const MAX_CHUNK: usize = 4096;

fn expected_byte(position: usize) -> u8 {
    b'a' + (position % ALPHABET) as u8
}

/// Bytes such that `PATTERN[p % 26 ..][..n]` continues a buffer of length `p`.
fn pattern() -> Vec<u8> {
    (0..ALPHABET + MAX_CHUNK).map(expected_byte).collect()
}

fn continuation(pattern: &[u8], len: usize, chunk: usize) -> &[u8] {
    let start = len % ALPHABET;
    &pattern[start..start + chunk]
}

/// Counts the sampled positions that hold the wrong byte (and a wrong length as one more).
fn damaged_positions(buffer: &[u8]) -> u64 {
    let wrong_len = u64::from(buffer.len() < TARGET);
    let sampled = (0..buffer.len())
        .step_by(4093)
        .chain(buffer.len().checked_sub(1));
    wrong_len + sampled.filter(|&i| buffer[i] != expected_byte(i)).count() as u64
}

fn one_thread(seed: u64, rounds: u64) -> (u64, u64, u64) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let pattern = pattern();
    let (mut appends, mut verified, mut damaged) = (0u64, 0u64, 0u64);
    for _ in 0..rounds {
        let mut strings: Vec<String> = (0..STRINGS).map(|_| String::new()).collect();
        let mut vectors: Vec<Vec<u8>> = (0..VECTORS).map(|_| Vec::new()).collect();
        loop {
            let mut growing = false;
            for s in strings.iter_mut().filter(|s| s.len() < TARGET) {
                let chunk = continuation(&pattern, s.len(), rng.usize(1..=64));
                s.push_str(std::str::from_utf8(chunk).expect("pattern is ASCII"));
                appends += 1;
                growing = true;
            }
            for v in vectors.iter_mut().filter(|v| v.len() < TARGET) {
                let chunk = continuation(&pattern, v.len(), rng.usize(256..=MAX_CHUNK));
                v.reserve_exact(chunk.len());
                v.extend_from_slice(chunk);
                appends += 1;
                growing = true;
            }
            if !growing {
                break;
            }
        }
        for buffer in strings
            .iter()
            .map(|s| s.as_bytes())
            .chain(vectors.iter().map(|v| v.as_slice()))
        {
            damaged += damaged_positions(buffer);
            verified += 1;
        }
    }
    (appends, verified, damaged)
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let rounds = scaled(20, params.scale, 1);
    let results: Vec<(u64, u64, u64)> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..params.threads)
            .map(|t| {
                let seed = params.seed ^ (t as u64 + 1);
                scope.spawn(move || one_thread(seed, rounds))
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("growth thread panicked"))
            .collect()
    });
    let (appends, verified, damaged) = results
        .iter()
        .fold((0, 0, 0), |acc, r| (acc.0 + r.0, acc.1 + r.1, acc.2 + r.2));
    if damaged != 0 {
        return Err(format!("{damaged} sampled bytes or lengths were wrong"));
    }
    let expected = params.threads as u64 * rounds * (STRINGS + VECTORS) as u64;
    if verified != expected {
        return Err(format!("verified {verified} buffers, expected {expected}"));
    }
    Ok(Outcome {
        ops: appends,
        checked: verified,
        metrics: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_buffer_is_noticed() {
        let pattern = pattern();
        let mut buffer = Vec::new();
        while buffer.len() < TARGET {
            let chunk = continuation(&pattern, buffer.len(), 1000);
            buffer.extend_from_slice(chunk);
        }
        assert_eq!(damaged_positions(&buffer), 0);
        buffer[4093 * 3] ^= 1;
        assert_eq!(damaged_positions(&buffer), 1);
        assert_eq!(damaged_positions(&buffer[..100]), 1);
    }
}
