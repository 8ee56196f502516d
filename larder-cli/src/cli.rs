//! The command line, declared with clap.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// larder: a fast memory allocator, as the malloc of any program.
#[derive(Debug, Parser)]
#[command(name = "larder", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a program with larder as its malloc, then summarise its heap:
    /// allocations and frees, peak live bytes, bytes live at exit, peak RSS, time.
    #[command(after_help = environment_help())]
    Run(Box<RunArgs>),
    /// Run larder's benchmarks (the larder-bench program beside this one);
    /// every argument is passed on to it.
    Bench(BenchArgs),
}

/// Arguments of `larder run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Write the summary to FILE instead of standard error.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Write the summary as JSON.
    #[arg(long)]
    pub json: bool,

    /// Check mode: preload liblarder_check.so, which finds heap bugs (double
    /// and invalid frees, overflows, writes after free) and reports each with
    /// its backtraces; the first error ends the program with status 23.
    #[arg(long)]
    pub check: bool,

    /// With --check: report every error and let the program go on.
    #[arg(long, requires = "check")]
    pub keep_going: bool,

    /// With --check: end with status 23 when blocks were lost at exit (definitely or
    /// indirectly), as LeakSanitizer does (LARDER_LEAKS_FAIL=on); without it, leaks are
    /// reported and the status is the program's.
    #[arg(long, requires = "check")]
    pub leaks_fail: bool,

    /// The liblarder.so to preload [default: the one beside this executable].
    #[arg(long, value_name = "PATH", env = "LARDER_LIB")]
    pub lib: Option<PathBuf>,

    /// Draw the program's live bytes, committed bytes and RSS over its run
    /// (sampled every 10 ms by a thread of the library) to FILE, an SVG, with
    /// the peak of live bytes marked.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// Fault injection: make the allocations SPEC names return NULL (errno
    /// ENOMEM). SPEC is `nth:N`, `every:N`, `prob:P[,seed:S]`,
    /// `after-bytes:B` or `size-over:B`, with an optional `thread:main` or
    /// `thread:other`. Runs on the check-mode library (liblarder_check.so).
    #[arg(long, value_name = "SPEC")]
    pub fail: Option<String>,

    /// With --fail: print each injected failure with its backtrace.
    #[arg(long, requires = "fail")]
    pub fail_log: bool,

    /// Fault-injection sweep: count the program's allocations, then run it
    /// once per allocation k with the kth failing (a stratified sample of k
    /// when there are many), in parallel; report each unhandled failure
    /// (crash or hang) by its malloc's call site. With --check, also each run
    /// that leaked a block the run without a failure does not (leaked). Exits 1
    /// when any run did not handle its failure.
    #[arg(long, conflicts_with_all = ["fail", "plot"])]
    pub fail_sweep: bool,

    /// With --fail-sweep: the first allocation to fail.
    #[arg(long, value_name = "K", default_value_t = 1, requires = "fail_sweep")]
    pub from: u64,

    /// With --fail-sweep: how many allocations to try [default: all, sampled
    /// down to 2000 runs].
    #[arg(long, value_name = "N", requires = "fail_sweep")]
    pub count: Option<u64>,

    /// With --fail-sweep: runs at a time [default: the number of CPUs].
    #[arg(long, value_name = "J", requires = "fail_sweep")]
    pub jobs: Option<usize>,

    /// With --fail-sweep: seconds after which a run counts as hung.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 10,
        requires = "fail_sweep"
    )]
    pub timeout: u64,

    /// Heap profile: sample one allocation per --profile-rate bytes on
    /// average (exponential intervals, as tcmalloc and jemalloc do) with its
    /// stack, and report the top allocation sites by bytes live at the peak,
    /// live at exit and allocated, as estimates with their standard errors.
    /// Runs on liblarder_check.so with its checks off.
    #[arg(long, conflicts_with_all = ["check", "fail", "fail_sweep"])]
    pub profile: bool,

    /// With --profile: the mean bytes allocated between samples (suffix K, M, G).
    #[arg(
        long,
        value_name = "BYTES",
        default_value = "512K",
        requires = "profile"
    )]
    pub profile_rate: String,

    /// With --profile: how many sites to list for each measure.
    #[arg(long, value_name = "N", default_value_t = 10, requires = "profile")]
    pub profile_top: usize,

    /// With --profile: draw a flame graph (SVG) of the sampled stacks to FILE.
    #[arg(long, value_name = "FILE", requires = "profile")]
    pub flame: Option<PathBuf>,

    /// What the flame graph weighs: bytes live at the peak, live at exit, or allocated.
    #[arg(long, value_enum, default_value = "peak", requires = "flame")]
    pub flame_of: crate::profile::Measure,

    /// The program to run and its arguments (after `--` when they start with `-`).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

/// Arguments of `larder bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Arguments for larder-bench.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// The environment variables larder reads, from the library's own table, for `larder run --help`.
fn environment_help() -> String {
    let mut text =
        String::from("Environment (read by the library in the program; LARDER_* only):\n");
    for v in larder::options::VARIABLES {
        text.push_str(&format!(
            "  {}={}  [default: {}]\n      {}\n",
            v.name, v.values, v.default, v.help
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn the_declaration_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_the_command_after_the_separator_verbatim() {
        let cli = Cli::parse_from([
            "larder", "run", "--report", "out.txt", "--", "ls", "-l", "--all",
        ]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(
            args.report.as_deref(),
            Some(std::path::Path::new("out.txt"))
        );
        assert_eq!(args.command, ["ls", "-l", "--all"]);
    }

    #[test]
    fn fail_log_needs_fail() {
        assert!(Cli::try_parse_from(["larder", "run", "--fail-log", "--", "ls"]).is_err());
        let cli = Cli::parse_from(["larder", "run", "--fail", "nth:3", "--fail-log", "ls"]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.fail.as_deref(), Some("nth:3"));
        assert!(args.fail_log);
    }

    #[test]
    fn profile_options_need_profile_and_exclude_check() {
        assert!(Cli::try_parse_from(["larder", "run", "--flame", "f.svg", "ls"]).is_err());
        assert!(Cli::try_parse_from(["larder", "run", "--profile", "--check", "ls"]).is_err());
        let cli = Cli::parse_from(["larder", "run", "--profile", "--flame", "f.svg", "ls"]);
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.profile);
        assert_eq!(args.profile_rate, "512K");
        assert_eq!(args.flame_of, crate::profile::Measure::Peak);
    }

    #[test]
    fn run_needs_a_command() {
        assert!(Cli::try_parse_from(["larder", "run"]).is_err());
    }

    #[test]
    fn bench_passes_every_argument_on() {
        let cli = Cli::parse_from(["larder", "bench", "--quick", "x"]);
        let Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(args.args, ["--quick", "x"]);
    }
}
