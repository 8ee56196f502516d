//! `larder run`: starts the program with liblarder.so preloaded and a report
//! file named in its environment, waits for it with `wait4` to learn its peak
//! RSS and CPU time, then has the summary printed.

use std::ffi::OsString;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::check_record::{parse_errors, parse_guards, Symbolizer};
use crate::cli::RunArgs;
use crate::heap_record::parse_records;
use crate::summary::Summary;
use crate::{locate, plot, Failure};

/// How the program ended, and what it used, as the kernel reports it.
#[derive(Clone, Copy, Debug)]
pub struct ChildOutcome {
    /// Its process id (kept across exec, so it names the program's record).
    pub pid: u32,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<i32>,
    /// From start to exit.
    pub wall: Duration,
    /// CPU time in user mode, its waited-for children included.
    pub user: Duration,
    /// CPU time in the kernel, its waited-for children included.
    pub system: Duration,
    /// The largest resident set of the program or of any child it waited for.
    pub peak_rss_bytes: u64,
}

impl ChildOutcome {
    /// The status `larder run` itself exits with: the program's, or 128 plus
    /// the signal's number, as shells report it.
    pub fn exit_status(&self) -> u8 {
        match (self.exit_code, self.signal) {
            (Some(code), _) => (code & 0xff) as u8,
            (None, Some(signal)) => (128 + signal).clamp(0, 255) as u8,
            (None, None) => 1,
        }
    }
}

/// Runs `args.command` on larder and prints the summary; returns the status
/// `larder` should exit with.
pub fn run_with_summary(args: &RunArgs) -> Result<u8, Failure> {
    let mut environment = fault_environment(args)?;
    if args.keep_going {
        environment.push(("LARDER_CHECK_ERRORS", OsString::from("continue")));
    }
    if args.leaks_fail {
        environment.push(("LARDER_LEAKS_FAIL", OsString::from("on")));
    }
    if args.profile {
        environment.push(("LARDER_PROFILE", profile_rate(&args.profile_rate)?));
    }
    let default_lib = if environment.is_empty() && !args.check {
        "liblarder.so"
    } else {
        CHECK_LIB
    };
    let lib = match &args.lib {
        Some(lib) => lib
            .canonicalize()
            .map_err(|e| Failure::new(format!("{}: {e}", lib.display())))?,
        None => {
            let package = if default_lib == CHECK_LIB {
                "larder-check-c"
            } else {
                "larder-c"
            };
            locate::beside_this_executable(default_lib, package)?
        }
    };
    let report_file = tempfile::Builder::new()
        .prefix("larder-heap-")
        .tempfile()
        .map_err(|e| Failure::new(format!("cannot create the heap report file: {e}")))?;
    if args.plot.is_some() {
        environment.push(("LARDER_TIMELINE_MS", OsString::from("10")));
    }
    let start_us = plot::monotonic_us();
    let outcome = run_preloaded(&args.command, &lib, report_file.path(), &environment)?;
    let report_text = std::fs::read_to_string(report_file.path())
        .map_err(|e| Failure::new(format!("cannot read the heap report file: {e}")))?;
    let records = parse_records(&report_text);
    if let Some(path) = &args.plot {
        let timeline = plot::parse_timeline(&report_text, start_us);
        let title = format!("larder: heap of {}", command_title(&args.command));
        plot::draw(path, &title, outcome.pid, &timeline)?;
    }
    let mut summary = Summary::new(&args.command, &outcome, &records);
    let mut symbols = Symbolizer::default();
    if args.fail.is_some() {
        let mut injected = crate::fail_record::parse(&report_text);
        crate::fail_record::symbolize(&mut injected, &mut symbols);
        summary.injected = Some(injected);
    }
    if args.check {
        let mut errors = parse_errors(&report_text);
        symbols.symbolize(&mut errors);
        summary.errors = Some(errors);
        summary.guard = Some(parse_guards(&report_text));
        let mut leaks = crate::leak_record::parse(&report_text);
        leaks.symbolize(&mut symbols);
        summary.leaks = Some(leaks);
    }
    if args.profile {
        let mut profiles = crate::profile::parse_profiles(&report_text);
        for record in &records {
            if let Some(profile) = profiles.get_mut(&record.pid) {
                profile.name = Some(record.name.clone());
            }
        }
        crate::profile::symbolize(&mut profiles, &lib);
        if let Some(path) = &args.flame {
            let title = format!("larder --profile: {}", command_title(&args.command));
            crate::profile::draw_flame_graph(path, &profiles, args.flame_of, &title)?;
        }
        summary.profile = Some(profiles);
        summary.profile_top = args.profile_top;
    }
    let text = if args.json {
        summary.to_json()
    } else {
        summary.to_text()
    };
    match &args.report {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            Failure::new(format!(
                "cannot write the summary to {}: {e}",
                path.display()
            ))
        })?,
        None => {
            // Failing to print the summary must not change the program's status.
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
    }
    Ok(outcome.exit_status())
}

