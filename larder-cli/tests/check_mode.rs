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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/c/check");
    let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("check-{name}"));
    let status = Command::new("cc")
        .args(["-O1", "-g", "-pthread", "-o"])
        .arg(&program)
        .arg(dir.join(format!("{name}.c")))
        .status()
        .expect("the system C compiler (cc) runs");
    assert!(status.success(), "cc failed on {name}.c");
    program
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
