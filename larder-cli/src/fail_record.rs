//! The injected failures of a `larder run --fail` run: the `larder-fail v1 pid=P n=N size=S
//! at=FRAMES` record the library appends for each allocation it made fail, read back, their
//! frames named, for the summary (`--fail-log` also prints each at once on stderr, where the
//! library can name frames only through dladdr).

use serde::Serialize;

use crate::check_record::{fields, frames, write_frames, Frame, Symbolizer};

/// At most this many injected failures are listed in the text summary (all in `--json`).
pub const SHOWN: usize = 10;

/// One allocation that fault injection made fail.
#[derive(Clone, Debug, Serialize)]
pub struct InjectedFailure {
    /// The process it failed in.
    pub pid: u32,
    /// Its number among the process's allocations (1 is the first).
    pub n: u64,
    /// The bytes it asked for.
    pub size: u64,
    /// Where it was called.
    pub at: Vec<Frame>,
}

/// The injected failures in the report file's text, in the order they happened.
pub fn parse(text: &str) -> Vec<InjectedFailure> {
    text.lines()
        .filter_map(|l| l.strip_prefix("larder-fail v1 "))
        .filter_map(|rest| {
            let mut failure = InjectedFailure {
                pid: 0,
                n: 0,
                size: 0,
                at: Vec::new(),
            };
            for (key, value) in fields(rest) {
                match key {
                    "pid" => failure.pid = value.parse().ok()?,
                    "n" => failure.n = value.parse().ok()?,
                    "size" => failure.size = value.parse().ok()?,
                    "at" => failure.at = frames(value),
                    _ => {}
                }
            }
            Some(failure)
        })
        .collect()
}

/// Names the frames of every failure.
pub fn symbolize(failures: &mut [InjectedFailure], symbols: &mut Symbolizer) {
    for failure in failures {
        symbols.frames(failure.at.iter_mut());
    }
}

/// The failures for people: a count, then the first [`SHOWN`] with their stacks.
pub fn write_text(out: &mut String, failures: &[InjectedFailure]) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "  injected      {} failed allocation(s)",
        failures.len()
    );
    for f in failures.iter().take(SHOWN) {
        let _ = writeln!(
            out,
            "  FAIL allocation #{} of {} bytes returned NULL (pid {})",
            f.n, f.size, f.pid
        );
        write_frames(out, "called at", &f.at);
    }
    if failures.len() > SHOWN {
        let _ = writeln!(out, "  ... {} more (in --json)", failures.len() - SHOWN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_read_in_order_with_their_frames() {
        let text = "larder-heap v1 pid=1\n\
                    larder-fail v1 pid=4 n=3 size=128 at=/bin/p+0x20;/lib/c.so+0x5\n\
                    larder-fail v1 pid=4 n=9 size=16 at=/bin/p+0x30\n";
        let failures = parse(text);
        assert_eq!(failures.len(), 2);
        assert_eq!((failures[0].n, failures[0].size), (3, 128));
        assert_eq!(failures[0].at.len(), 2);
        assert_eq!(failures[1].at[0].offset, 0x30);
        let mut out = String::new();
        write_text(&mut out, &failures);
        assert!(
            out.contains("FAIL allocation #3 of 128 bytes returned NULL (pid 4)"),
            "{out}"
        );
    }
}
