//! The worker's command line: `run` one workload, or the helpers the runner and the callgrind
//! script use (`probe`, `fastpath`, `startup-child`).

use super::{fastpath, result, startup, Params, Workload};
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "larder-bench-worker",
    about = "Runs one larder-bench workload in this process"
)]
struct WorkerArgs {
    #[command(subcommand)]
    command: WorkerCommand,
}

#[derive(Subcommand)]
enum WorkerCommand {
    /// Runs a workload and prints its result line.
    Run {
        /// Which workload.
        #[arg(value_enum)]
        workload: Workload,
        /// Worker threads.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Amount of work per thread; 1.0 is the full run.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
        /// Seed for sizes and orders.
        #[arg(long, default_value_t = 0x1a2d_e5)]
        seed: u64,
    },
    /// Prints the allocator this worker was built with and the shared objects mapped into it
    /// (so the runner can check that an LD_PRELOAD took effect).
    Probe,
    /// Allocates and frees `size` bytes `iters` times, for instruction counts under callgrind.
    Fastpath {
        /// Block size in bytes.
        #[arg(long)]
        size: usize,
        /// Number of allocate+free pairs.
        #[arg(long)]
        iters: u64,
        /// Blocks of the same size kept live during the loop (so its page never empties).
        #[arg(long, default_value_t = 0)]
        hold: usize,
    },
    /// Allocates one small block in each of `classes` size classes (16, 32, 48, … bytes) and
    /// prints the page faults and resident bytes that cost: the first-touch cost a short-lived
    /// program pays per size class it uses.
    FirstTouch {
        /// How many distinct sizes to allocate.
        #[arg(long, default_value_t = 20)]
        classes: usize,
    },
    /// The short program that the `startup` workload runs many times.
    #[command(hide = true)]
    StartupChild,
}

/// Entry point of `larder-bench-worker`.
/// `built_with` names the allocator the worker binary installed, for the result line.
pub fn worker_main(built_with: &str) -> ExitCode {
    let args = WorkerArgs::parse();
    match args.command {
        WorkerCommand::Run {
            workload,
            threads,
            scale,
            seed,
        } => {
            let params = Params {
                threads: threads.max(1),
                scale,
                seed,
            };
            let started = Instant::now();
            match workload.run(&params) {
                Ok(outcome) => {
                    let kernel_s = started.elapsed().as_secs_f64();
                    let line = result::format(built_with, workload.name(), kernel_s, &outcome);
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(why) => {
                    eprintln!(
                        "larder-bench-worker: {} failed its check: {why}",
                        workload.name()
                    );
                    ExitCode::FAILURE
                }
            }
        }
        WorkerCommand::Probe => {
            println!("allocator={}", built_with);
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
            let mut libs: Vec<&str> = maps
                .lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .filter(|path| path.contains(".so"))
                .collect();
            libs.sort_unstable();
            libs.dedup();
            for lib in libs {
                println!("lib={lib}");
            }
            ExitCode::SUCCESS
        }
        WorkerCommand::Fastpath { size, iters, hold } => {
            println!("checksum={}", fastpath::run(size, iters, hold));
            ExitCode::SUCCESS
        }
        WorkerCommand::FirstTouch { classes } => {
            let (faults, resident) = fastpath::first_touch(classes);
            println!("allocator={built_with} classes={classes} minor_faults={faults} resident_bytes={resident}");
            ExitCode::SUCCESS
        }
        WorkerCommand::StartupChild => match startup::child() {
            Ok(()) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("larder-bench-worker startup-child: {why}");
                ExitCode::FAILURE
            }
        },
    }
}
