//! The contenders: each is a worker binary, optionally with a shared library preloaded into it.
//!
//! Built-in contenders are the worker built once per allocator (`larder-bench-worker-<name>` in
//! the workers folder), each with its allocator as Rust's `#[global_allocator]`. Preloaded
//! contenders run the system-allocator worker with `LD_PRELOAD=<library>`, which replaces
//! `malloc` and friends underneath Rust's `System` allocator, as it would for a C program.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The allocators a worker can be built with, in table order.
pub const BUILT_IN: [&str; 4] = ["larder", "system", "mimalloc", "jemalloc"];

/// Shared libraries preloaded by default when present: (contender name, file name).
/// Debian's packages: libmimalloc2.0, libjemalloc2, libtcmalloc-minimal4.
pub const DEFAULT_PRELOADS: [(&str, &str); 3] = [
    ("ld-mimalloc", "libmimalloc.so.2"),
    ("ld-jemalloc", "libjemalloc.so.2"),
    ("ld-tcmalloc", "libtcmalloc_minimal.so.4"),
];

/// Where Debian and other distributions keep shared libraries.
const LIBRARY_DIRS: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
    "/usr/local/lib",
];

/// One column of the results.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Contender {
    /// Name in tables and on the command line.
    pub name: String,
    /// The worker binary.
    pub worker: PathBuf,
    /// A library to preload into it, if any.
    pub preload: Option<PathBuf>,
}

impl Contender {
    /// The allocator the worker binary must report it was built with.
    pub fn expected_built_with(&self) -> &str {
        if self.preload.is_some() {
            "system"
        } else {
            &self.name
        }
    }

    /// Extra environment for the worker.
    pub fn env(&self) -> Vec<(String, String)> {
        match &self.preload {
            Some(lib) => vec![("LD_PRELOAD".to_string(), lib.display().to_string())],
            None => Vec::new(),
        }
    }

    /// One line saying what the contender is, for the report.
    pub fn describe(&self) -> String {
        match &self.preload {
            Some(lib) => format!("system-allocator worker with LD_PRELOAD={}", lib.display()),
            None if self.name == "system" => "Rust's System allocator (glibc malloc)".to_string(),
            None => format!("`#[global_allocator]` = {}", self.name),
        }
    }
}

/// The worker binary built with `allocator`, inside `workers`.
pub fn worker_path(workers: &Path, allocator: &str) -> PathBuf {
    workers.join(format!("larder-bench-worker-{allocator}"))
}

/// Finds a library by file name in the usual directories.
pub fn find_library(file_name: &str) -> Option<PathBuf> {
    LIBRARY_DIRS
        .iter()
        .map(|dir| Path::new(dir).join(file_name))
        .find(|p| p.exists())
}

/// Parses a `--preload name=path` argument.
pub fn parse_preload(arg: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = arg
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PATH, got {arg:?}"))?;
    if name.is_empty() || name.contains(char::is_whitespace) || path.is_empty() {
        return Err(format!("expected NAME=PATH, got {arg:?}"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

/// Runs the contender's worker with `probe` and checks that it is what it claims: the right
/// built-in allocator, and the preloaded library really mapped into the process.
pub fn verify(contender: &Contender) -> Result<(), String> {
    let finished = super::child::run_measured(
        &contender.worker,
        &["probe".to_string()],
        &contender.env(),
        Duration::from_secs(60),
    )
    .map_err(|e| format!("{}: probe failed: {e}", contender.name))?;
    let reported = finished
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("allocator="))
        .unwrap_or("");
    if reported != contender.expected_built_with() {
        return Err(format!(
            "{}: worker {} was built with {reported:?}, expected {:?}",
            contender.name,
            contender.worker.display(),
            contender.expected_built_with()
        ));
    }
    if let Some(lib) = &contender.preload {
        let wanted = std::fs::canonicalize(lib)
            .map_err(|e| format!("{}: {}: {e}", contender.name, lib.display()))?;
        let mapped = finished
            .stdout
            .lines()
            .filter_map(|l| l.strip_prefix("lib="))
            .any(|m| std::fs::canonicalize(m).is_ok_and(|m| m == wanted));
        if !mapped {
            return Err(format!(
                "{}: {} was not mapped into the worker",
                contender.name,
                lib.display()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_arguments_parse() {
        assert_eq!(
            parse_preload("ld-x=/lib/x.so").unwrap(),
            ("ld-x".to_string(), PathBuf::from("/lib/x.so"))
        );
        assert!(parse_preload("nopath").is_err());
        assert!(parse_preload("=/x.so").is_err());
        assert!(parse_preload("a b=/x.so").is_err());
        assert!(parse_preload("x=").is_err());
    }

    #[test]
    fn a_preloaded_contender_expects_the_system_worker() {
        let c = Contender {
            name: "ld-x".into(),
            worker: "w".into(),
            preload: Some("/x.so".into()),
        };
        assert_eq!(c.expected_built_with(), "system");
        assert_eq!(
            c.env(),
            vec![("LD_PRELOAD".to_string(), "/x.so".to_string())]
        );
        let b = Contender {
            name: "mimalloc".into(),
            worker: "w".into(),
            preload: None,
        };
        assert_eq!(b.expected_built_with(), "mimalloc");
        assert!(b.env().is_empty());
    }
}
