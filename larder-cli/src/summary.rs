//! The summary `larder run` prints when the program ends: its heap as larder
//! counted it (from the program's own exit record), its peak RSS and times,
//! and a line for any other processes it started that also ran on larder.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write;

use serde::Serialize;

use crate::check_record::{ErrorRecord, GuardRecord};
use crate::child::ChildOutcome;
use crate::heap_record::HeapRecord;
use crate::leak_record::Leaks;
use crate::profile::ProcessProfile;

/// Everything the summary says, in the form `--json` writes it.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// The command line that was run.
    pub command: Vec<String>,
    /// The program's process id.
    pub pid: u32,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// Seconds from start to exit.
    pub wall_seconds: f64,
    /// CPU seconds in user mode.
    pub user_seconds: f64,
    /// CPU seconds in the kernel.
    pub system_seconds: f64,
    /// Largest resident set, in bytes.
    pub peak_rss_bytes: u64,
    /// The program's heap; absent when it did not run its exit handlers.
    pub heap: Option<HeapRecord>,
    /// Other processes that ran on larder and exited normally (forked children,
    /// programs it started).
    pub other_processes: OtherProcesses,
    /// With `--check`: the errors check mode reported, frames symbolised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ErrorRecord>>,
    /// With `--check`: what guard pages covered, per process that guarded blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<Vec<GuardRecord>>,
    /// With `--check`: blocks lost at exit, per process and per allocation stack.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leaks: Option<Leaks>,
    /// With `--fail`: the allocations fault injection made fail, frames symbolised.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected: Option<Vec<crate::fail_record::InjectedFailure>>,
    /// With `--profile`: the sampled heap profile of each process, by pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<BTreeMap<u32, ProcessProfile>>,
    /// How many sites the text lists for each measure.
    #[serde(skip)]
    pub profile_top: usize,
}

/// The other processes on larder, added up.
#[derive(Debug, Default, Serialize)]
pub struct OtherProcesses {
    /// How many wrote a record.
    pub count: u64,
    /// Their allocations, added up.
    pub alloc_count: u64,
    /// Their frees, added up.
    pub free_count: u64,
    /// The largest peak of live bytes among them.
    pub max_peak_live_bytes: u64,
}

impl Summary {
    /// The summary of a finished run from its outcome and the heap records.
    pub fn new(command: &[OsString], outcome: &ChildOutcome, records: &[HeapRecord]) -> Self {
        let heap = records.iter().find(|r| r.pid == outcome.pid).cloned();
        let mut others = OtherProcesses::default();
        for record in records.iter().filter(|r| r.pid != outcome.pid) {
            others.count += 1;
            others.alloc_count += record.alloc_count;
            others.free_count += record.free_count;
            others.max_peak_live_bytes = others.max_peak_live_bytes.max(record.peak_live_bytes);
        }
        Self {
            command: command
                .iter()
                .map(|arg| arg.to_string_lossy().into_owned())
                .collect(),
            pid: outcome.pid,
            exit_code: outcome.exit_code,
            signal: outcome.signal,
            wall_seconds: outcome.wall.as_secs_f64(),
            user_seconds: outcome.user.as_secs_f64(),
            system_seconds: outcome.system.as_secs_f64(),
            peak_rss_bytes: outcome.peak_rss_bytes,
            heap,
            other_processes: others,
            errors: None,
            guard: None,
            leaks: None,
            injected: None,
            profile: None,
            profile_top: 10,
        }
    }

