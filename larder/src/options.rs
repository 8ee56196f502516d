//! Every `LARDER_*` environment variable, in one typed table, read once without allocating.
//!
//! The table [`VARIABLES`] names each variable, its default and what it does; `larder run
//! --help`, `larder.h` and the README print or copy it, so there is one list to keep true. The
//! environment is read on first use (the first error report, heap or option lookup), straight
//! from the process's `environ` array: no `getenv` copies, no allocation, so it is safe inside
//! the allocator. A `LARDER_` variable that is not in the table, or a value that does not parse,
//! is reported once on stderr, naming it, and the default is kept.

use core::cell::UnsafeCell;
use core::ffi::{c_char, CStr};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::report::Writer;

/// What to do after reporting a misuse the default build detects (double free, invalid free).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnError {
    /// Report and abort with SIGABRT, as glibc does (the default).
    Abort,
    /// Report, leave the block alone and go on.
    Warn,
}

/// What check mode does after its first error report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckErrors {
    /// Exit with status 23 (the default), as `valgrind --error-exitcode=23` users set.
    Exit,
    /// Report every error and go on.
    Continue,
}

/// Which blocks check mode places against a guard page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// Every block until guarded blocks have taken `guard_budget` of address space, then one
    /// in 1,024.
    Auto,
    /// Every block.
    All,
    /// One block in `n`.
    Sample(u32),
    /// None.
    Off,
}

/// Which side of a guarded block its guard page lies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardSide {
    /// After the block: the block ends against the guard page (overflows fault).
    After,
    /// Before the block: the block starts right after the guard page (underflows fault).
    Before,
}

/// How a guarded block that ends against its guard page is aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardAlign {
    /// What C asks of `malloc` (C23 7.24.3, DR 445): enough for any object of the size or less,
    /// the largest power of two not above the size, at most 16.
    C,
    /// What an object of exactly this size needs: the largest power of two dividing the size,
    /// at most 16. The block ends at the guard page, so a one-byte overflow read faults; a
    /// program that keeps a smaller object or tag bits in a larger block may break.
    Exact,
}

/// Room for a path or a specification given in a variable; a longer value is refused.
pub const TEXT_CAPACITY: usize = 1024;

/// A text value (a path, a fault specification), NUL-terminated in place so that it can be
/// passed to `open(2)` as it is.
#[derive(Clone, Copy)]
pub struct Text {
    bytes: [u8; TEXT_CAPACITY],
    len: usize,
}

impl Text {
    const fn empty() -> Text {
        Text {
            bytes: [0; TEXT_CAPACITY],
            len: 0,
        }
    }

    /// The value, or `None` when the variable was not set (or set empty).
    pub fn get(&self) -> Option<&[u8]> {
        (self.len > 0).then(|| &self.bytes[..self.len])
    }

    /// The value as a NUL-terminated C string, or `None` when unset.
    pub fn as_c_str(&self) -> Option<&CStr> {
        if self.len == 0 {
            return None;
        }
        CStr::from_bytes_with_nul(&self.bytes[..=self.len]).ok()
    }
}

/// The options in force, parsed from the environment.
#[derive(Clone, Copy)]
pub struct Options {
    /// `LARDER_ON_ERROR`.
    pub on_error: OnError,
    /// `LARDER_PURGE_DELAY_MS`.
    pub purge_delay_ms: u64,
    /// `LARDER_HUGE_PAGES`.
    pub huge_pages: bool,
    /// `LARDER_REPORT_FILE`.
    pub report_file: Text,
    /// `LARDER_CHECK_ERRORS`.
    pub check_errors: CheckErrors,
    /// `LARDER_QUARANTINE`, in bytes.
    pub quarantine_bytes: u64,
    /// `LARDER_GUARD`.
    pub guard: Guard,
    /// `LARDER_GUARD_BUDGET`, in bytes.
    pub guard_budget: u64,
    /// `LARDER_GUARD_SIDE`.
    pub guard_side: GuardSide,
    /// `LARDER_GUARD_ALIGN`.
    pub guard_align: GuardAlign,
    /// `LARDER_GUARD_MARKERS`.
    pub guard_markers: bool,
    /// `LARDER_CHECK_VERBOSE`: say at exit on stderr what check mode did (guard pages) and
    /// found (leaks), even when a report file takes the records.
    pub check_verbose: bool,
    /// `LARDER_LEAKS`.
    pub leaks: bool,
    /// `LARDER_LEAKS_FAIL`.
    pub leaks_fail: bool,
    /// `LARDER_MISMATCH`.
    pub mismatch: bool,
    /// `LARDER_FAIL`: the fault-injection specification, parsed by the fault injector.
    pub fail: Text,
    /// `LARDER_FAIL_LOG`.
    pub fail_log: bool,
    /// `LARDER_TIMELINE_MS`: the timeline sampler's interval; 0 when off.
    pub timeline_ms: u64,
    /// `LARDER_PROFILE`: the mean bytes between allocation samples; 0 when off.
    pub profile_rate: u64,
}

