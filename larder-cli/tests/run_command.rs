//! `larder run` end to end: the figures in its summary against a C program
//! whose heap activity is known exactly (tests/c/run_summary.c), and its exit
//! status, signals, timing and child processes.
//!
//! liblarder.so, which `cargo test` does not build by itself, is brought up
//! to date beside the larder executable first (tests/common).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

fn larder() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        // --fail and --fail-sweep run the program on the check-mode library.
        common::built_library("liblarder_check.so", "larder-check-c");
        common::built_library("liblarder.so", "larder-c")
    });
    common::larder_exe()
}

/// tests/c/run_summary.c, compiled once with the system C compiler.
fn run_summary_program() -> &'static Path {
    static PROGRAM: OnceLock<PathBuf> = OnceLock::new();
    PROGRAM.get_or_init(|| common::compile_c("run_summary.c", "run_summary", &["-O1"]))
}

fn larder_run(extra: &[&str], command: &[&str]) -> Output {
    Command::new(larder())
        .arg("run")
        .args(extra)
        .arg("--")
        .args(command)
        .output()
        .expect("larder runs")
}

/// Runs `command` under `larder run --json` and returns the summary.
fn summary_of(command: &[&str]) -> (Value, i32) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let report_path = report.path().to_str().unwrap();
    let output = larder_run(&["--json", "--report", report_path], command);
    let text = std::fs::read_to_string(report.path()).unwrap();
    let summary =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad summary ({e}): {text}"));
    (summary, output.status.code().unwrap_or(-1))
}

struct Heap {
    alloc_count: i64,
    free_count: i64,
    requested_bytes: i64,
    live_bytes: i64,
    peak_live_bytes: i64,
}

fn heap_of_run_summary(count: u64, size: u64, leak: u64) -> Heap {
    let program = run_summary_program().to_str().unwrap();
    let (summary, status) = summary_of(&[
        program,
        &count.to_string(),
        &size.to_string(),
        &leak.to_string(),
    ]);
    assert_eq!(status, 0, "{summary}");
    let heap = &summary["heap"];
    assert!(
        heap.is_object(),
        "no heap record for the program: {summary}"
    );
    let field = |name: &str| {
        heap[name]
            .as_i64()
            .unwrap_or_else(|| panic!("no {name} in {heap}"))
    };
    Heap {
        alloc_count: field("alloc_count"),
        free_count: field("free_count"),
        requested_bytes: field("requested_bytes"),
        live_bytes: field("live_bytes"),
        peak_live_bytes: field("peak_live_bytes"),
    }
}

