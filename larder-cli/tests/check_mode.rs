//! `larder run --check` end to end: a program from the check-mode corpus
//! (tests/c/check) is reported with its class, the culprit named with file and
//! line from debug info, status 23; `--keep-going` lets it go on; a clean
//! program keeps its own status and gets no report.
//!
//! liblarder_check.so, which `cargo test` does not build by itself, is brought
//! up to date beside the larder executable first (tests/common).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// tests/c/check/NAME.c, compiled with debug info (no -rdynamic: the names
/// must come from the CLI's symbolisation, not from dladdr).
fn corpus_program(name: &str) -> PathBuf {
    common::compile_c(
        &format!("check/{name}.c"),
        &format!("check-{name}"),
        &["-O1", "-g", "-pthread"],
    )
}

fn check_run(extra: &[&str], program: &Path, args: &[&str]) -> (Value, i32) {
    common::json_run(
        "--check",
        extra,
        std::iter::once(program.as_os_str()).chain(args.iter().map(std::ffi::OsStr::new)),
    )
}

/// `larder run --check --json --report FILE -- PROGRAM ARGS`: the JSON summary from the file,
/// the exit status, and stderr (the program's own and larder's, without the summary).
fn summary_apart_from_stderr(program: &Path, args: &[&str]) -> (Value, Option<i32>, String) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new(common::larder_with_check_library())
        .args(["run", "--check", "--json", "--report"])
        .arg(report.path())
        .arg("--")
        .arg(program)
        .args(args)
        .output()
        .expect("larder runs");
    let summary = serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap())
        .expect("a JSON summary");
    (
        summary,
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The record of `records` (an array of per-process records) that is the program's own.
fn of_the_program(records: &Value, summary: &Value) -> Value {
    records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == summary["pid"])
        .cloned()
        .unwrap_or_else(|| panic!("no record of the program's own process: {summary}"))
}

fn functions(frames: &Value) -> Vec<String> {
    frames
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_double_free_is_reported_with_the_culprit_symbolised_and_status_23() {
    let (summary, status) = check_run(&[], &corpus_program("double_free"), &["4096"]);
    assert_eq!(status, 23);
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    let e = &errors[0];
    assert_eq!(e["class"], "double-free");
    assert_eq!(e["size"], 4096);
    assert!(
        functions(&e["at"]).contains(&"free_again".to_owned()),
        "{e}"
    );
    assert!(functions(&e["alloc"]).contains(&"main".to_owned()), "{e}");
    let located = e["at"].as_array().unwrap().iter().any(|f| {
        f["location"]
            .as_str()
            .is_some_and(|l| l.contains("double_free.c:"))
    });
    assert!(located, "no file:line for the culprit: {e}");
}

#[test]
fn keep_going_reports_and_lets_the_program_finish() {
    let (summary, status) = check_run(&["--keep-going"], &corpus_program("overflow"), &["100"]);
    assert_eq!(status, 0);
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors[0]["class"], "heap-buffer-overflow");
    assert_eq!(errors[0]["offset"], 100);
    assert!(functions(&errors[0]["alloc"]).contains(&"make_block".to_owned()));
}

#[test]
fn a_clean_program_keeps_its_status_and_gets_no_report() {
    let (summary, status) = check_run(&[], Path::new("/bin/sh"), &["-c", "exit 7"]);
    assert_eq!(status, 7);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 0, "{summary}");
}

#[test]
fn what_guard_pages_covered_is_in_the_summary_not_in_the_programs_stderr() {
    let program = corpus_program("clean_fork");
    let (summary, status, stderr) = summary_apart_from_stderr(&program, &[]);
    assert_eq!(status, Some(0));
    assert!(!stderr.contains("guard pages"), "{stderr}");
    let own = of_the_program(&summary["guard"], &summary);
    assert!(own["guarded"].as_u64().unwrap() > 0, "{own}");
    assert!(own["how"].as_str().is_some_and(|h| !h.is_empty()), "{own}");
    // LARDER_CHECK_VERBOSE=on puts the line back on stderr, for runs without larder run.
    let verbose = Command::new(&program)
        .env(
            "LD_PRELOAD",
            common::larder_with_check_library().with_file_name("liblarder_check.so"),
        )
        .env("LARDER_CHECK_VERBOSE", "on")
        .output()
        .expect("the program runs");
    let stderr = String::from_utf8_lossy(&verbose.stderr);
    assert!(stderr.contains("larder check: guard pages: "), "{stderr}");
}

#[test]
fn leaks_are_in_the_summary_symbolised_and_not_on_the_programs_stderr() {
    let (summary, status, stderr) = summary_apart_from_stderr(&corpus_program("leak"), &["100"]);
    assert_eq!(status, Some(0), "leaks keep the program's status");
    assert!(!stderr.contains("LEAK"), "{stderr}");
    let leaks = &summary["leaks"];
    let own = of_the_program(&leaks["totals"], &summary);
    // tests/c/check/leak.c: a head of 64 + 100 bytes lost, two such nodes behind it, and one
    // block of 100 bytes a global still points to.
    assert_eq!(
        (
            &own["definite_bytes"],
            &own["definite_blocks"],
            &own["indirect_blocks"],
            &own["reachable_bytes"]
        ),
        (
            &Value::from(164),
            &Value::from(1),
            &Value::from(2),
            &Value::from(100)
        ),
        "{own}"
    );
    let groups = leaks["groups"].as_array().unwrap();
    assert_eq!(
        groups[0]["kind"], "definite",
        "definitely lost first: {leaks}"
    );
    assert!(
        functions(&groups[0]["alloc"]).contains(&"leak_list".to_owned()),
        "{leaks}"
    );
    let located = groups[0]["alloc"].as_array().unwrap().iter().any(|f| {
        f["location"]
            .as_str()
            .is_some_and(|l| l.contains("leak.c:"))
    });
    assert!(located, "no file:line for the allocation: {leaks}");
}

