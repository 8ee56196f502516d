//! The leak records check mode appends to the report file at each process's exit, read back
//! for `larder run --check`'s summary:
//! `larder-leak v1 pid=P kind=definite|indirect bytes=N blocks=N alloc=F;F..`, one per
//! allocation stack, largest first, and `larder-leak-summary v1 pid=P definite=BYTES/BLOCKS
//! indirect=BYTES/BLOCKS reachable=BYTES/BLOCKS`, one per process that searched.

use std::fmt::Write;

use serde::Serialize;

use crate::check_record::{fields, frames, write_frames, Frame, Symbolizer};
use crate::summary::bytes;

/// Blocks lost at exit that were allocated at the same place.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct LeakRecord {
    /// The process that lost them.
    pub pid: u32,
    /// `definite`: nothing points to them; `indirect`: only lost blocks do.
    pub kind: String,
    /// Their bytes (requested sizes), added up.
    pub bytes: u64,
    /// How many.
    pub blocks: u64,
    /// Where they were allocated.
    pub alloc: Vec<Frame>,
}

/// One process's totals: bytes and blocks definitely lost, indirectly lost and still
/// reachable (not an error) at exit.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct LeakTotals {
    pub pid: u32,
    pub definite_bytes: u64,
    pub definite_blocks: u64,
    pub indirect_bytes: u64,
    pub indirect_blocks: u64,
    pub reachable_bytes: u64,
    pub reachable_blocks: u64,
}

/// What the leak search found, in every process that ran it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Leaks {
    /// Each process's totals.
    pub totals: Vec<LeakTotals>,
    /// The groups of lost blocks, frames named.
    pub groups: Vec<LeakRecord>,
}

/// `BYTES/BLOCKS`.
fn pair(value: &str) -> Option<(u64, u64)> {
    let (bytes, blocks) = value.split_once('/')?;
    Some((bytes.parse().ok()?, blocks.parse().ok()?))
}

fn parse_group(rest: &str) -> Option<LeakRecord> {
    let mut record = LeakRecord {
        pid: 0,
        kind: String::new(),
        bytes: 0,
        blocks: 0,
        alloc: Vec::new(),
    };
    for (key, value) in fields(rest) {
        match key {
            "pid" => record.pid = value.parse().ok()?,
            "kind" => record.kind = value.to_owned(),
            "bytes" => record.bytes = value.parse().ok()?,
            "blocks" => record.blocks = value.parse().ok()?,
            "alloc" => record.alloc = frames(value),
            _ => {}
        }
    }
    (!record.kind.is_empty()).then_some(record)
}

fn parse_totals(rest: &str) -> Option<LeakTotals> {
    let mut t = LeakTotals::default();
    for (key, value) in fields(rest) {
        match key {
            "pid" => t.pid = value.parse().ok()?,
            "definite" => (t.definite_bytes, t.definite_blocks) = pair(value)?,
            "indirect" => (t.indirect_bytes, t.indirect_blocks) = pair(value)?,
            "reachable" => (t.reachable_bytes, t.reachable_blocks) = pair(value)?,
            _ => {}
        }
    }
    Some(t)
}

/// The leak records in the report file's text, frames not yet named.
pub fn parse(text: &str) -> Leaks {
    let mut leaks = Leaks::default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("larder-leak v1 ") {
            leaks.groups.extend(parse_group(rest));
        } else if let Some(rest) = line.strip_prefix("larder-leak-summary v1 ") {
            leaks.totals.extend(parse_totals(rest));
        }
    }
    leaks
}

impl Leaks {
    /// Names every group's frames.
    pub fn symbolize(&mut self, symbols: &mut Symbolizer) {
        for group in &mut self.groups {
            symbols.frames(group.alloc.iter_mut());
        }
    }

