//! The workloads, one module per allocation pattern, and the worker's command line.
//!
//! Every workload takes a thread count and a size scale (1.0 is the full run; `--quick` uses a
//! small fraction), does a fixed amount of work per thread (so with a perfect allocator the wall
//! time stays flat as threads are added, up to the core count), verifies its data, and returns an
//! [`Outcome`]. The worker prints the outcome as one [`result`] line for the runner.

pub mod block;
pub mod false_sharing;
pub mod fastpath;
pub mod fragmentation;
pub mod growth;
pub mod idle_after_exit;
pub mod large;
pub mod producer_consumer;
pub mod result;
pub mod rss_fall;
pub mod server_churn;
pub mod sizes;
pub mod small_churn;
pub mod startup;
pub mod thread_churn;
pub mod tree;
mod worker_cli;

pub use worker_cli::worker_main;

/// What every workload is given.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Worker threads (a workload that needs two roles splits them; see each module).
    pub threads: usize,
    /// Multiplies the per-thread amount of work; 1.0 is the full run.
    pub scale: f64,
    /// Seed for the random sizes and orders, so every allocator sees the same sequence.
    pub seed: u64,
}

/// What a workload reports when it has finished and verified its data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Allocations made (the unit of work).
    pub ops: u64,
    /// Blocks or objects whose contents were verified intact.
    pub checked: u64,
    /// Figures particular to the workload (name, value), e.g. peak live bytes.
    pub metrics: Vec<(String, f64)>,
}

/// The workloads of the suite, in the order the issue lists them.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// 1. larson-style server churn with remote frees.
    ServerChurn,
    /// 2. producers allocate, consumers free.
    ProducerConsumer,
    /// 3. small objects written by several threads in tight loops.
    FalseSharing,
    /// 4. small-object churn, LIFO and random order.
    SmallChurn,
    /// 5. strings and vectors grown by appends to 1 MiB.
    Growth,
    /// 6. 64 KiB to 32 MiB blocks, touched and freed.
    Large,
    /// 7. binary trees of depth 20 built and torn down.
    Tree,
    /// 8. mixed heap, every other block freed, larger blocks allocated.
    Fragmentation,
    /// 9. threads created, allocate, exit.
    ThreadChurn,
    /// 10. long mixed run that frees most of its memory: how fast RSS falls.
    RssFall,
    /// 11. a short program run many times as separate processes.
    Startup,
    /// 12. threads allocate and exit, the main thread frees their blocks and goes idle.
    IdleAfterExit,
}

impl Workload {
    /// Every workload, in order.
    pub const ALL: [Workload; 12] = [
        Workload::ServerChurn,
        Workload::ProducerConsumer,
        Workload::FalseSharing,
        Workload::SmallChurn,
        Workload::Growth,
        Workload::Large,
        Workload::Tree,
        Workload::Fragmentation,
        Workload::ThreadChurn,
        Workload::RssFall,
        Workload::Startup,
        Workload::IdleAfterExit,
    ];

    /// The name used on command lines and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Workload::ServerChurn => "server-churn",
            Workload::ProducerConsumer => "producer-consumer",
            Workload::FalseSharing => "false-sharing",
            Workload::SmallChurn => "small-churn",
            Workload::Growth => "growth",
            Workload::Large => "large",
            Workload::Tree => "tree",
            Workload::Fragmentation => "fragmentation",
            Workload::ThreadChurn => "thread-churn",
            Workload::RssFall => "rss-fall",
            Workload::Startup => "startup",
            Workload::IdleAfterExit => "idle-after-exit",
        }
    }

    /// Looks a workload up by [`Workload::name`].
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Runs the workload in this process. `Err` says which check failed.
    pub fn run(self, params: &Params) -> Result<Outcome, String> {
        match self {
            Workload::ServerChurn => server_churn::run(params),
            Workload::ProducerConsumer => producer_consumer::run(params),
            Workload::FalseSharing => false_sharing::run(params),
            Workload::SmallChurn => small_churn::run(params),
            Workload::Growth => growth::run(params),
            Workload::Large => large::run(params),
            Workload::Tree => tree::run(params),
            Workload::Fragmentation => fragmentation::run(params),
            Workload::ThreadChurn => thread_churn::run(params),
            Workload::RssFall => rss_fall::run(params),
            Workload::Startup => startup::run(params),
            Workload::IdleAfterExit => idle_after_exit::run(params),
        }
    }
}

/// Turns a tally of checked blocks into the workload's verdict.
pub fn verdict(tally: block::Tally, expected: u64, outcome: Outcome) -> Result<Outcome, String> {
    if tally.corrupt != 0 {
        return Err(format!("{} blocks were overwritten", tally.corrupt));
    }
    if tally.checked != expected {
        return Err(format!(
            "checked {} blocks, expected {expected}",
            tally.checked
        ));
    }
    Ok(Outcome {
        checked: tally.checked,
        ..outcome
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in Workload::ALL {
            assert_eq!(Workload::from_name(w.name()), Some(w));
        }
        assert_eq!(Workload::from_name("nope"), None);
    }

    /// Every workload must run and pass its own check at a tiny scale, with one and with three
    /// threads (three: an odd count, which splits unevenly into roles).
    #[test]
    fn every_workload_passes_its_self_check_at_a_tiny_scale() {
        for threads in [1, 3] {
            for w in Workload::ALL {
                if w == Workload::Startup {
                    continue; // spawns the worker binary; covered by the runner's smoke test
                }
                let params = Params {
                    threads,
                    scale: 0.002,
                    seed: 42,
                };
                let outcome = w
                    .run(&params)
                    .unwrap_or_else(|e| panic!("{}: {e}", w.name()));
                assert!(outcome.ops > 0, "{} did no work", w.name());
                assert!(outcome.checked > 0, "{} verified nothing", w.name());
            }
        }
    }
}
