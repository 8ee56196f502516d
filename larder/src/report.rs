//! Messages from inside the allocator: a fixed-buffer writer over write(2) (no formatting
//! machinery, no allocation), fatal errors that abort, and one-time warnings about misuse.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::os;

/// Buffers text on the stack and writes it with write(2).
pub struct Writer {
    fd: i32,
    buf: [u8; 512],
    len: usize,
    line_start: usize,
}

impl Writer {
    /// A writer to `fd`.
    pub fn new(fd: i32) -> Writer {
        Writer {
            fd,
            buf: [0; 512],
            len: 0,
            line_start: 0,
        }
    }

    /// Appends a string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Appends raw bytes (a name or value read from the environment).
    pub fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.flush();
        }
        self.buf[self.len] = b;
        self.len += 1;
        if b == b'\n' {
            self.line_start = self.len;
        }
    }

    /// Pads the current line with spaces to `column`.
    pub fn pad_to(&mut self, column: usize) {
        while self.len - self.line_start < column && self.len < self.buf.len() {
            self.byte(b' ');
        }
    }

    /// Appends a decimal number.
    pub fn u64(&mut self, mut v: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        for &d in &digits[i..] {
            self.byte(d);
        }
    }

    /// Appends a hexadecimal address.
    pub fn hex(&mut self, v: usize) {
        self.str("0x");
        let mut started = false;
        for shift in (0..usize::BITS).step_by(4).rev() {
            let nibble = (v >> shift) & 0xf;
            if nibble != 0 || started || shift == 0 {
                started = true;
                self.byte(b"0123456789abcdef"[nibble]);
            }
        }
    }

    /// Appends a byte count in KiB/MiB/GiB with one decimal.
    pub fn bytes_human(&mut self, v: u64) {
        let units = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
        for (name, shift) in units {
            if v >= 1 << shift {
                let whole = v >> shift;
                let tenth = ((v & ((1 << shift) - 1)) * 10) >> shift;
                self.u64(whole);
                self.str(".");
                self.u64(tenth);
                self.str(" ");
                self.str(name);
                return;
            }
        }
        self.u64(v);
        self.str(" B");
    }

    /// Writes out what is buffered.
    pub fn flush(&mut self) {
        os::write_fd(self.fd, &self.buf[..self.len]);
        self.len = 0;
        self.line_start = 0;
    }
}

static FOREIGN_REPORTED: AtomicBool = AtomicBool::new(false);

/// Reports, once per process, that a pointer larder does not own was passed to `what`. The
/// pointer is left alone: it may belong to another allocator or predate larder's loading.
#[cold]
pub fn foreign_pointer(what: &str, ptr: usize) {
    if FOREIGN_REPORTED.swap(true, Ordering::Relaxed) {
        return;
    }
    let mut w = Writer::new(2);
    w.str("larder: warning: ");
    w.str(what);
    w.str(" of pointer ");
    w.hex(ptr);
    w.str(" that larder did not allocate; ignored (reported once)\n");
    w.flush();
}

/// The kinds of misuse a free can reveal in the default build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFree {
    /// The block is already free (or its memory was freed and given back).
    DoubleFree,
    /// Not the start of a block: an interior or misaligned pointer into larder's memory.
    Interior,
    /// A pointer to a thread's stack.
    Stack,
    /// A pointer into a loaded program or library (a global, a string literal).
    Module,
}

impl BadFree {
    fn class(self) -> &'static str {
        match self {
            BadFree::DoubleFree => "double-free",
            BadFree::Interior | BadFree::Stack | BadFree::Module => "invalid-free",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            BadFree::DoubleFree => " of a block that is already free",
            BadFree::Interior => " of a pointer that is not the start of a block",
            BadFree::Stack => " of a pointer to the stack",
            BadFree::Module => " of a pointer into a program's or library's image (a global?)",
        }
    }
}

/// Reports a bad free or realloc (`what`) of `ptr`, in the block at `block` of `block_size`
/// bytes where it is known, then aborts (SIGABRT), unless `LARDER_ON_ERROR=warn`: then the
/// pointer is left alone and the program goes on (the first 100 reports are printed).
#[cold]
#[inline(never)]
pub fn bad_free(kind: BadFree, what: &str, ptr: usize, block: Option<(usize, usize)>) {
    use crate::options::{self, OnError};
    static REPORTS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
    let abort = options::get().on_error == OnError::Abort;
    if !abort && REPORTS.fetch_add(1, Ordering::Relaxed) >= 100 {
        return;
    }
    let mut w = Writer::new(2);
    w.str("larder: error: ");
    w.str(kind.class());
    w.str(": ");
    w.str(what);
    w.str("(");
    w.hex(ptr);
    w.str(")");
    w.str(kind.explanation());
    if let Some((start, size)) = block {
        w.str(" (block ");
        w.hex(start);
        w.str(", ");
        w.u64(size as u64);
        w.str(" bytes)");
    }
    if abort {
        w.str("; aborting (LARDER_ON_ERROR=warn reports and goes on)\n");
        w.flush();
        // SAFETY: abort has no preconditions; it raises SIGABRT as glibc does for a double free.
        unsafe { libc::abort() };
    }
    w.str("; ignored\n");
    w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_without_allocation() {
        let mut w = Writer::new(-1);
        w.u64(0);
        w.str(" ");
        w.u64(18_446_744_073_709_551_615);
        w.str(" ");
        w.hex(0xdead_beef);
        w.str(" ");
        w.bytes_human(3 << 20 | 512 << 10);
        assert_eq!(
            core::str::from_utf8(&w.buf[..w.len]).unwrap(),
            "0 18446744073709551615 0xdeadbeef 3.5 MiB"
        );
    }
}
