//! The timeline `larder run --plot` draws: when `LARDER_TIMELINE_MS` is set (and
//! `LARDER_REPORT_FILE` names a file), a detached thread started as the library
//! loads appends, every so many milliseconds, one line of live bytes, committed
//! bytes and RSS to the report file:
//!
//! `larder-timeline v1 pid=P t_us=T live_bytes=N committed_bytes=N rss_bytes=N`
//!
//! T is CLOCK_MONOTONIC in microseconds, the clock larder-cli reads as it starts
//! the program, so the lines of several processes share one time axis.
//!
//! The thread costs the allocation paths nothing: it only reads the counters
//! (`larder::stats()`, which takes the heap list's lock for a moment and reads
//! /proc/self/statm, without allocating), formats on the stack and writes each
//! line with one `write(2)` to a descriptor opened `O_APPEND`. It is detached
//! and dies with the process; a forked child without `exec` has no sampler
//! (after `exec`, the library starts a new one).

use core::ffi::c_void;

use crate::line::Line;

/// Starts the sampler when the options ask for it; called once as the library
/// loads. Failures (no report file, no thread) leave the program running
/// without a timeline.
pub fn start() {
    let options = larder_core::options::get();
    if options.timeline_ms == 0 {
        return;
    }
    let Some(fd) = crate::exit_report::open_report_file() else {
        return;
    };
    // SAFETY: attr is initialised by pthread_attr_init before use and destroyed
    // after; the thread's argument is the descriptor, passed by value in the
    // pointer. pthread_create may allocate (its stack, its TLS), from larder,
    // which is ready: the options were read above.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        let mut thread: libc::pthread_t = 0;
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        // Small: the thread's frames are a few hundred bytes.
        libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
        if libc::pthread_create(
            &mut thread,
            &attr,
            sample_forever,
            fd as usize as *mut c_void,
        ) != 0
        {
            libc::close(fd);
        }
        libc::pthread_attr_destroy(&mut attr);
    }
}

extern "C" fn sample_forever(fd: *mut c_void) -> *mut c_void {
    let fd = fd as usize as libc::c_int;
    let interval_ms = larder_core::options::get().timeline_ms;
    let interval = libc::timespec {
        tv_sec: (interval_ms / 1000) as libc::time_t,
        tv_nsec: ((interval_ms % 1000) * 1_000_000) as libc::c_long,
    };
    loop {
        sample_line().write_to(fd);
        // SAFETY: `interval` is a valid timespec; an interrupted sleep is just
        // a shorter interval.
        unsafe { libc::nanosleep(&interval, core::ptr::null_mut()) };
    }
}

/// One timeline line, formatted on the stack.
pub fn sample_line() -> Line<256> {
    let stats = crate::backend::stats();
    let mut line = Line::new();
    line.push(b"larder-timeline v1 pid=");
    // SAFETY: getpid has no preconditions.
    line.push_u64(unsafe { libc::getpid() } as u64);
    line.push(b" t_us=").push_u64(monotonic_us());
    line.push(b" live_bytes=").push_u64(stats.live_bytes);
    line.push(b" committed_bytes=")
        .push_u64(stats.committed_bytes);
    line.push(b" rss_bytes=").push_u64(stats.resident_bytes);
    line.push(b"\n");
    line
}

fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}
