//! `larder run --fail-sweep -- CMD`: sqlite's out-of-memory test loop for any
//! program. CMD runs once on the check-mode library to count its allocations,
//! then once per k with its kth allocation failing (`LARDER_FAIL=nth:k`), in
//! parallel. Each run is handled (it exited, with any status), crashed (a
//! signal) or hung (killed after the timeout). Unhandled runs are grouped by
//! the failing allocation's call site, the first frame outside the library,
//! named from its debug info (check mode's `Symbolizer`), so one report line is one unhandled malloc in the
//! source. With `--check`, check mode's leak search runs at each exit too, and a run that
//! exited but leaked a block the run without an injected failure does not leak (an
//! allocation stack of a "definitely lost" record that the counting run has not) is leaked:
//! the cleanup path of that failure forgot a free. The sweep exits 0 when every run handled
//! its failure, 1 otherwise.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::check_record::{self, Symbolizer};
use crate::child::preload_list;
use crate::cli::RunArgs;
use crate::{locate, Failure};

/// Allocation numbers beyond any program's: the counting run injects nothing.
const NEVER: &str = "nth:999999999999999999";

/// The most runs a sweep makes when --count does not say; above it, k is a
/// stratified sample of the range.
const DEFAULT_MAX_RUNS: u64 = 2000;

/// How one run ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// It exited (any status): the failure was handled.
    Handled,
    /// A signal ended it.
    Crashed {
        /// The signal's name, e.g. SIGSEGV.
        signal: String,
    },
    /// Still running at the timeout.
    Hung,
    /// It exited, but (with `--check`) left blocks unreachable that the run without an
    /// injected failure does not.
    Leaked,
}

/// One unhandled failing allocation site and the runs that show it.
#[derive(Debug, Serialize)]
struct Site {
    /// `function at file:line` (or module+offset when there is no debug information).
    site: String,
    #[serde(flatten)]
    outcome: Outcome,
    /// The allocation numbers whose failure ended this way here.
    allocations: Vec<u64>,
    /// The backtrace of the first of them, module+offset, innermost first.
    backtrace: Vec<String>,
    /// For a leak: where the first run's leaked block was allocated, named as `site` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    leaked_block: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    command: Vec<String>,
    allocations_counted: u64,
    runs: usize,
    handled: usize,
    unhandled_sites: Vec<Site>,
    seconds: f64,
}

/// Runs the sweep; returns larder's exit status (0: every failure handled).
pub fn run(args: &RunArgs) -> Result<u8, Failure> {
    let lib = match &args.lib {
        Some(lib) => lib.clone(),
        None => locate::beside_this_executable("liblarder_check.so", "larder-check-c")?,
    };
    let start = Instant::now();
    let timeout = Duration::from_secs(args.timeout);
    let (_, report) = run_once(&args.command, &lib, NEVER, timeout, args.check)?;
    // The program's own leaks, which no injected failure is to blame for.
    let baseline = leak_stacks(&report);
    let total = report
        .lines()
        .filter_map(|l| l.strip_prefix("larder-fail-count v1 "))
        .filter_map(|l| field(l, "seen")?.parse::<u64>().ok())
        .max()
        .ok_or_else(|| Failure::new("the counting run wrote no allocation count (did the program run on liblarder_check.so?)"))?;
    let from = args.from.max(1);
    let last = match args.count {
        Some(n) => total.min(from.saturating_add(n).saturating_sub(1)),
        None => total,
    };
    let ks = choose(from, last, args.count.unwrap_or(DEFAULT_MAX_RUNS));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    eprintln!(
        "larder: {total} allocations counted; {} runs, allocations {from} to {last}, {jobs} at a time",
        ks.len()
    );

    let bar = ProgressBar::new(ks.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {per_sec}, {eta} left")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(u64, Outcome, String)>> = Mutex::new(Vec::new());
    let error: Mutex<Option<Failure>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&k) = ks.get(i) else { break };
                match run_once(
                    &args.command,
                    &lib,
                    &format!("nth:{k}"),
                    timeout,
                    args.check,
                ) {
                    Ok((outcome, report)) => {
                        results.lock().unwrap().push((k, outcome, report));
                    }
                    Err(e) => {
                        *error.lock().unwrap() = Some(e);
                        next.store(usize::MAX / 2, Ordering::Relaxed);
                    }
                }
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = error.into_inner().unwrap() {
        return Err(e);
    }
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);

    let mut symbols = Symbolizer::default();
    let mut sites: BTreeMap<(String, String), Site> = BTreeMap::new();
    let mut handled = 0;
    for (k, outcome, report) in &mut results {
        let new_leak = leak_stacks(report)
            .into_iter()
            .find(|stack| !baseline.contains(stack));
        if *outcome == Outcome::Handled && new_leak.is_some() {
            *outcome = Outcome::Leaked;
        }
        if *outcome == Outcome::Handled {
            handled += 1;
            continue;
        }
        let frames = failing_frames(report, *k);
        let site = first_program_frame(&frames.join(";"), &mut symbols)
            .unwrap_or_else(|| "(no backtrace recorded)".to_string());
        let leaked_block = new_leak.and_then(|stack| first_program_frame(&stack, &mut symbols));
        let key = (site.clone(), format!("{outcome:?}"));
        sites
            .entry(key)
            .or_insert_with(|| Site {
                site,
                outcome: outcome.clone(),
                allocations: Vec::new(),
                backtrace: frames.clone(),
                leaked_block,
            })
            .allocations
            .push(*k);
    }
    let report = Report {
        command: args
            .command
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        allocations_counted: total,
        runs: results.len(),
        handled,
        unhandled_sites: sites.into_values().collect(),
        seconds: start.elapsed().as_secs_f64(),
    };
    let text = if args.json {
        serde_json::to_string_pretty(&report).unwrap_or_default() + "\n"
    } else {
        to_text(&report)
    };
    match &args.report {
        Some(path) => std::fs::write(path, text)
            .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?,
        None => eprint!("{text}"),
    }
    Ok(u8::from(!report.unhandled_sites.is_empty()))
}