    /// The summary as pretty-printed JSON, with a final newline.
    pub fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("the summary is plain data");
        json.push('\n');
        json
    }

    /// The summary for people.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let ending = match (self.exit_code, self.signal) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => "ended".to_owned(),
        };
        let _ = writeln!(
            out,
            "larder: {} (pid {}) {ending}",
            self.command.join(" "),
            self.pid
        );
        match &self.heap {
            Some(heap) => {
                let _ = writeln!(out, "  allocations   {}", grouped(heap.alloc_count));
                let _ = writeln!(out, "  frees         {}", grouped(heap.free_count));
                let _ = writeln!(
                    out,
                    "  requested     {} in all",
                    bytes(heap.requested_bytes)
                );
                let _ = writeln!(out, "  peak live     {}", bytes(heap.peak_live_bytes));
                let _ = writeln!(
                    out,
                    "  live at exit  {} in {} blocks",
                    bytes(heap.live_bytes),
                    grouped(heap.live_blocks())
                );
                let _ = writeln!(
                    out,
                    "  larder holds  {} committed, {} reserved",
                    bytes(heap.committed_bytes),
                    bytes(heap.reserved_bytes)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  heap          no figures: the program did not run its exit handlers (it ended by _exit or a \
                     signal, or replaced itself with a program not on larder)"
                );
            }
        }
        let _ = writeln!(out, "  peak RSS      {}", bytes(self.peak_rss_bytes));
        let _ = writeln!(
            out,
            "  time          {:.3} s wall, {:.3} s user, {:.3} s system",
            self.wall_seconds, self.user_seconds, self.system_seconds
        );
        if let Some(guard) = &self.guard {
            crate::check_record::write_guard_text(&mut out, guard, self.pid);
        }
        if let Some(errors) = &self.errors {
            crate::check_record::write_text(&mut out, errors);
        }
        if let Some(leaks) = &self.leaks {
            leaks.write_text(&mut out, self.pid, LEAK_GROUPS_SHOWN);
        }
        if let Some(injected) = &self.injected {
            crate::fail_record::write_text(&mut out, injected);
        }
        if let Some(profiles) = &self.profile {
            crate::profile::write_text(&mut out, profiles, self.pid, self.profile_top);
        }
        let others = &self.other_processes;
        if others.count > 0 {
            let _ = writeln!(
                out,
                "  also on larder {} other processes: {} allocations, {} frees, peak live at most {}",
                grouped(others.count),
                grouped(others.alloc_count),
                grouped(others.free_count),
                bytes(others.max_peak_live_bytes)
            );
        }
        out
    }
}

/// Groups of lost blocks the text lists (the JSON has them all).
const LEAK_GROUPS_SHOWN: usize = 10;

/// 1234567 as "1,234,567".
fn grouped(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A byte count in the largest binary unit that keeps it at or above 1.
pub(crate) fn bytes(value: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if value < 1024 {
        return format!("{value} B");
    }
    let mut scaled = value as f64 / 1024.0;
    let mut unit = 0;
    while scaled >= 1024.0 && unit + 1 < UNITS.len() {
        scaled /= 1024.0;
        unit += 1;
    }
    format!("{scaled:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn outcome() -> ChildOutcome {
        ChildOutcome {
            pid: 10,
            exit_code: Some(0),
            signal: None,
            wall: Duration::from_millis(1500),
            user: Duration::from_millis(1000),
            system: Duration::from_millis(200),
            peak_rss_bytes: 3 << 20,
        }
    }

    fn record(pid: u32, allocs: u64, peak: u64) -> HeapRecord {
        HeapRecord {
            pid,
            alloc_count: allocs,
            free_count: allocs - 1,
            peak_live_bytes: peak,
            ..HeapRecord::default()
        }
    }

    #[test]
    fn numbers_are_grouped_and_bytes_scaled() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn the_programs_record_is_told_from_the_others() {
        let records = [
            record(11, 5, 100),
            record(10, 1000, 4096),
            record(12, 7, 300),
        ];
        let summary = Summary::new(&["prog".into()], &outcome(), &records);
        assert_eq!(summary.heap.as_ref().map(|h| h.alloc_count), Some(1000));
        assert_eq!(summary.other_processes.count, 2);
        assert_eq!(summary.other_processes.alloc_count, 12);
        assert_eq!(summary.other_processes.free_count, 10);
        assert_eq!(summary.other_processes.max_peak_live_bytes, 300);
        let text = summary.to_text();
        assert!(text.contains("allocations   1,000"), "{text}");
        assert!(text.contains("peak RSS      3.0 MiB"), "{text}");
        assert!(text.contains("2 other processes"), "{text}");
    }

    #[test]
    fn a_program_without_a_record_says_so() {
        let summary = Summary::new(&["prog".into()], &outcome(), &[record(99, 3, 10)]);
        assert!(summary.heap.is_none());
        assert!(summary.to_text().contains("no figures"));
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert!(json["heap"].is_null());
        assert_eq!(json["other_processes"]["count"], 1);
    }
}