/// What C's start-up allocates is the same in every run, so differences
/// between runs that differ only in the program's own work are exact.
#[test]
fn the_heap_figures_are_what_the_program_did() {
    const SIZE: i64 = 256;
    let base = heap_of_run_summary(2_000, SIZE as u64, 100);
    let more_blocks = heap_of_run_summary(52_000, SIZE as u64, 100);
    let more_leaked = heap_of_run_summary(2_000, SIZE as u64, 1_100);

    assert!(
        base.alloc_count >= 2_001,
        "2,000 blocks and their array were allocated"
    );
    // Within a few: the run that frees 13 MB starts larder's purger thread, and glibc's
    // pthread_create allocates that thread's bookkeeping through malloc.
    let within_a_few = |d: i64| (50_000..=50_004).contains(&d);
    assert!(within_a_few(more_blocks.alloc_count - base.alloc_count));
    assert!(within_a_few(more_blocks.free_count - base.free_count));
    // 50,000 more blocks, and 50,000 more pointers in the calloc'd array. Small and medium
    // blocks count their size class as requested (the fast paths keep no sizes): the base run's
    // 16,000-byte array counts up to 12.5% more, so the difference may be that much short.
    let extra_requested = more_blocks.requested_bytes - base.requested_bytes;
    assert!(
        (50_000 * (SIZE + 8) - 2_000..=50_000 * (SIZE + 8) + 4096).contains(&extra_requested),
        "requested bytes grew by {extra_requested}"
    );

    assert_eq!(more_leaked.alloc_count, base.alloc_count);
    assert_eq!(base.free_count - more_leaked.free_count, 1_000);
    let live_blocks = |h: &Heap| h.alloc_count - h.free_count;
    assert_eq!(live_blocks(&more_leaked) - live_blocks(&base), 1_000);
    // Live bytes count whole blocks, so a size class may round 256 up a little.
    let extra_live = more_leaked.live_bytes - base.live_bytes;
    assert!(
        (1_000 * SIZE..=1_000 * SIZE * 5 / 4).contains(&extra_live),
        "1,000 leaked blocks: {extra_live}"
    );

    // All blocks are live at once, with the pointer array beside them. The core
    // samples the peak on its slow paths, "exact to within about one page of
    // blocks per thread"; seen short by up to 110 KiB, so 256 KiB is allowed,
    // 2% of the 13 MB the second run adds.
    const PEAK_SAMPLING: i64 = 256 << 10;
    assert!(
        base.peak_live_bytes >= 2_000 * (SIZE + 8) - PEAK_SAMPLING,
        "peak {}",
        base.peak_live_bytes
    );
    let extra_peak = more_blocks.peak_live_bytes - base.peak_live_bytes;
    let expected = 50_000 * (SIZE + 8);
    assert!(
        (expected - PEAK_SAMPLING..=expected * 5 / 4 + PEAK_SAMPLING).contains(&extra_peak),
        "peak grew by {extra_peak}, not {expected}"
    );
}

#[test]
fn a_large_block_freed_before_exit_still_counts_in_the_peak() {
    // One 10 MB block, written and freed: the peak must have seen it.
    let heap = heap_of_run_summary(1, 10_000_000, 0);
    assert!(
        heap.peak_live_bytes >= 10_000_000,
        "peak {}",
        heap.peak_live_bytes
    );
    assert!(
        heap.live_bytes < 1_000_000,
        "live at exit {}",
        heap.live_bytes
    );
}

#[test]
fn peak_rss_covers_the_memory_the_program_touched() {
    let program = run_summary_program().to_str().unwrap();
    // 50,000 blocks of 4 KiB, all written and live at once: 195 MiB.
    let (summary, status) = summary_of(&[program, "50000", "4096", "0"]);
    assert_eq!(status, 0);
    let rss = summary["peak_rss_bytes"].as_u64().unwrap();
    assert!(rss >= 195 << 20, "peak RSS {rss}");
    assert!(
        rss < 600 << 20,
        "peak RSS {rss} is far above what was touched"
    );
    assert!(summary["heap"]["peak_live_bytes"].as_u64().unwrap() >= 50_000 * 4096);
}

#[test]
fn the_text_summary_goes_to_stderr_and_the_program_output_is_untouched() {
    let program = run_summary_program().to_str().unwrap();
    let output = larder_run(
        &[],
        &["sh", "-c", &format!("echo hello; exec {program} 3000 64 0")],
    );
    assert!(output.status.success());
    assert_eq!(output.stdout, b"hello\n");
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("exited with status 0"), "{text}");
    assert!(text.contains("allocations   3,0"), "{text}");
    assert!(text.contains("peak RSS"), "{text}");
}

#[test]
fn the_programs_exit_status_and_signal_come_through() {
    let (summary, status) = summary_of(&["sh", "-c", "exit 7"]);
    assert_eq!(status, 7);
    assert_eq!(summary["exit_code"], 7);

    let (summary, status) = summary_of(&["sh", "-c", "kill -KILL $$"]);
    assert_eq!(status, 128 + 9);
    assert_eq!(summary["signal"], 9);
    assert!(
        summary["heap"].is_null(),
        "a killed program writes no heap record"
    );
}

#[test]
fn wall_time_is_measured() {
    let (summary, status) = summary_of(&["sleep", "0.3"]);
    assert_eq!(status, 0);
    let wall = summary["wall_seconds"].as_f64().unwrap();
    assert!((0.3..30.0).contains(&wall), "wall time {wall}");
}