impl Options {
    pub(crate) const DEFAULT: Options = Options {
        on_error: OnError::Abort,
        purge_delay_ms: 200,
        huge_pages: false,
        report_file: Text::empty(),
        check_errors: CheckErrors::Exit,
        quarantine_bytes: 64 << 20,
        guard: Guard::Auto,
        guard_budget: 64 << 20,
        guard_side: GuardSide::After,
        guard_align: GuardAlign::C,
        guard_markers: true,
        check_verbose: false,
        leaks: true,
        leaks_fail: false,
        mismatch: true,
        fail: Text::empty(),
        fail_log: false,
        timeline_ms: 0,
        profile_rate: 0,
    };
}

/// Why a value was refused: a short phrase for the one-line report.
type ParseResult = Result<(), &'static str>;

/// One environment variable: its name, default, meaning, and how its value is stored.
pub struct Variable {
    /// The full name, `LARDER_...`.
    pub name: &'static str,
    /// The accepted values, as a user would type them.
    pub values: &'static str,
    /// The default, as a user would type it.
    pub default: &'static str,
    /// What it does, in one sentence.
    pub help: &'static str,
    parse: fn(&mut Options, &[u8]) -> ParseResult,
}

/// Every variable larder reads. Check-mode and fault-injection variables are read by every
/// build but acted on only by check mode (`liblarder_check.so`, `larder::Checked`).
pub static VARIABLES: &[Variable] = &[
    Variable {
        name: "LARDER_ON_ERROR",
        values: "abort | warn",
        default: "abort",
        help: "after reporting a double free or an invalid free: abort (SIGABRT), or warn, leave the block alone and go on",
        parse: |o, v| {
            let choices = [(&b"abort"[..], OnError::Abort), (b"warn", OnError::Warn)];
            store_choice(&mut o.on_error, v, &choices, "expected abort or warn")
        },
    },
    Variable {
        name: "LARDER_PURGE_DELAY_MS",
        values: "milliseconds",
        default: "200",
        help: "how long freed memory stays resident for reuse before it is given back to the OS",
        parse: |o, v| store_ms(&mut o.purge_delay_ms, v),
    },
    Variable {
        name: "LARDER_HUGE_PAGES",
        values: "on | off",
        default: "off",
        help: "advise blocks of 2 MiB and more for transparent huge pages: fewer page faults, but each scattered first touch of a block makes 2 MiB resident",
        parse: |o, v| store_flag(&mut o.huge_pages, v),
    },
    Variable {
        name: "LARDER_REPORT_FILE",
        values: "path",
        default: "(none)",
        help: "an existing file to which each process appends its heap record and its error reports at exit (larder run sets it)",
        parse: |o, v| store_text(&mut o.report_file, v),
    },
    Variable {
        name: "LARDER_CHECK_ERRORS",
        values: "exit | continue",
        default: "exit",
        help: "check mode: after the first error report exit with status 23, or report every error and go on",
        parse: |o, v| {
            let choices = [
                (&b"exit"[..], CheckErrors::Exit),
                (b"abort", CheckErrors::Exit),
                (b"continue", CheckErrors::Continue),
            ];
            store_choice(&mut o.check_errors, v, &choices, "expected exit or continue")
        },
    },
    Variable {
        name: "LARDER_QUARANTINE",
        values: "bytes (suffix K, M or G)",
        default: "64M",
        help: "check mode: how many bytes of freed blocks wait, poisoned, before reuse (finds use after free)",
        parse: |o, v| store_size(&mut o.quarantine_bytes, v),
    },
    Variable {
        name: "LARDER_GUARD",
        values: "auto | all | off | 1/N",
        default: "auto",
        help: "check mode: which blocks end against a guard page (auto: all until guarded blocks took LARDER_GUARD_BUDGET, then 1 in 1024)",
        parse: |o, v| {
            o.guard = match v {
                b"auto" => Guard::Auto,
                b"all" => Guard::All,
                b"off" => Guard::Off,
                _ => {
                    let n = v.strip_prefix(b"1/").and_then(parse_u64);
                    match n {
                        Some(n) if (1..=u32::MAX as u64).contains(&n) => Guard::Sample(n as u32),
                        _ => return Err("expected auto, all, off or 1/N"),
                    }
                }
            };
            Ok(())
        },
    },
    Variable {
        name: "LARDER_GUARD_BUDGET",
        values: "bytes (suffix K, M or G)",
        default: "64M",
        help: "check mode: memory that guarded blocks may take before LARDER_GUARD=auto samples",
        parse: |o, v| store_size(&mut o.guard_budget, v),
    },
    Variable {
        name: "LARDER_GUARD_SIDE",
        values: "after | before",
        default: "after",
        help: "check mode: where a guarded block's guard page lies: after its end (overflows fault) or before its start (the block starts a page, so underflows fault)",
        parse: |o, v| {
            let choices = [(&b"after"[..], GuardSide::After), (b"before", GuardSide::Before)];
            store_choice(&mut o.guard_side, v, &choices, "expected after or before")
        },
    },
    Variable {
        name: "LARDER_GUARD_ALIGN",
        values: "c | exact",
        default: "c",
        help: "check mode: a block ending at its guard page is aligned as C asks of malloc (c: up to 15 bytes of slack, where reads are missed) or only as an object of exactly its size needs (exact: every overflow read faults, but programs that keep smaller objects or tag bits in a block may break)",
        parse: |o, v| {
            let choices = [(&b"c"[..], GuardAlign::C), (b"exact", GuardAlign::Exact)];
            store_choice(&mut o.guard_align, v, &choices, "expected c or exact")
        },
    },
    Variable {
        name: "LARDER_GUARD_MARKERS",
        values: "on | off",
        default: "on",
        help: "check mode: make guard pages with Linux 6.13's guard markers where the kernel has them (one madvise per guarded malloc and free), or off: one mapping per guarded block, as on older kernels",
        parse: |o, v| store_flag(&mut o.guard_markers, v),
    },
    Variable {
        name: "LARDER_CHECK_VERBOSE",
        values: "on | off",
        default: "off",
        help: "check mode: with LARDER_REPORT_FILE set, print the leak report and what guard pages covered on stderr too (without a report file the leak report is always there; larder run --check prints both in its summary either way)",
        parse: |o, v| store_flag(&mut o.check_verbose, v),
    },
    Variable {
        name: "LARDER_LEAKS",
        values: "on | off",
        default: "on",
        help: "check mode: look for leaked blocks at exit (a conservative mark from the roots)",
        parse: |o, v| store_flag(&mut o.leaks, v),
    },
    Variable {
        name: "LARDER_LEAKS_FAIL",
        values: "on | off",
        default: "off",
        help: "check mode: end with exit status 23 when blocks were lost (definitely or \
               indirectly), as LeakSanitizer does; off, leaks are reported and the status is the \
               program's",
        parse: |o, v| store_flag(&mut o.leaks_fail, v),
    },
    Variable {
        name: "LARDER_MISMATCH",
        values: "on | off",
        default: "on",
        help: "check mode: report a block freed by another family's function than the one that allocated it (new / free, malloc / delete, new[] / delete); off for a program that replaces operator new but not operator delete",
        parse: |o, v| store_flag(&mut o.mismatch, v),
    },
    Variable {
        name: "LARDER_FAIL",
        values: "nth:N | every:N | prob:P[,seed:S] | after-bytes:B | size-over:B [,thread:main|other]",
        default: "(none)",
        help: "fault injection: which allocations return NULL with ENOMEM",
        parse: |o, v| store_text(&mut o.fail, v),
    },
    Variable {
        name: "LARDER_FAIL_LOG",
        values: "on | off",
        default: "off",
        help: "fault injection: print each injected failure with its backtrace",
        parse: |o, v| store_flag(&mut o.fail_log, v),
    },
    Variable {
        name: "LARDER_TIMELINE_MS",
        values: "milliseconds (0: off)",
        default: "0",
        help: "every so many milliseconds, a thread of the library appends live bytes, committed bytes and RSS to LARDER_REPORT_FILE (larder run --plot sets it)",
        parse: |o, v| store_ms(&mut o.timeline_ms, v),
    },
    Variable {
        name: "LARDER_PROFILE",
        values: "bytes (suffix K, M or G; 0: off)",
        default: "0",
        help: "heap profiling (liblarder_check.so, its checks off): sample one allocation per so many bytes on average, with its stack, and append the sites' estimated bytes allocated, live at the peak and live at exit to LARDER_REPORT_FILE (larder run --profile sets 512K)",
        parse: |o, v| store_size(&mut o.profile_rate, v),
    },
];

