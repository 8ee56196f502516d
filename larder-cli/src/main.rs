//! `larder`, the command: `larder run [--report FILE] -- CMD [ARGS...]` runs any
//! program with liblarder.so preloaded as its malloc and prints a summary of its
//! heap at exit; `larder bench` runs the benchmark suite.
//!
//! Modules: [`cli`] (the arguments), [`locate`] (finding liblarder.so and
//! larder-bench beside this executable), [`child`] (running the program and
//! measuring it), [`heap_record`] (reading what the library wrote at exit),
//! [`summary`] (what is printed), [`sweep`] (`--fail-sweep`), [`plot`] (the `--plot` picture), [`profile`] (`--profile`), [`bench`]
//! (handing over to larder-bench).

mod bench;
mod check_record;
mod child;
mod cli;
mod fail_record;
mod heap_record;
mod leak_record;
mod locate;
mod plot;
mod profile;
mod summary;
mod sweep;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// The exit status for larder's own failures (as `env` and `nice` use it),
/// distinct from any the program itself returns in the common cases.
const EXIT_LARDER_FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) if args.fail_sweep => sweep::run(&args),
        Command::Run(args) => child::run_with_summary(&args),
        Command::Bench(args) => bench::exec_bench(&args.args),
    };
    match result {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("larder: {error}");
            ExitCode::from(error.exit_status().unwrap_or(EXIT_LARDER_FAILED))
        }
    }
}

/// A failure of larder itself, with the exit status it should give when it is
/// not the generic one (127 for a command not found, as shells do).
#[derive(Debug)]
pub struct Failure {
    message: String,
    exit_status: Option<u8>,
}

impl Failure {
    /// A failure with larder's generic exit status.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            exit_status: None,
        }
    }

    /// A failure that exits with `status`.
    pub fn with_status(message: impl Into<String>, status: u8) -> Self {
        Self {
            message: message.into(),
            exit_status: Some(status),
        }
    }

    fn exit_status(&self) -> Option<u8> {
        self.exit_status
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
