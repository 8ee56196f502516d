//! What larder-cli's integration tests share: the libraries `larder run` preloads.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// `tests/c/SOURCE` (a path under the repository's tests/c), compiled by the system C compiler
/// with `flags` into the test's scratch directory as `name`.
#[allow(dead_code)] // each test binary compiles this module; not every one compiles C
pub fn compile_c(source: &str, name: &str, flags: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/c")
        .join(source);
    let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let status = Command::new("cc")
        .args(flags)
        .arg("-o")
        .arg(&program)
        .arg(&source)
        .status()
        .expect("the system C compiler (cc) runs");
    assert!(status.success(), "cc failed on {}", source.display());
    program
}

/// The `larder` executable under test.
pub fn larder_exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_larder"))
}

/// `file` (a library the cdylib `package` builds), brought up to date beside the `larder`
/// executable. `cargo test` builds the executables of the package under test but not other
/// packages' cdylibs, so a fresh clone's `cargo test --workspace` would otherwise run against a
/// missing or stale library: this runs `cargo build -p package` with the profile and target
/// directory of the test itself (a no-op when it is up to date).
pub fn built_library(file: &str, package: &str) -> PathBuf {
    // One build at a time within this test binary; cargo's own lock serialises binaries.
    static BUILDING: Mutex<()> = Mutex::new(());
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let exe_dir = larder_exe()
        .parent()
        .expect("the executable has a directory");
    let library = exe_dir.join(file);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .args(["build", "--quiet", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if exe_dir.ends_with("release") {
        build.arg("--release");
    }
    if let Some(target_dir) = exe_dir.parent() {
        build.arg("--target-dir").arg(target_dir);
    }
    let status = build.status().expect("cargo runs");
    assert!(status.success(), "cargo build -p {package} failed");
    assert!(library.is_file(), "{} was not built", library.display());
    library
}

/// The `larder` executable, with liblarder_check.so (check mode and the profiler) built beside it.
#[allow(dead_code)] // Used by the check-mode and profiler tests, not by every test binary.
pub fn larder_with_check_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| built_library("liblarder_check.so", "larder-check-c"));
    larder_exe()
}

/// Runs `larder run MODE --json --report FILE EXTRA -- COMMAND` and returns the JSON summary it
/// wrote and larder's exit status.
#[allow(dead_code)] // Used by the check-mode and profiler tests, not by every test binary.
pub fn json_run<I>(mode: &str, extra: &[&str], command: I) -> (Value, i32)
where
    I: IntoIterator,
    I::Item: AsRef<OsStr>,
{
    let report = tempfile::NamedTempFile::new().unwrap();
    let output = Command::new(larder_with_check_library())
        .args(["run", mode, "--json", "--report"])
        .arg(report.path())
        .args(extra)
        .arg("--")
        .args(command)
        .output()
        .expect("larder runs");
    let text = std::fs::read_to_string(report.path()).unwrap();
    let summary =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad summary ({e}): {text}"));
    (summary, output.status.code().unwrap_or(-1))
}
