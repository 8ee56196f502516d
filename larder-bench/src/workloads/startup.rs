//! Workload 11, start-up: a short program (a few hundred small allocations: strings, a map, a
//! sort) run a thousand times as separate processes, the thousand shared out between the
//! threads, each starting its share one after another (so unlike the other workloads, the total
//! work does not grow with the thread count). Process
//! creation, loading and the runtime's own start dominate; what differs between allocators is
//! their initialisation (reserving and mapping their first memory, reading options, setting up
//! thread-local state), which programs that spawn many short processes pay every time.
//!
//! The children are this worker binary itself, with the hidden `startup-child` command, so they
//! use the same allocator, and an `LD_PRELOAD` in the environment reaches them too.

use super::sizes::scaled;
use super::{Outcome, Params};
use std::collections::HashMap;
use std::process::{Command, Stdio};

/// The short program each child runs: builds, sorts and checks a few hundred small objects.
pub fn child() -> Result<(), String> {
    let words: Vec<String> = (0..300)
        .map(|i| format!("entry-{:05}", (i * 7919) % 300))
        .collect();
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(16);
    for (i, word) in words.iter().enumerate() {
        index.insert(word.as_str(), i);
    }
    let mut sorted = words.clone();
    sorted.sort();
    let distinct = index.len();
    if distinct != 300 || sorted.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!(
            "expected 300 distinct sorted words, got {distinct}"
        ));
    }
    Ok(())
}

/// Runs the workload.
pub fn run(params: &Params) -> Result<Outcome, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the worker binary: {e}"))?;
    let per_thread = scaled(1000 / params.threads as u64, params.scale, 3);
    let results: Vec<Result<u64, String>> = std::thread::scope(|scope| {
        let running: Vec<_> = (0..params.threads)
            .map(|_| {
                let exe = &exe;
                scope.spawn(move || {
                    for _ in 0..per_thread {
                        let status = Command::new(exe)
                            .arg("startup-child")
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .status()
                            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
                        if !status.success() {
                            return Err(format!("a start-up child failed: {status}"));
                        }
                    }
                    Ok(per_thread)
                })
            })
            .collect();
        running
            .into_iter()
            .map(|h| h.join().expect("spawning thread panicked"))
            .collect()
    });
    let mut children = 0;
    for result in results {
        children += result?;
    }
    Ok(Outcome {
        ops: children,
        checked: children,
        metrics: vec![("processes".into(), children as f64)],
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_child_program_passes_its_own_check() {
        super::child().unwrap();
    }
}
