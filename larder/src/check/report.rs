//! Error reports of check mode: a readable report on stderr (frames named through `dladdr`),
//! and a `larder-error v1` record appended to `LARDER_REPORT_FILE` with one write(2), frames as
//! module path + offset for `larder run --check` to symbolise. Nothing here allocates. After the
//! first error the process exits with status 23 unless `LARDER_CHECK_ERRORS=continue`.

use core::sync::atomic::{AtomicU64, Ordering};

use super::backtrace::{self, Backtrace};
use crate::options::{self, CheckErrors};
use crate::report::Writer;

/// The exit status after an error report.
pub const EXIT_STATUS: i32 = 23;

/// Error reports so far.
pub static ERRORS: AtomicU64 = AtomicU64::new(0);

/// What was wrong, where.
pub struct Error<'a> {
    /// The class: `double-free`, `invalid-free`, `heap-buffer-overflow`, ...
    pub class: &'a str,
    /// The operation that found it (`free`, `realloc`, `quarantine`, `exit`).
    pub op: &'a str,
    /// The bad address.
    pub addr: usize,
    /// The block's user start and requested size, when known.
    pub block: Option<(usize, usize)>,
    /// The bad byte's offset from the block's start, when known.
    pub offset: Option<isize>,
    /// Where the block was allocated.
    pub alloc: Option<&'a Backtrace>,
    /// Where it was freed.
    pub free: Option<&'a Backtrace>,
    /// Where the error was found.
    pub at: Option<&'a Backtrace>,
}

/// Reports `e` on stderr and in the report file, then exits unless errors continue.
#[cold]
#[inline(never)]
pub fn error(e: &Error) {
    describe(e);
    if options::get().check_errors == CheckErrors::Exit {
        // SAFETY: _exit ends the process at once; the program's own exit handlers are not run,
        // since its heap is known to be corrupt.
        unsafe { libc::_exit(EXIT_STATUS) };
    }
}

/// Reports `e` on stderr and in the report file, and returns: for a fault the process is
/// about to die of anyway.
#[cold]
#[inline(never)]
pub fn describe(e: &Error) {
    ERRORS.fetch_add(1, Ordering::Relaxed);
    let mut w = Writer::new(2);
    w.str("larder check: ERROR: ");
    w.str(e.class);
    w.str(" on ");
    w.hex(e.addr);
    w.str(" (found by ");
    w.str(e.op);
    w.str(")\n");
    if let Some((start, size)) = e.block {
        w.str("  block ");
        w.hex(start);
        w.str(" of ");
        w.u64(size as u64);
        w.str(" bytes");
        if let Some(off) = e.offset {
            w.str(", bad byte at offset ");
            if off < 0 {
                w.str("-");
            }
            w.u64(off.unsigned_abs() as u64);
        }
        w.str("\n");
    }
    for (title, bt) in [
        ("  found at:\n", e.at),
        ("  freed at:\n", e.free),
        ("  allocated at:\n", e.alloc),
    ] {
        if let Some(bt) = bt {
            w.str(title);
            backtrace::write_frames(&mut w, bt);
        }
    }
    w.flush();
    write_record(e);
}

/// A fixed buffer for one record, written with one write(2) so that records of several
/// processes appending to the same file do not interleave.
pub(crate) struct Record {
    buf: [u8; 8192],
    len: usize,
}

impl Record {
    /// An empty record.
    pub(crate) const fn new() -> Record {
        Record {
            buf: [0; 8192],
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    /// Pushes a field value that may hold spaces (an operation's words, a module's path), with
    /// each space, newline and `%` written as `%20`, `%0A`, `%25`: fields are split at spaces and
    /// records at newlines, and larder-cli decodes these back.
    pub(crate) fn push_word(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b' ' => self.push(b"%20"),
                b'\n' => self.push(b"%0A"),
                b'%' => self.push(b"%25"),
                _ => self.push(core::slice::from_ref(&b)),
            }
        }
    }

    pub(crate) fn num(&mut self, v: u64, radix: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut v = v;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(v % radix) as usize];
            v /= radix;
            if v == 0 {
                break;
            }
        }
        if radix == 16 {
            self.push(b"0x");
        }
        self.push(&digits[i..]);
    }

    pub(crate) fn frames(&mut self, key: &[u8], bt: Option<&Backtrace>) {
        let Some(bt) = bt else { return };
        self.push(b" ");
        self.push(key);
        self.push(b"=");
        for (i, &ret) in bt.shown().iter().enumerate() {
            if i > 0 {
                self.push(b";");
            }
            let pc = ret.saturating_sub(1);
            match backtrace::locate(pc) {
                Some(loc) => {
                    self.push_word(loc.module);
                    self.push(b"+");
                    self.num(pc.wrapping_sub(loc.base) as u64, 16);
                }
                None => {
                    self.push(b"?+");
                    self.num(pc as u64, 16);
                }
            }
        }
    }
}

fn write_record(e: &Error) {
    if options::get().report_file.as_c_str().is_none() {
        return;
    }
    let mut r = Record::new();
    r.push(b"larder-error v1 pid=");
    // SAFETY: getpid has no preconditions.
    r.num(unsafe { libc::getpid() } as u64, 10);
    r.push(b" class=");
    r.push(e.class.as_bytes());
    r.push(b" op=");
    r.push_word(e.op.as_bytes());
    r.push(b" addr=");
    r.num(e.addr as u64, 16);
    if let Some((start, size)) = e.block {
        r.push(b" block=");
        r.num(start as u64, 16);
        r.push(b" size=");
        r.num(size as u64, 10);
    }
    if let Some(off) = e.offset {
        r.push(b" offset=");
        if off < 0 {
            r.push(b"-");
        }
        r.num(off.unsigned_abs() as u64, 10);
    }
    r.frames(b"at", e.at);
    r.frames(b"free", e.free);
    r.frames(b"alloc", e.alloc);
    r.append_to_report_file();
}

impl Record {
    /// Ends the line and appends it to `LARDER_REPORT_FILE` (if set) with one write(2).
    pub(crate) fn append_to_report_file(&mut self) {
        let Some(path) = options::get().report_file.as_c_str() else {
            return;
        };
        self.len = self.len.min(self.buf.len() - 1);
        self.buf[self.len] = b'\n';
        self.len += 1;
        // SAFETY: `path` is NUL-terminated; the descriptor is closed below.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC,
                0o644,
            )
        };
        if fd < 0 {
            return;
        }
        crate::os::write_fd(fd, &self.buf[..self.len]);
        // SAFETY: `fd` was opened above.
        unsafe { libc::close(fd) };
    }
}
