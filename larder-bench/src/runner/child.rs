//! Runs one worker process and measures it from outside: wall time from spawn to exit, and the
//! child's user time, system time and peak RSS from `wait4`'s resource usage (which also covers
//! the child's own children, as the start-up workload needs).
//!
//! A watchdog kills a child that runs past its time limit, with its whole process group (the
//! child leads a group of its own), so no grandchild keeps the output pipe open. The child is
//! first waited for with
//! `WNOWAIT`, which leaves it a zombie, so its pid cannot be reused before the watchdog has been
//! told to stand down; only then is it reaped with `wait4`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one child process cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Seconds from just before spawning to just after the child exited.
    pub wall_s: f64,
    /// User CPU seconds of the child and its waited-for children.
    pub user_s: f64,
    /// System CPU seconds of the child and its waited-for children.
    pub sys_s: f64,
    /// Peak resident set size in bytes (the largest of the child and its children).
    pub max_rss_bytes: u64,
}

/// A finished child: its usage and everything it printed on stdout.
#[derive(Debug)]
pub struct Finished {
    /// Measured usage.
    pub usage: Usage,
    /// The child's stdout.
    pub stdout: String,
}

/// Runs `program args` with `env` added, and measures it; `Err` if it could not start, was
/// killed, or exited with a non-zero status.
pub fn run_measured(
    program: &Path,
    args: &[String],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Finished, String> {
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command.process_group(0);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id() as libc::pid_t;
    let (stand_down, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if watch.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: the child has not been reaped (the runner reaps it only after this thread
            // is joined), so `pid` still names it and its process group, not recycled ones.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    let mut stdout = String::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_string(&mut stdout);
    wait_without_reaping(pid)?;
    let wall_s = started.elapsed().as_secs_f64();
    let _ = stand_down.send(());
    let timed_out = watchdog.join().expect("watchdog panicked");
    let (status, usage) = reap(pid)?;
    drop(child); // already reaped: dropping a std Child does not wait
    read.map_err(|e| format!("reading the worker's output: {e}"))?;
    if timed_out {
        return Err(format!(
            "killed after the {} s time limit",
            timeout.as_secs()
        ));
    }
    if libc::WIFSIGNALED(status) {
        return Err(format!("killed by signal {}", libc::WTERMSIG(status)));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("exited with status {}", libc::WEXITSTATUS(status)));
    }
    let usage = Usage {
        wall_s,
        user_s: seconds(usage.ru_utime),
        sys_s: seconds(usage.ru_stime),
        max_rss_bytes: usage.ru_maxrss.max(0) as u64 * 1024,
    };
    Ok(Finished { usage, stdout })
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 * 1e-6
}

/// Blocks until `pid` has exited, leaving it unreaped.
fn wait_without_reaping(pid: libc::pid_t) -> Result<(), String> {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t; `pid` is our own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitid: {err}"));
        }
    }
}

/// Reaps `pid`, returning its wait status and resource usage.
fn reap(pid: libc::pid_t) -> Result<(libc::c_int, libc::rusage), String> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value for wait4 to overwrite.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `status` and `usage` are valid and writable; `pid` is our own exited child.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if rc == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {err}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Result<Finished, String> {
        run_measured(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &[],
            timeout,
        )
    }

    #[test]
    fn output_status_and_usage_are_collected() {
        let done = sh(
            "echo hello; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(done.stdout, "hello\n");
        assert!(done.usage.user_s + done.usage.sys_s > 0.0);
        assert!(done.usage.wall_s > 0.0);
        assert!(done.usage.max_rss_bytes > 100 * 1024);
    }

    #[test]
    fn peak_rss_of_a_grandchild_counts() {
        let python = Path::new("/usr/bin/python3");
        if !python.exists() {
            return;
        }
        let done = sh(
            "python3 -c 'b = bytearray(200 << 20); print(len(b))'",
            Duration::from_secs(60),
        )
        .unwrap();
        assert!(
            done.usage.max_rss_bytes >= 200 << 20,
            "{}",
            done.usage.max_rss_bytes
        );
    }

    #[test]
    fn failures_are_reported() {
        assert!(sh("exit 3", Duration::from_secs(60))
            .unwrap_err()
            .contains("status 3"));
        assert!(sh("kill -9 $$", Duration::from_secs(60))
            .unwrap_err()
            .contains("signal 9"));
        let err = sh("sleep 30", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("time limit"), "{err}");
    }
}