fn to_text(report: &Report) -> String {
    let mut out = format!(
        "larder fail-sweep: {} runs in {:.1} s ({:.1} runs/s), {} allocations counted: {} handled, {} unhandled site{}\n",
        report.runs,
        report.seconds,
        report.runs as f64 / report.seconds.max(1e-9),
        report.allocations_counted,
        report.handled,
        report.unhandled_sites.len(),
        if report.unhandled_sites.len() == 1 { "" } else { "s" },
    );
    for site in &report.unhandled_sites {
        let how = match &site.outcome {
            Outcome::Crashed { signal } => format!("crashed ({signal})"),
            Outcome::Hung => "hung".to_string(),
            Outcome::Leaked => "leaked".to_string(),
            Outcome::Handled => "handled".to_string(),
        };
        let ks: Vec<String> = site
            .allocations
            .iter()
            .take(8)
            .map(u64::to_string)
            .collect();
        out += &format!(
            "  {how:<18} {}  (allocation{} #{}{})\n",
            site.site,
            if site.allocations.len() == 1 { "" } else { "s" },
            ks.join(", #"),
            if site.allocations.len() > 8 {
                ", ..."
            } else {
                ""
            },
        );
        if let Some(block) = &site.leaked_block {
            out += &format!("  {:<18} the lost block was allocated in {block}\n", "");
        }
    }
    out
}

/// The allocation numbers to fail: every one in `from..=last`, or when there
/// are more than `max`, one drawn from each of `max` equal strata (a fixed
/// pseudo-random draw, so a sweep is repeatable).
fn choose(from: u64, last: u64, max: u64) -> Vec<u64> {
    if last < from {
        return Vec::new();
    }
    let span = last - from + 1;
    if span <= max.max(1) {
        return (from..=last).collect();
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..max)
        .map(|i| {
            let lo = from + span * i / max;
            let hi = from + span * (i + 1) / max;
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            lo + state % (hi - lo).max(1)
        })
        .collect()
}

/// Runs the command once with `spec`, its output discarded; returns how it
/// ended and what the library wrote to the report file.
fn run_once(
    command: &[OsString],
    lib: &Path,
    spec: &str,
    timeout: Duration,
    leaks: bool,
) -> Result<(Outcome, String), Failure> {
    let (program, program_args) = command
        .split_first()
        .ok_or_else(|| Failure::new("no command to run"))?;
    let report = tempfile::Builder::new()
        .prefix("larder-sweep-")
        .tempfile()
        .map_err(|e| Failure::new(format!("cannot create a report file: {e}")))?;
    let mut child = Command::new(program)
        .args(program_args)
        .env("LD_PRELOAD", preload_list(lib))
        .env("LARDER_REPORT_FILE", report.path())
        .env("LARDER_FAIL", spec)
        .env("LARDER_QUARANTINE", "0")
        .env("LARDER_GUARD", "off")
        .env("LARDER_LEAKS", if leaks { "on" } else { "off" })
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            Failure::new(format!(
                "cannot run {}: {e}",
                PathBuf::from(program).display()
            ))
        })?;
    let deadline = Instant::now() + timeout;
    let outcome = loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                break match status.signal() {
                    Some(signal) => Outcome::Crashed {
                        signal: signal_name(signal),
                    },
                    None => Outcome::Handled,
                };
            }
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Outcome::Hung;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(Failure::new(format!("waiting for the program failed: {e}"))),
        }
    };
    let text = std::fs::read_to_string(report.path()).unwrap_or_default();
    Ok((outcome, text))
}