    /// The summary's leak lines: the program's own totals, the other processes' added up, then
    /// the groups of the program's own process, largest first (at most `shown`), and a count of
    /// the other processes' groups.
    pub fn write_text(&self, out: &mut String, pid: u32, shown: usize) {
        let totals = |t: &LeakTotals| {
            format!(
                "definitely lost {} in {} blocks, indirectly lost {} in {} blocks, still \
                 reachable {} in {} blocks",
                bytes(t.definite_bytes),
                t.definite_blocks,
                bytes(t.indirect_bytes),
                t.indirect_blocks,
                bytes(t.reachable_bytes),
                t.reachable_blocks
            )
        };
        if let Some(own) = self.totals.iter().find(|t| t.pid == pid) {
            let _ = writeln!(out, "  leaks         {}", totals(own));
        }
        let others: Vec<&LeakTotals> = self.totals.iter().filter(|t| t.pid != pid).collect();
        if !others.is_empty() {
            let sum = others
                .iter()
                .fold(LeakTotals::default(), |a, t| LeakTotals {
                    pid: 0,
                    definite_bytes: a.definite_bytes + t.definite_bytes,
                    definite_blocks: a.definite_blocks + t.definite_blocks,
                    indirect_bytes: a.indirect_bytes + t.indirect_bytes,
                    indirect_blocks: a.indirect_blocks + t.indirect_blocks,
                    reachable_bytes: a.reachable_bytes + t.reachable_bytes,
                    reachable_blocks: a.reachable_blocks + t.reachable_blocks,
                });
            let _ = writeln!(
                out,
                "  leaks         {}, in {} other processes",
                totals(&sum),
                others.len()
            );
        }
        let own: Vec<&LeakRecord> = self.groups.iter().filter(|g| g.pid == pid).collect();
        for g in own.iter().take(shown) {
            let _ = writeln!(
                out,
                "  LEAK {} in {} blocks {} lost",
                bytes(g.bytes),
                g.blocks,
                if g.kind == "definite" {
                    "definitely"
                } else {
                    "indirectly"
                }
            );
            write_frames(out, "allocated at", &g.alloc);
        }
        if own.len() > shown {
            let _ = writeln!(
                out,
                "  ... and {} more groups (all of them in --json)",
                own.len() - shown
            );
        }
        let elsewhere = self.groups.len() - own.len();
        if elsewhere > 0 {
            let _ = writeln!(
                out,
                "  {elsewhere} groups of lost blocks in other processes (in --json)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_totals_are_read_and_the_programs_own_come_first() {
        let text = "larder-heap v1 pid=1\n\
                    larder-leak v1 pid=7 kind=definite bytes=100 blocks=1 alloc=/bin/p+0x10;/bin/p+0x20\n\
                    larder-leak v1 pid=7 kind=indirect bytes=200 blocks=2 alloc=/bin/p+0x30\n\
                    larder-leak v1 pid=8 kind=definite bytes=5 blocks=5 alloc=/bin/p+0x40\n\
                    larder-leak-summary v1 pid=7 definite=100/1 indirect=200/2 reachable=4096/3\n\
                    larder-leak-summary v1 pid=8 definite=5/5 indirect=0/0 reachable=0/0\n\
                    larder-leak-summary v1 pid=9 definite=1/1 indirect=0/0 reachable=10/1\n";
        let leaks = parse(text);
        assert_eq!(leaks.groups.len(), 3);
        assert_eq!(leaks.groups[0].alloc.len(), 2);
        assert_eq!(leaks.groups[1].kind, "indirect");
        assert_eq!(leaks.totals.len(), 3);
        assert_eq!(leaks.totals[0].reachable_bytes, 4096);
        let mut out = String::new();
        leaks.write_text(&mut out, 7, 1);
        assert!(
            out.contains("definitely lost 100 B in 1 blocks, indirectly lost 200 B in 2 blocks, still reachable 4.0 KiB in 3 blocks\n"),
            "{out}"
        );
        assert!(
            out.contains("definitely lost 6 B in 6 blocks, indirectly lost 0 B in 0 blocks, still reachable 10 B in 1 blocks, in 2 other processes"),
            "{out}"
        );
        assert!(
            out.contains("LEAK 100 B in 1 blocks definitely lost"),
            "{out}"
        );
        assert!(!out.contains("LEAK 200 B"), "only one group shown: {out}");
        assert!(out.contains("and 1 more groups"), "{out}");
        assert!(
            out.contains("1 groups of lost blocks in other processes"),
            "{out}"
        );
    }

    #[test]
    fn a_bad_record_is_skipped() {
        let leaks =
            parse("larder-leak v1 pid=x kind=definite\nlarder-leak-summary v1 pid=3 definite=1\n");
        assert!(leaks.groups.is_empty());
        assert!(leaks.totals.is_empty());
    }
}