fn store_ms(slot: &mut u64, value: &[u8]) -> ParseResult {
    *slot = parse_u64(value).ok_or("expected a number of milliseconds")?;
    Ok(())
}

fn store_size(slot: &mut u64, value: &[u8]) -> ParseResult {
    *slot = parse_size(value).ok_or("expected a size such as 64M")?;
    Ok(())
}

/// One of a fixed set of words, each naming a value.
fn store_choice<T: Copy>(
    slot: &mut T,
    value: &[u8],
    choices: &[(&[u8], T)],
    expected: &'static str,
) -> ParseResult {
    let (_, chosen) = choices
        .iter()
        .find(|(word, _)| *word == value)
        .ok_or(expected)?;
    *slot = *chosen;
    Ok(())
}

fn store_flag(slot: &mut bool, value: &[u8]) -> ParseResult {
    *slot = parse_flag(value).ok_or("expected on or off")?;
    Ok(())
}

fn store_text(text: &mut Text, value: &[u8]) -> ParseResult {
    if value.len() >= TEXT_CAPACITY {
        return Err("value too long");
    }
    if value.contains(&0) {
        return Err("value holds a NUL byte");
    }
    text.bytes[..value.len()].copy_from_slice(value);
    text.bytes[value.len()] = 0;
    text.len = value.len();
    Ok(())
}