fn signal_name(signal: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local string.
    let description = unsafe { std::ffi::CStr::from_ptr(libc::strsignal(signal)) };
    let abbrev = match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL",
        _ => return format!("signal {signal}: {}", description.to_string_lossy()),
    };
    abbrev.to_string()
}

/// The value of `key=` in a record's space-separated fields.
fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    fields
        .split(' ')
        .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
}

/// The first frame of `frames` (`module+0xoff;...`) outside the library, named: `function at
/// file:line` from the debug info, else the module and offset.
fn first_program_frame(frames: &str, symbols: &mut Symbolizer) -> Option<String> {
    check_record::frames(frames)
        .into_iter()
        .find(|f| !f.module.ends_with("liblarder_check.so"))
        .map(|mut f| {
            symbols.frame(&mut f);
            match (f.function, f.location) {
                (Some(function), Some(location)) => format!("{function} at {location}"),
                (Some(function), None) => format!("{function} in {}", f.module),
                _ => format!("{}+{:#x}", f.module, f.offset),
            }
        })
}

/// The allocation stacks of the "definitely lost" blocks check mode reported
/// (`larder-leak v1 ... kind=definite ... alloc=FRAMES`).
fn leak_stacks(report: &str) -> std::collections::BTreeSet<String> {
    report
        .lines()
        .filter_map(|l| l.strip_prefix("larder-leak v1 "))
        .filter(|l| field(l, "kind") == Some("definite"))
        .filter_map(|l| field(l, "alloc").map(str::to_owned))
        .collect()
}

/// The backtrace (module+0xoffset frames) of the injected failure number k.
fn failing_frames(report: &str, k: u64) -> Vec<String> {
    let k = k.to_string();
    report
        .lines()
        .filter_map(|l| l.strip_prefix("larder-fail v1 "))
        .find(|l| field(l, "n") == Some(k.as_str()))
        .and_then(|l| field(l, "at"))
        .map(|at| at.split(';').map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_ranges_are_swept_whole_and_large_ones_sampled_per_stratum() {
        assert_eq!(choose(3, 7, 100), [3, 4, 5, 6, 7]);
        assert!(choose(5, 4, 100).is_empty());
        let sample = choose(1, 1_000_000, 1000);
        assert_eq!(sample.len(), 1000);
        for (i, k) in sample.iter().enumerate() {
            let lo = 1 + 1_000_000 * i as u64 / 1000;
            assert!((lo..lo + 1000).contains(k), "{k} outside stratum {i}");
        }
        assert_eq!(sample, choose(1, 1_000_000, 1000), "not repeatable");
    }

    #[test]
    fn the_failing_allocations_frames_are_found_by_number() {
        let report = "larder-fail v1 pid=1 n=2 size=8 at=/lib/x.so+0x10;/bin/p+0x20\n\
                      larder-fail v1 pid=1 n=3 size=8 at=/lib/x.so+0x11;/bin/p+0x30\n";
        assert_eq!(failing_frames(report, 3), ["/lib/x.so+0x11", "/bin/p+0x30"]);
        assert!(failing_frames(report, 4).is_empty());
    }

    #[test]
    fn only_definite_leaks_are_taken_by_their_allocation_stack() {
        let report =
            "larder-leak v1 pid=1 kind=definite bytes=32 blocks=1 alloc=/bin/p+0x10;/bin/p+0x20\n\
                      larder-leak v1 pid=1 kind=indirect bytes=8 blocks=1 alloc=/bin/p+0x30\n";
        let stacks = leak_stacks(report);
        assert_eq!(stacks.len(), 1);
        assert!(stacks.contains("/bin/p+0x10;/bin/p+0x20"));
    }
}
