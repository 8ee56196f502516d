//! The runner: `larder-bench --help` says how to use it.

fn main() -> std::process::ExitCode {
    larder_bench::runner::main()
}