/// A decimal number.
pub fn parse_u64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0u64, |n, &d| {
        d.is_ascii_digit().then(|| n * 10 + (d - b'0') as u64)
    })
}

/// A byte count with an optional binary suffix: `4096`, `64K`, `64M`, `1G` (`KiB`, `MB` also).
pub fn parse_size(text: &[u8]) -> Option<u64> {
    let digits = text.iter().take_while(|d| d.is_ascii_digit()).count();
    let number = parse_u64(&text[..digits])?;
    let shift = match &text[digits..] {
        b"" | b"B" => 0,
        b"K" | b"k" | b"KB" | b"KiB" => 10,
        b"M" | b"m" | b"MB" | b"MiB" => 20,
        b"G" | b"g" | b"GB" | b"GiB" => 30,
        _ => return None,
    };
    number.checked_mul(1 << shift)
}

fn parse_flag(text: &[u8]) -> Option<bool> {
    match text {
        b"1" | b"on" | b"yes" | b"true" => Some(true),
        b"0" | b"off" | b"no" | b"false" => Some(false),
        _ => None,
    }
}

const UNREAD: u8 = 0;
const READING: u8 = 1;
const READ: u8 = 2;

struct OptionsCell(UnsafeCell<Options>);

// SAFETY: the options are written only by the thread that wins UNREAD -> READING, before it
// publishes READ with Release; readers only read after seeing READ with Acquire.
unsafe impl Sync for OptionsCell {}

static OPTIONS: OptionsCell = OptionsCell(UnsafeCell::new(Options::DEFAULT));
static STATE: AtomicU8 = AtomicU8::new(UNREAD);

/// The options in force (the environment is read on the first call).
#[inline]
pub fn get() -> &'static Options {
    if STATE.load(Ordering::Acquire) != READ {
        read_once();
    }
    // SAFETY: STATE is READ, so the options are written and never change again.
    unsafe { &*OPTIONS.0.get() }
}

#[cold]
#[inline(never)]
fn read_once() {
    if STATE
        .compare_exchange(UNREAD, READING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: this thread won UNREAD -> READING, so nobody else writes or reads the cell
        // until READ is published.
        let options = unsafe { &mut *OPTIONS.0.get() };
        for_each_environment_entry(|entry| read_variable(options, entry));
        STATE.store(READ, Ordering::Release);
        return;
    }
    // Another thread is reading: the environment is short, wait for it.
    while STATE.load(Ordering::Acquire) != READ {
        core::hint::spin_loop();
    }
}

extern "C" {
    /// The process's environment, as libc keeps it.
    static environ: *const *const c_char;
}

fn for_each_environment_entry(mut f: impl FnMut(&[u8])) {
    // SAFETY: `environ` is set up by libc before any code of the program runs; each entry up to
    // the NULL terminator is a NUL-terminated string. A program that edits its environment
    // while another thread allocates for the first time races with libc's own getenv too.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            f(CStr::from_ptr(*entry).to_bytes());
            entry = entry.add(1);
        }
    }
}