/// The heap figures of `run_summary COUNT SIZE LEAK` (tests/c/run_summary.c) under check mode,
/// with `LARDER_GUARD=MODE`: alloc_count, free_count, requested_bytes, live_bytes,
/// peak_live_bytes.
fn check_mode_heap(guard: &str, count: u64, leak: u64) -> [i64; 5] {
    let program = common::compile_c("run_summary.c", "check-run_summary", &["-O1"]);
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new(common::larder_with_check_library())
        .args(["run", "--check", "--json", "--report"])
        .arg(report.path())
        .arg("--")
        .arg(&program)
        .args([count.to_string(), "256".into(), leak.to_string()])
        .env("LARDER_GUARD", guard)
        .output()
        .expect("larder runs");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(report.path()).unwrap()).unwrap();
    let heap = &summary["heap"];
    [
        "alloc_count",
        "free_count",
        "requested_bytes",
        "live_bytes",
        "peak_live_bytes",
    ]
    .map(|f| {
        heap[f]
            .as_i64()
            .unwrap_or_else(|| panic!("no {f} in {summary}"))
    })
}

/// Check mode keeps each block's requested size, so the figures are the program's calls and
/// sizes exactly: not the core's blocks (headers, redzones, quarantined blocks still held), and
/// guarded blocks, which never reach the core, count too. Two runs that differ only in the
/// program's own work differ by exactly that work (C's start-up cancels out).
#[test]
fn check_modes_heap_figures_are_the_programs_own_calls() {
    for guard in ["all", "off"] {
        let base = check_mode_heap(guard, 2_000, 100);
        let more = check_mode_heap(guard, 4_000, 100);
        let leaked = check_mode_heap(guard, 2_000, 1_100);
        let [allocs, frees, requested, live, peak] = core::array::from_fn(|i| more[i] - base[i]);
        // Within a few: the run that frees more may start larder's purger thread, whose
        // bookkeeping glibc's pthread_create allocates through malloc (288 bytes here).
        let within_a_few = |d: i64, exact: i64| (exact..=exact + 1_024).contains(&d);
        assert!(
            (2_000..=2_004).contains(&allocs) && (2_000..=2_004).contains(&frees),
            "LARDER_GUARD={guard}: {allocs} allocations, {frees} frees more"
        );
        // 2,000 more blocks of 256 bytes, and 2,000 more pointers in the calloc'd array.
        assert!(
            within_a_few(requested, 2_000 * (256 + 8)),
            "LARDER_GUARD={guard}: {requested} bytes more requested"
        );
        // The extra blocks are freed; the array, larger by 16,000 bytes, is still live.
        assert!(
            within_a_few(live, 2_000 * 8),
            "LARDER_GUARD={guard}: {live} bytes more live"
        );
        // Every block is live at once, with the array.
        assert!(
            within_a_few(peak, 2_000 * (256 + 8)),
            "LARDER_GUARD={guard}: peak {peak} bytes higher"
        );
        assert!(base[4] >= 2_000 * (256 + 8), "LARDER_GUARD={guard}");
        assert_eq!(leaked[1], base[1] - 1_000, "LARDER_GUARD={guard}");
        assert_eq!(leaked[3] - base[3], 1_000 * 256, "LARDER_GUARD={guard}");
    }
}

/// Leaks keep the program's status, unless `--leaks-fail` asks for LeakSanitizer's 23; a program
/// that loses nothing keeps its status either way.
#[test]
fn leaks_fail_ends_a_leaking_program_with_status_23() {
    let leak = corpus_program("leak");
    let (plain, status) = check_run(&[], &leak, &["100"]);
    assert_eq!(status, 0, "{plain}");
    let (failing, status) = check_run(&["--leaks-fail"], &leak, &["100"]);
    assert_eq!(status, 23, "{failing}");
    assert!(
        failing["heap"].is_object(),
        "the heap record is still written: {failing}"
    );
    let clean = corpus_program("clean_fork");
    let (summary, status) = check_run(&["--leaks-fail"], &clean, &[]);
    assert_eq!(status, 0, "{summary}");
}

/// A call site the compiler inlined is named with the function it sits in and, after it, each
/// function it was inlined into (as `addr2line -i` names them): the culprit is in the stack
/// even when its frame was folded into its caller's.
#[test]
fn inlined_functions_are_named_with_the_functions_they_were_inlined_into() {
    let program = common::compile_c("symbols/inlined_free.c", "inlined_free", &["-O2", "-g"]);
    let (summary, status) = check_run(&[], &program, &[]);
    assert_eq!(status, 23, "{summary}");
    let error = &summary["errors"][0];
    assert_eq!(error["class"], "double-free", "{summary}");
    let first = &error["at"][0];
    assert_eq!(first["function"], "release", "{first}");
    assert_eq!(
        first["inlined_into"][0]["function"], "drop_twice",
        "{first}"
    );
    assert!(
        first["inlined_into"][0]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("inlined_free.c:15")),
        "{first}"
    );
}