#[test]
fn processes_the_program_starts_are_counted_apart() {
    let program = run_summary_program().to_str().unwrap();
    let script = format!("{program} 100 32 0; {program} 100 32 0; {program} 100 32 0");
    let (summary, status) = summary_of(&["sh", "-c", &script]);
    assert_eq!(status, 0);
    let others = &summary["other_processes"];
    assert!(others["count"].as_u64().unwrap() >= 3, "{summary}");
    assert!(others["alloc_count"].as_u64().unwrap() >= 300, "{summary}");
}

#[test]
fn a_missing_command_is_reported_like_a_shell_does() {
    let output = larder_run(&[], &["/nonexistent/program"]);
    assert_eq!(output.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot run /nonexistent/program"));
}

#[test]
fn a_typo_in_the_fail_spec_names_the_bad_word_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let output = larder_run(
        &["--fail", "nth:3,thread:mian"],
        &["touch", marker.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'thread:mian'"), "{stderr}");
    assert!(stderr.contains("thread:main or thread:other"), "{stderr}");
    assert!(!marker.exists(), "the program ran despite the bad spec");

    let output = larder_run(&["--fail", "nht:3"], &["true"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'nht:3'"), "{stderr}");
}

#[test]
fn plot_draws_the_timeline_with_the_peak_marked() {
    let program = run_summary_program().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("heap.svg");
    let output = larder_run(
        &["--plot", svg.to_str().unwrap()],
        // The shell is on larder too: the program is a child with a line of its own.
        &["sh", "-c", &format!("{program} 20000 4096 0; sleep 0.05")],
    );
    assert!(output.status.success(), "{output:?}");
    let picture = std::fs::read_to_string(&svg).expect("the plot is written");
    assert!(picture.starts_with("<svg"), "{}", &picture[..100]);
    for text in [
        "peak live",
        "live bytes",
        "committed",
        "RSS",
        "time since start (s)",
    ] {
        assert!(picture.contains(text), "no {text:?} in the plot");
    }
    assert!(
        picture.contains("live bytes, child"),
        "no line for the child"
    );
}

/// tests/c/fail/oom.c, compiled as is or with every failure handled (each test its own copy).
fn oom_program(handled: bool) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/fail/oom.c");
    static BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let copy = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = if handled { "oom_handled" } else { "oom" };
    let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{copy}"));
    let mut cc = Command::new("cc");
    cc.args(["-O1", "-g", "-o"]).arg(&program).arg(&source);
    if handled {
        cc.arg("-DHANDLE_ALL");
    }
    assert!(cc.status().expect("cc runs").success());
    program
}

#[test]
fn fail_makes_the_chosen_allocation_return_null() {
    let oom = oom_program(false);
    let handled = oom_program(true);
    let oom = oom.to_str().unwrap();
    // The third allocation (parse_record's calloc) is dereferenced unchecked.
    let output = larder_run(&["--fail", "nth:3", "--fail-log"], &[oom]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.code(), Some(128 + libc::SIGSEGV), "{stderr}");
    assert!(
        stderr.contains("injected failure: allocation #3 of 128 bytes returns NULL"),
        "{stderr}"
    );
    // The backtrace starts at the program's call (larder's own frames are left out).
    let first_frame = stderr.lines().find(|l| l.trim_start().starts_with("#0 "));
    assert!(
        first_frame.is_some_and(|l| l.contains(oom)),
        "no backtrace from the program's call: {stderr}"
    );
    // The first is handled: a clean error exit, with errno ENOMEM (12).
    let output = larder_run(&["--fail", "nth:1"], &[oom]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("(errno 12)"), "{stderr}");
    let output = larder_run(&["--fail", "nth:3"], &[handled.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(output.status.signal(), None);
}

/// The summary lists each injected failure with its call site named from debug info.
#[test]
fn the_summary_names_where_each_injected_failure_was_called() {
    let oom = oom_program(false);
    let report = tempfile::NamedTempFile::new().unwrap();
    let report_path = report.path().to_str().unwrap();
    larder_run(
        &["--fail", "nth:3", "--json", "--report", report_path],
        &[oom.to_str().unwrap()],
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    let injected = summary["injected"].as_array().expect("injected failures");
    assert_eq!(injected.len(), 1, "{summary}");
    assert_eq!(
        (&injected[0]["n"], &injected[0]["size"]),
        (&Value::from(3), &Value::from(128))
    );
    assert_eq!(
        injected[0]["at"][0]["function"], "parse_record",
        "{summary}"
    );
}

#[test]
fn the_sweep_finds_exactly_the_unhandled_site_and_nothing_when_all_are_handled() {
    let oom = oom_program(false);
    let output = larder_run(&["--fail-sweep", "--json"], &[oom.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let json: Value = serde_json::from_str(&stderr[stderr.find('{').unwrap()..]).unwrap();
    let sites = json["unhandled_sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1, "{stderr}");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/fail/oom.c");
    let calloc_line = std::fs::read_to_string(source)
        .unwrap()
        .lines()
        .position(|l| l.contains("calloc("))
        .unwrap()
        + 1;
    assert_eq!(
        sites[0]["site"]
            .as_str()
            .unwrap()
            .rsplit_once('/')
            .unwrap()
            .1,
        format!("oom.c:{calloc_line}"),
        "{stderr}"
    );
    assert!(sites[0]["site"]
        .as_str()
        .unwrap()
        .starts_with("parse_record at "));
    assert_eq!(sites[0]["outcome"], "crashed");
    assert_eq!(sites[0]["signal"], "SIGSEGV");
    assert_eq!(sites[0]["allocations"], serde_json::json!([3]));
    assert!(json["handled"].as_u64().unwrap() >= 3);

    let handled = oom_program(true);
    let output = larder_run(&["--fail-sweep"], &[handled.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" 0 unhandled sites"), "{stderr}");
}

/// tests/c/fail/leak_on_failure.c, as is (one cleanup path forgets its frees) or fixed.
fn leak_program(fixed: bool) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/fail/leak_on_failure.c");
    let name = if fixed {
        "leak_fixed"
    } else {
        "leak_on_failure"
    };
    let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let mut cc = Command::new("cc");
    cc.args(["-O1", "-g", "-o"]).arg(&program).arg(&source);
    if fixed {
        cc.arg("-DFREE_ON_FAILURE");
    }
    assert!(cc.status().expect("cc runs").success());
    program
}

#[test]
fn the_sweep_with_check_finds_the_cleanup_path_that_leaks_and_nothing_when_fixed() {
    let leaky = leak_program(false);
    let output = larder_run(
        &["--fail-sweep", "--check", "--json"],
        &[leaky.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let json: Value = serde_json::from_str(&stderr[stderr.find('{').unwrap()..]).unwrap();
    let sites = json["unhandled_sites"].as_array().unwrap();
    assert_eq!(sites.len(), 1, "{stderr}");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/fail/leak_on_failure.c");
    let text = std::fs::read_to_string(source).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() + 1;
    let site = sites[0]["site"].as_str().unwrap();
    assert!(site.starts_with("make_pair at "), "{site}");
    assert!(
        site.ends_with(&format!(
            "leak_on_failure.c:{}",
            line_of("p->value = malloc(")
        )),
        "{site}"
    );
    assert_eq!(sites[0]["outcome"], "leaked");
    assert_eq!(sites[0]["allocations"], serde_json::json!([3]));
    // The block lost is the pair itself (its key is only indirectly lost).
    let block = sites[0]["leaked_block"].as_str().unwrap();
    assert!(
        block.ends_with(&format!("leak_on_failure.c:{}", line_of("*p = malloc("))),
        "{block}"
    );
    // Without --check the same sweep cannot see leaks: every run exits cleanly.
    let output = larder_run(&["--fail-sweep"], &[leaky.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));

    let fixed = leak_program(true);
    let output = larder_run(&["--fail-sweep", "--check"], &[fixed.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(" 0 unhandled sites"), "{stderr}");
}