fn read_variable(options: &mut Options, entry: &[u8]) {
    if !entry.starts_with(b"LARDER_") {
        return;
    }
    let split = entry.iter().position(|&b| b == b'=').unwrap_or(entry.len());
    let (name, value) = (&entry[..split], entry.get(split + 1..).unwrap_or(&[]));
    match VARIABLES.iter().find(|v| v.name.as_bytes() == name) {
        Some(variable) => {
            if value.is_empty() {
                return;
            }
            if let Err(why) = (variable.parse)(options, value) {
                warn(name, Some((value, why)));
            }
        }
        // Variables of larder's tools and tests, not of the allocator.
        None if is_tool_variable(name) => {}
        None => warn(name, None),
    }
}

/// Variables that start with `LARDER_` but belong to larder's command-line tools and test
/// scripts, which pass them through the programs they run.
fn is_tool_variable(name: &[u8]) -> bool {
    [&b"LARDER_LIB"[..], b"LARDER_BENCH_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

#[cold]
fn warn(name: &[u8], bad_value: Option<(&[u8], &str)>) {
    let mut w = Writer::new(2);
    w.str("larder: warning: ");
    w.bytes(name);
    match bad_value {
        Some((value, why)) => {
            w.str("=");
            w.bytes(&value[..value.len().min(200)]);
            w.str(": ");
            w.str(why);
            w.str("; the default is kept\n");
        }
        None => w.str(" is not a variable larder knows; ignored (see larder run --help)\n"),
    }
    w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(entries: &[&[u8]]) -> Options {
        let mut options = Options::DEFAULT;
        for entry in entries {
            read_variable(&mut options, entry);
        }
        options
    }

    #[test]
    fn defaults_hold_without_variables() {
        let o = parsed(&[b"PATH=/bin", b"LARDER_UNKNOWN_THING=1"]);
        assert_eq!(o.on_error, OnError::Abort);
        assert_eq!(o.purge_delay_ms, 200);
        assert_eq!(o.guard, Guard::Auto);
        assert!(o.report_file.get().is_none());
    }

    #[test]
    fn values_parse_into_their_types() {
        let o = parsed(&[
            b"LARDER_ON_ERROR=warn",
            b"LARDER_PURGE_DELAY_MS=50",
            b"LARDER_QUARANTINE=16M",
            b"LARDER_GUARD=1/100",
            b"LARDER_LEAKS=off",
            b"LARDER_REPORT_FILE=/tmp/x",
            b"LARDER_FAIL=nth:3",
            b"LARDER_PROFILE=512K",
            b"LARDER_GUARD_SIDE=before",
            b"LARDER_GUARD_ALIGN=exact",
            b"LARDER_CHECK_VERBOSE=on",
        ]);
        assert_eq!(o.guard_side, GuardSide::Before);
        assert_eq!(o.guard_align, GuardAlign::Exact);
        assert!(o.check_verbose);
        assert_eq!(o.on_error, OnError::Warn);
        assert_eq!(o.purge_delay_ms, 50);
        assert_eq!(o.quarantine_bytes, 16 << 20);
        assert_eq!(o.guard, Guard::Sample(100));
        assert!(!o.leaks);
        assert_eq!(o.report_file.as_c_str().unwrap().to_bytes(), b"/tmp/x");
        assert_eq!(o.fail.get(), Some(&b"nth:3"[..]));
        assert_eq!(o.profile_rate, 512 << 10);
    }

    #[test]
    fn bad_values_keep_the_default() {
        let o = parsed(&[
            b"LARDER_ON_ERROR=explode",
            b"LARDER_QUARANTINE=lots",
            b"LARDER_GUARD=1/0",
            b"LARDER_GUARD_SIDE=left",
        ]);
        assert_eq!(o.guard_side, GuardSide::After);
        assert_eq!(o.on_error, OnError::Abort);
        assert_eq!(o.quarantine_bytes, 64 << 20);
        assert_eq!(o.guard, Guard::Auto);
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size(b"4096"), Some(4096));
        assert_eq!(parse_size(b"64K"), Some(64 << 10));
        assert_eq!(parse_size(b"2GiB"), Some(2 << 30));
        assert_eq!(parse_size(b"12X"), None);
        assert_eq!(parse_size(b""), None);
    }

    #[test]
    fn every_variable_is_named_once() {
        for (i, a) in VARIABLES.iter().enumerate() {
            assert!(a.name.starts_with("LARDER_"));
            assert!(VARIABLES[i + 1..].iter().all(|b| b.name != a.name));
        }
    }
}
