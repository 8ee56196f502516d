//! The heap record `larder run` reads: when the environment names a file in
//! `LARDER_REPORT_FILE`, each process on larder appends one line to it as it
//! exits, with larder's counters, its pid and its name.
//!
//! The record is written from a `.fini_array` destructor, which the dynamic
//! linker runs after the program's own destructors and `atexit` handlers, so
//! the figures cover nearly all of the program's life. It is formatted on the
//! stack and appended with a single `write(2)` to a file opened `O_APPEND`,
//! so the lines of processes exiting together do not interleave. A process
//! that leaves through `_exit` or a signal writes nothing. The line format is
//! a contract with larder-cli's `heap_record` module:
//!
//! `larder-heap v1 pid=P ppid=P alloc_count=N free_count=N requested_bytes=N
//! live_bytes=N peak_live_bytes=N committed_bytes=N reserved_bytes=N name=NAME`

use core::ffi::{c_char, CStr};

use crate::line::Line;

/// Run at `exit`, after the program's own destructors.
#[used]
#[link_section = ".fini_array"]
static WRITE_AT_EXIT: extern "C" fn() = write_at_exit;

extern "C" {
    /// glibc's name of the program, without its directory.
    static program_invocation_short_name: *const c_char;
}

/// The report file, opened for appending, when the environment names one.
pub fn open_report_file() -> Option<libc::c_int> {
    let path = larder_core::options::get().report_file.as_c_str()?;
    // SAFETY: the path is NUL-terminated. No O_CREAT: larder run creates the
    // file; without it there is no reader.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then_some(fd)
}

/// Writes the record (once: a second call does nothing). Check mode calls it itself before it
/// ends a process that leaked with status 23.
pub extern "C" fn write_at_exit() {
    static WRITTEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    if WRITTEN.swap(true, core::sync::atomic::Ordering::AcqRel) {
        return;
    }
    let Some(fd) = open_report_file() else {
        return;
    };
    let record = format_record();
    if larder_core::options::get().timeline_ms != 0 {
        // The last point of the timeline: the heap as the process ends.
        crate::timeline::sample_line().write_to(fd);
    }
    record.write_to(fd);
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
}

fn format_record() -> Line<768> {
    let stats = crate::backend::stats();
    let mut line = Line::new();
    line.push(b"larder-heap v1 pid=");
    // SAFETY: getpid and getppid have no preconditions.
    line.push_u64(unsafe { libc::getpid() } as u64);
    line.push(b" ppid=");
    // SAFETY: as above.
    line.push_u64(unsafe { libc::getppid() } as u64);
    let counters = [
        (&b" alloc_count="[..], stats.alloc_count),
        (b" free_count=", stats.free_count),
        (b" requested_bytes=", stats.requested_bytes),
        (b" live_bytes=", stats.live_bytes),
        (b" peak_live_bytes=", stats.peak_live_bytes),
        (b" committed_bytes=", stats.committed_bytes),
        (b" reserved_bytes=", stats.reserved_bytes),
    ];
    for (key, value) in counters {
        line.push(key).push_u64(value);
    }
    line.push(b" name=");
    // SAFETY: glibc sets program_invocation_short_name before any initialiser
    // runs and never frees it; it is NUL-terminated.
    let name = unsafe { program_invocation_short_name };
    if !name.is_null() {
        // SAFETY: as above.
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        for &byte in name.iter().take(200) {
            line.push(if byte == b'\n' {
                b"?"
            } else {
                core::slice::from_ref(&byte)
            });
        }
    }
    line.push(b"\n");
    line
}
