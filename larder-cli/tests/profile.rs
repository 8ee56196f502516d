//! `larder run --profile` end to end: tests/c/profile/three_sites.c allocates
//! 64, 16 and 4 MiB at three functions (and frees the first before exit); the
//! profile must rank them in that order at the peak and by bytes allocated,
//! show the first as freed at exit, and put every estimate within four of its
//! stated standard errors of the true figure. Also for the children of a shell.
//!
//! liblarder_check.so, which `cargo test` does not build by itself, is brought
//! up to date beside the larder executable first (tests/common).

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

const MIB: u64 = 1 << 20;
/// What three_sites allocates at each function, in bytes.
const TRUTH: [(&str, u64); 3] = [
    ("big_site", 64 * MIB),
    ("medium_site", 16 * MIB),
    ("small_site", 4 * MIB),
];

/// tests/c/profile/three_sites.c, compiled with debug info.
fn three_sites() -> PathBuf {
    static PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PROGRAM
        .get_or_init(|| {
            common::compile_c(
                "profile/three_sites.c",
                "profile-three-sites",
                &["-O2", "-g"],
            )
        })
        .clone()
}

/// Runs `larder run --profile --json` with `extra` options; the summary and larder's status.
fn profile_run(extra: &[&str], command: &[&str]) -> (Value, i32) {
    common::json_run("--profile", extra, command)
}

/// The innermost function of a site's stack.
fn function(site: &Value) -> &str {
    site["stack"][0]["function"].as_str().unwrap_or("?")
}

/// The site whose innermost frame is `name`.
fn site<'a>(sites: &'a [Value], name: &str) -> &'a Value {
    sites
        .iter()
        .find(|s| function(s) == name)
        .unwrap_or_else(|| panic!("no site in {name}: {sites:?}"))
}

/// `estimate` is within four standard errors (and a page of rounding) of `truth`.
fn assert_close(estimate: &Value, truth: u64, what: &str) {
    let bytes = estimate["bytes"].as_u64().unwrap() as f64;
    let se = estimate["standard_error"].as_u64().unwrap() as f64;
    let error = (bytes - truth as f64).abs();
    assert!(
        error <= 4.0 * se + 4096.0,
        "{what}: estimated {bytes} ± {se}, truly {truth} (off by {:.1} standard errors)",
        error / se.max(1.0)
    );
}

/// The sites of one process's profile.
fn sites_of(profile: &Value) -> Vec<Value> {
    profile["sites"].as_array().unwrap().clone()
}

/// Checks one process's profile of three_sites against the truth.
fn check_three_sites(profile: &Value) {
    let sites = sites_of(profile);
    // Ranked by bytes live at the peak (the profile's own order).
    let ranked: Vec<&str> = sites.iter().take(3).map(function).collect();
    assert_eq!(
        ranked,
        ["big_site", "medium_site", "small_site"],
        "{profile}"
    );
    let mut by_alloc = sites.clone();
    by_alloc.sort_by_key(|s| std::cmp::Reverse(s["allocated"]["bytes"].as_u64().unwrap()));
    let ranked: Vec<&str> = by_alloc.iter().take(3).map(function).collect();
    assert_eq!(ranked, ["big_site", "medium_site", "small_site"]);
    for (name, truth) in TRUTH {
        let s = site(&sites, name);
        assert!(s["allocated"]["samples"].as_u64().unwrap() > 0, "{s}");
        assert_close(&s["allocated"], truth, &format!("{name} allocated"));
        assert_close(&s["at_peak"], truth, &format!("{name} at the peak"));
        // big_site's blocks are freed before exit: every one of its samples was forgotten.
        let at_exit = if name == "big_site" { 0 } else { truth };
        assert_close(&s["at_exit"], at_exit, &format!("{name} at exit"));
    }
    let big = site(&sites, "big_site");
    assert_eq!(big["at_exit"]["samples"], 0, "{big}");
    assert_eq!(big["at_exit"]["bytes"], 0, "{big}");
    // The file and line of the call of malloc come from the debug info.
    let location = big["stack"][0]["location"].as_str().unwrap_or("");
    assert!(location.contains("three_sites.c:"), "{big}");
}

#[test]
fn three_known_sites_are_ranked_and_estimated_within_their_stated_error() {
    let dir = tempfile::tempdir().unwrap();
    let flame = dir.path().join("flame.svg");
    let program = three_sites();
    let (summary, status) = profile_run(
        &["--flame", flame.to_str().unwrap()],
        &[program.to_str().unwrap()],
    );
    assert_eq!(status, 0, "{summary}");
    let pid = summary["pid"].as_u64().unwrap().to_string();
    let profile = &summary["profile"][&pid];
    assert_eq!(profile["rate_bytes"], 512 << 10, "{summary}");
    assert_eq!(profile["dropped"], 0);
    check_three_sites(profile);
    let svg = std::fs::read_to_string(&flame).unwrap();
    assert!(svg.contains("<svg"), "not an SVG");
    for (name, _) in TRUTH {
        assert!(svg.contains(name), "the flame graph lacks {name}");
    }
}

#[test]
fn the_children_of_a_shell_are_profiled_each_at_the_rate_asked_for() {
    let program = three_sites();
    let program = program.to_str().unwrap();
    let script = format!("{program} >/dev/null && {program} >/dev/null");
    let (summary, status) = profile_run(&["--profile-rate", "128K"], &["sh", "-c", &script]);
    assert_eq!(status, 0, "{summary}");
    let profiles = summary["profile"].as_object().unwrap();
    let children: Vec<&Value> = profiles
        .values()
        .filter(|p| sites_of(p).iter().any(|s| function(s) == "big_site"))
        .collect();
    assert_eq!(children.len(), 2, "{summary}");
    for profile in children {
        assert_eq!(profile["rate_bytes"], 128 << 10);
        check_three_sites(profile);
    }
}

#[test]
fn a_bad_rate_is_refused_before_the_program_runs() {
    let output = Command::new(common::larder_with_check_library())
        .args(["run", "--profile", "--profile-rate", "lots", "--", "true"])
        .output()
        .expect("larder runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--profile-rate lots"), "{stderr}");
}
