//! The worker as a process, driven the way the runner drives it: probe, a workload that spawns
//! children (start-up), the result line, the contender check, and a failure that must show.

use larder_bench::runner::child::run_measured;
use larder_bench::runner::contenders::{find_library, verify, Contender};
use larder_bench::workloads::result;
use std::path::PathBuf;
use std::time::Duration;

const WORKER: &str = env!("CARGO_BIN_EXE_larder-bench-worker");

/// What this test build of the worker installed (the same rule as the worker's `BUILT_WITH`).
fn expected_allocator() -> &'static str {
    if cfg!(feature = "alloc-larder") {
        "larder"
    } else if cfg!(feature = "alloc-mimalloc") {
        "mimalloc"
    } else if cfg!(feature = "alloc-jemalloc") {
        "jemalloc"
    } else {
        "system"
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run_measured(&PathBuf::from(WORKER), &args, &[], Duration::from_secs(120)).map(|f| f.stdout)
}

#[test]
fn the_start_up_workload_spawns_and_checks_its_children() {
    let stdout = run(&["run", "startup", "--threads", "2", "--scale", "0.01"]).unwrap();
    let line = result::parse(&stdout).unwrap();
    assert_eq!(line.allocator, expected_allocator());
    assert_eq!(line.workload, "startup");
    assert_eq!(line.outcome.checked, 10); // 1000 / 2 threads * 0.01, on each of 2 threads
}

#[test]
fn every_workload_runs_as_a_process_at_a_tiny_scale() {
    for workload in larder_bench::workloads::Workload::ALL {
        let stdout = run(&["run", workload.name(), "--threads", "2", "--scale", "0.002"])
            .unwrap_or_else(|e| panic!("{}: {e}", workload.name()));
        let line = result::parse(&stdout).unwrap();
        assert!(line.outcome.checked > 0 && line.kernel_s > 0.0, "{stdout}");
    }
}

#[test]
fn a_bad_argument_fails_the_run() {
    assert!(run(&["run", "no-such-workload"]).is_err());
}

#[test]
fn the_contender_check_accepts_the_right_allocator_and_rejects_a_wrong_one() {
    let right = Contender {
        name: expected_allocator().into(),
        worker: WORKER.into(),
        preload: None,
    };
    verify(&right).unwrap();
    let wrong = Contender {
        name: "jemalloc-but-not-really".into(),
        worker: WORKER.into(),
        preload: None,
    };
    assert!(verify(&wrong).is_err());
}

#[test]
fn a_preloaded_library_is_seen_in_the_worker() {
    if expected_allocator() != "system" {
        return; // preloading is done with the system-allocator worker only
    }
    let Some(lib) = find_library("libjemalloc.so.2").or_else(|| find_library("libmimalloc.so.2"))
    else {
        eprintln!("no preloadable allocator installed; skipped");
        return;
    };
    let preloaded = Contender {
        name: "ld-x".into(),
        worker: WORKER.into(),
        preload: Some(lib),
    };
    verify(&preloaded).unwrap();
    let absent = Contender {
        name: "ld-y".into(),
        worker: WORKER.into(),
        preload: Some("/nonexistent/lib.so".into()),
    };
    assert!(verify(&absent).is_err());
}