/// The command line in one short line, for a picture's title.
fn command_title(command: &[OsString]) -> String {
    command
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(60)
        .collect()
}

/// `--profile-rate`, checked here with the library's own parser (a bad value
/// would otherwise only be warned about in the program, and profiling left off).
fn profile_rate(rate: &str) -> Result<OsString, Failure> {
    match larder::options::parse_size(rate.as_bytes()) {
        Some(bytes) if bytes > 0 => Ok(OsString::from(bytes.to_string())),
        _ => Err(Failure::with_status(
            format!("--profile-rate {rate}: expected a size above 0 such as 512K"),
            2,
        )),
    }
}

/// The check-mode library, which fault injection and profiling run on (the default library's
/// fast path pays nothing for them).
const CHECK_LIB: &str = "liblarder_check.so";

/// The variables that `--fail` and `--fail-log` set for the program; empty without `--fail`.
/// The spec is parsed here with the library's own parser, so that a typo stops larder before
/// the program runs, naming the bad word. Without `--check`, check mode's costly parts are off
/// so that the program runs at near-plain speed.
fn fault_environment(args: &RunArgs) -> Result<Vec<(&'static str, OsString)>, Failure> {
    let Some(spec) = &args.fail else {
        return Ok(Vec::new());
    };
    larder::check::fail::parse(spec.as_bytes())
        .map_err(|e| Failure::with_status(format!("--fail {spec}: {e}"), 2))?;
    let mut environment = vec![("LARDER_FAIL", OsString::from(spec))];
    if !args.check {
        environment.extend([
            ("LARDER_QUARANTINE", OsString::from("0")),
            ("LARDER_GUARD", OsString::from("off")),
            ("LARDER_LEAKS", OsString::from("off")),
        ]);
    }
    if args.fail_log {
        environment.push(("LARDER_FAIL_LOG", OsString::from("on")));
    }
    Ok(environment)
}

/// The program's environment: `lib` ahead of any preloads it already had.
pub(crate) fn preload_list(lib: &Path) -> OsString {
    let mut list = OsString::from(lib);
    if let Some(existing) = std::env::var_os("LD_PRELOAD").filter(|v| !v.is_empty()) {
        list.push(":");
        list.push(existing);
    }
    list
}

fn run_preloaded(
    command: &[OsString],
    lib: &Path,
    report_file: &Path,
    environment: &[(&str, OsString)],
) -> Result<ChildOutcome, Failure> {
    let (program, program_args) = command
        .split_first()
        .ok_or_else(|| Failure::new("no command to run"))?;
    let start = Instant::now();
    let child = Command::new(program)
        .args(program_args)
        .env("LD_PRELOAD", preload_list(lib))
        .env("LARDER_REPORT_FILE", report_file)
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .spawn()
        .map_err(|e| spawn_failure(program, &e))?;
    ignore_terminal_signals();
    wait_for(child.id(), start)
}

fn spawn_failure(program: &OsString, error: &std::io::Error) -> Failure {
    let program = PathBuf::from(program);
    let message = format!("cannot run {}: {error}", program.display());
    match error.kind() {
        ErrorKind::NotFound => Failure::with_status(message, 127),
        ErrorKind::PermissionDenied => Failure::with_status(message, 126),
        _ => Failure::new(message),
    }
}

/// While the program runs, Ctrl-C and Ctrl-\ are for it: larder stays to
/// report how it ended, as `time` does. Set after the spawn, since ignored
/// signals would be inherited across exec.
fn ignore_terminal_signals() {
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: installing SIG_IGN runs no code of ours in signal context.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

fn wait_for(pid: u32, start: Instant) -> Result<ChildOutcome, Failure> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: status and usage are valid for writes; pid is our child,
        // which std has not reaped (we never call Child::wait).
        let reaped = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if reaped == pid as libc::pid_t {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != ErrorKind::Interrupted {
            return Err(Failure::new(format!(
                "waiting for the program failed: {error}"
            )));
        }
    }
    let wall = start.elapsed();
    let exited = libc::WIFEXITED(status);
    let signaled = libc::WIFSIGNALED(status);
    Ok(ChildOutcome {
        pid,
        exit_code: exited.then(|| libc::WEXITSTATUS(status)),
        signal: signaled.then(|| libc::WTERMSIG(status)),
        wall,
        user: timeval_duration(usage.ru_utime),
        system: timeval_duration(usage.ru_stime),
        // Linux reports ru_maxrss in KiB.
        peak_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    })
}

fn timeval_duration(time: libc::timeval) -> Duration {
    let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
    let micros = u32::try_from(time.tv_usec).unwrap_or(0);
    Duration::new(seconds, micros * 1000)
}
