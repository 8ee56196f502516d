//! Fault injection: `LARDER_FAIL=SPEC` makes chosen allocations return null (ENOMEM in C), so
//! that a program's out-of-memory paths can be tested at every point they can be taken, as
//! sqlite's test harness does.
//!
//! A SPEC is comma-separated words, one rule and optional modifiers:
//! - `nth:N`: the Nth allocation only (counting from 1);
//! - `every:N`: allocations N, 2N, 3N, ...;
//! - `prob:P` (`0.01` or `1%`), with `seed:S`: each allocation with probability P, decided by a
//!   hash of the seed and the allocation's number, so a single-threaded run is reproducible;
//! - `after-bytes:B`: every allocation once B bytes (suffix K, M, G) have been asked for;
//! - `size-over:B`: every allocation larger than B bytes;
//! - `thread:main` or `thread:other`: only allocations of the process's initial thread, or of
//!   the other threads, are counted and may fail.
//!
//! The parser names the bad word of a bad SPEC (the library and `larder run --fail` share it).
//! The decision is lock-free, allocation-free and panic-free: it runs inside malloc.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::backtrace::{self, Backtrace};
use super::report::Record;
use crate::options::{self, parse_size, parse_u64};
use crate::os;
use crate::report::Writer;

/// The rule of a SPEC: which allocations fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// The Nth allocation only.
    Nth(u64),
    /// Every Nth allocation.
    Every(u64),
    /// Each allocation with probability `threshold / 2^32`, decided by a hash of `seed` and the
    /// allocation's number.
    Probability {
        /// P scaled to 2^32 (2^32 itself means always).
        threshold: u64,
        /// The seed of the hash (0 unless `seed:S` is given).
        seed: u64,
    },
    /// Every allocation once more than this many bytes have been asked for, this one included.
    AfterBytes(u64),
    /// Every allocation larger than this many bytes.
    SizeOver(u64),
}

/// Which threads' allocations are counted and may fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Every thread.
    All,
    /// The process's initial thread only.
    Main,
    /// Every thread but the initial one.
    Other,
}

/// A parsed SPEC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Which allocations fail.
    pub rule: Rule,
    /// Whose allocations.
    pub threads: Threads,
}

/// Why a SPEC was refused: the word at fault and what was expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecError<'a> {
    /// The bad word, as written (the whole SPEC when no rule was given).
    pub word: &'a [u8],
    /// What was expected instead, a short phrase.
    pub why: &'static str,
}

impl core::fmt::Display for SpecError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let word = core::str::from_utf8(self.word).unwrap_or("(not UTF-8)");
        write!(
            f,
            "bad word '{word}' in the fault specification: {}",
            self.why
        )
    }
}

const RULES: &str =
    "expected nth:N, every:N, prob:P, after-bytes:B, size-over:B, seed:S or thread:main|other";

/// Parses a SPEC, naming the first bad word.
pub fn parse(spec: &[u8]) -> Result<Spec, SpecError<'_>> {
    let mut rule: Option<Rule> = None;
    let mut seed: Option<(u64, &[u8])> = None;
    let mut threads: Option<Threads> = None;
    for word in spec.split(|&b| b == b',') {
        let bad = |why| SpecError { word, why };
        let colon = word.iter().position(|&b| b == b':');
        let (key, value) = match colon {
            Some(i) => (&word[..i], &word[i + 1..]),
            None => return Err(bad(RULES)),
        };
        let new_rule = match key {
            b"nth" => Some(Rule::Nth(
                positive(value).ok_or(bad("expected nth:N, N from 1"))?,
            )),
            b"every" => Some(Rule::Every(
                positive(value).ok_or(bad("expected every:N, N from 1"))?,
            )),
            b"prob" => Some(Rule::Probability {
                threshold: parse_probability(value).ok_or(bad(
                    "expected prob:P, P from 0 to 1 (0.01) or a percentage (1%)",
                ))?,
                seed: 0,
            }),
            b"after-bytes" => Some(Rule::AfterBytes(
                parse_size(value).ok_or(bad("expected after-bytes:B, B a size such as 64M"))?,
            )),
            b"size-over" => Some(Rule::SizeOver(
                parse_size(value).ok_or(bad("expected size-over:B, B a size such as 1M"))?,
            )),
            b"seed" => {
                if seed.is_some() {
                    return Err(bad("seed given twice"));
                }
                seed = Some((
                    parse_u64(value).ok_or(bad("expected seed:S, S a number"))?,
                    word,
                ));
                None
            }
            b"thread" => {
                if threads.is_some() {
                    return Err(bad("thread given twice"));
                }
                threads = Some(match value {
                    b"main" => Threads::Main,
                    b"other" => Threads::Other,
                    _ => return Err(bad("expected thread:main or thread:other")),
                });
                None
            }
            _ => return Err(bad(RULES)),
        };
        if let Some(r) = new_rule {
            if rule.is_some() {
                return Err(bad("only one of nth, every, prob, after-bytes, size-over"));
            }
            rule = Some(r);
        }
    }
    let Some(mut rule) = rule else {
        return Err(SpecError {
            word: spec,
            why: "no rule: expected nth:N, every:N, prob:P, after-bytes:B or size-over:B",
        });
    };
    if let Some((s, word)) = seed {
        match &mut rule {
            Rule::Probability { seed, .. } => *seed = s,
            _ => {
                return Err(SpecError {
                    word,
                    why: "seed:S goes only with prob:P",
                })
            }
        }
    }
    Ok(Spec {
        rule,
        threads: threads.unwrap_or(Threads::All),
    })
}

fn positive(text: &[u8]) -> Option<u64> {
    parse_u64(text).filter(|&n| n > 0)
}

/// P as a fraction of 2^32, from `0.25`, `.25`, `1`, `0`, `25%` or `2.5%`; None out of [0, 1].
fn parse_probability(text: &[u8]) -> Option<u64> {
    let (text, percent) = match text.strip_suffix(b"%") {
        Some(t) => (t, true),
        None => (text, false),
    };
    let dot = text.iter().position(|&b| b == b'.').unwrap_or(text.len());
    let (whole, fraction) = (&text[..dot], text.get(dot + 1..).unwrap_or(&[]));
    if (whole.is_empty() && fraction.is_empty()) || fraction.len() > 9 {
        return None;
    }
    let whole = if whole.is_empty() {
        0
    } else {
        parse_u64(whole)?
    };
    let fraction_value = if fraction.is_empty() {
        0
    } else {
        parse_u64(fraction)?
    };
    // value = (whole * 10^k + fraction) / 10^k, over 100 for a percentage.
    let mut denominator = 10u128.pow(fraction.len() as u32);
    if percent {
        denominator *= 100;
    }
    let numerator = (whole as u128)
        .checked_mul(10u128.pow(fraction.len() as u32))?
        .checked_add(fraction_value as u128)?;
    if numerator > denominator {
        return None;
    }
    Some(((numerator << 32) / denominator) as u64)
}

/// The per-process decision: counts allocations and says which fail.
pub struct Injector {
    spec: Spec,
    /// Allocations counted so far (those of the threads the spec names).
    seen: AtomicU64,
    /// Bytes asked for by them.
    bytes: AtomicU64,
    /// Failures injected.
    injected: AtomicU64,
}

impl Injector {
    /// An injector for `spec`, nothing counted yet.
    pub const fn new(spec: Spec) -> Injector {
        Injector {
            spec,
            seen: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            injected: AtomicU64::new(0),
        }
    }

    /// Called before each allocation of `size` bytes: `Some(n)` when it must fail, n being its
    /// number among the allocations counted (from 1); `None` when it goes ahead.
    #[inline]
    pub fn decide(&self, size: usize) -> Option<u64> {
        match self.spec.threads {
            Threads::All => {}
            Threads::Main if os::is_initial_thread() => {}
            Threads::Other if !os::is_initial_thread() => {}
            _ => return None,
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        let fail = match self.spec.rule {
            Rule::Nth(k) => n == k,
            Rule::Every(k) => n % k == 0,
            Rule::Probability { threshold, seed } => {
                (mix(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 32) < threshold
            }
            Rule::AfterBytes(limit) => {
                let total = self.bytes.fetch_add(size as u64, Ordering::Relaxed) + size as u64;
                total > limit
            }
            Rule::SizeOver(limit) => size as u64 > limit,
        };
        if fail {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Some(n)
        } else {
            None
        }
    }

    /// Allocations counted so far (the sweep's first run learns the program's count from it).
    pub fn seen(&self) -> u64 {
        self.seen.load(Ordering::Relaxed)
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }
}

/// splitmix64's finaliser: a well-mixed 64-bit hash of a counter.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The process's fault injection, as `LARDER_FAIL` sets it.
#[derive(Clone, Copy)]
pub enum Setting {
    /// `LARDER_FAIL` unset: nothing fails.
    Off,
    /// Allocations go through this injector.
    On(&'static Injector),
    /// `LARDER_FAIL` does not parse; it was reported on stderr, naming the bad word. The C
    /// library exits rather than run without the injection that was asked for.
    Bad,
}

const UNREAD: u8 = 0;
const READING: u8 = 1;
const OFF: u8 = 2;
const ON: u8 = 3;
const BAD: u8 = 4;

struct InjectorCell(UnsafeCell<Injector>);

// SAFETY: the spec is written only by the thread that wins UNREAD -> READING, before it
// publishes ON with Release; other threads use the injector (its atomics) only after seeing ON
// with Acquire.
unsafe impl Sync for InjectorCell {}

static INJECTOR: InjectorCell = InjectorCell(UnsafeCell::new(Injector::new(Spec {
    rule: Rule::Nth(u64::MAX),
    threads: Threads::All,
})));
static STATE: AtomicU8 = AtomicU8::new(UNREAD);

/// The process's fault injection (`LARDER_FAIL` is parsed on the first call; a bad spec is
/// reported once).
#[inline]
pub fn setting() -> Setting {
    match STATE.load(Ordering::Acquire) {
        OFF => Setting::Off,
        // SAFETY: ON is published after the spec is written; it never changes again.
        ON => Setting::On(unsafe { &*INJECTOR.0.get() }),
        BAD => Setting::Bad,
        _ => read_once(),
    }
}

#[cold]
#[inline(never)]
fn read_once() -> Setting {
    if STATE
        .compare_exchange(UNREAD, READING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        let state = match crate::options::get().fail.get().map(parse) {
            None => OFF,
            Some(Ok(spec)) => {
                // SAFETY: this thread won UNREAD -> READING: nobody else reads the cell until
                // ON is published.
                unsafe { *INJECTOR.0.get() = Injector::new(spec) };
                ON
            }
            Some(Err(error)) => {
                report_bad_spec(&error);
                BAD
            }
        };
        STATE.store(state, Ordering::Release);
    } else {
        while STATE.load(Ordering::Acquire) == READING {
            core::hint::spin_loop();
        }
    }
    setting()
}

/// Check mode's hook, called before each allocation (malloc, calloc, realloc, aligned) of
/// `size` bytes with the caller's backtrace: true when this one must fail. An injected failure
/// is recorded in `LARDER_REPORT_FILE` (`larder-fail v1 pid=P n=N size=S at=module+0xoff;...`)
/// and, with `LARDER_FAIL_LOG`, printed on stderr with its backtrace. A bad `LARDER_FAIL` ends
/// the process with status 2 rather than let it run without the injection asked for.
#[inline]
pub fn inject(size: usize, at: &Backtrace) -> bool {
    match setting() {
        Setting::Off => false,
        Setting::On(injector) => match injector.decide(size) {
            None => false,
            Some(n) => {
                injected(n, size, at);
                true
            }
        },
        // SAFETY: _exit ends the process at once, running nothing that could allocate.
        Setting::Bad => unsafe { libc::_exit(2) },
    }
}

#[cold]
#[inline(never)]
fn injected(n: u64, size: usize, at: &Backtrace) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u64;
    if options::get().fail_log {
        let mut w = Writer::new(2);
        w.str("larder: injected failure: allocation #");
        w.u64(n);
        w.str(" of ");
        w.u64(size as u64);
        w.str(" bytes returns NULL (pid ");
        w.u64(pid);
        w.str(")\n");
        backtrace::write_frames(&mut w, at);
        w.flush();
    }
    let mut r = Record::new();
    r.push(b"larder-fail v1 pid=");
    r.num(pid, 10);
    r.push(b" n=");
    r.num(n, 10);
    r.push(b" size=");
    r.num(size as u64, 10);
    r.frames(b"at", Some(at));
    r.append_to_report_file();
}

/// At exit: how many allocations were counted and failed
/// (`larder-fail-count v1 pid=P seen=N injected=K`), which `larder run --fail-sweep` reads from
/// its counting run.
pub fn at_exit() {
    if let Setting::On(injector) = setting() {
        let mut r = Record::new();
        r.push(b"larder-fail-count v1 pid=");
        // SAFETY: getpid has no preconditions.
        r.num(unsafe { libc::getpid() } as u64, 10);
        r.push(b" seen=");
        r.num(injector.seen(), 10);
        r.push(b" injected=");
        r.num(injector.injected(), 10);
        r.append_to_report_file();
    }
}

#[cold]
fn report_bad_spec(error: &SpecError<'_>) {
    let mut w = Writer::new(2);
    w.str("larder: error: LARDER_FAIL: bad word '");
    w.bytes(&error.word[..error.word.len().min(200)]);
    w.str("': ");
    w.str(error.why);
    w.str("\n");
    w.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> Spec {
        parse(spec.as_bytes()).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn bad_word(spec: &str) -> String {
        let e = parse(spec.as_bytes()).expect_err(spec);
        String::from_utf8(e.word.to_vec()).unwrap()
    }

    fn failures(spec: &str, sizes: impl IntoIterator<Item = usize>) -> Vec<u64> {
        let injector = Injector::new(ok(spec));
        sizes
            .into_iter()
            .filter_map(|size| injector.decide(size))
            .collect()
    }

    #[test]
    fn specs_parse() {
        assert_eq!(ok("nth:3").rule, Rule::Nth(3));
        assert_eq!(ok("every:10").rule, Rule::Every(10));
        assert_eq!(ok("after-bytes:1M").rule, Rule::AfterBytes(1 << 20));
        assert_eq!(ok("size-over:4096").rule, Rule::SizeOver(4096));
        assert_eq!(
            ok("prob:0.5,seed:7").rule,
            Rule::Probability {
                threshold: 1 << 31,
                seed: 7
            }
        );
        assert_eq!(ok("prob:50%"), ok("prob:.5"));
        assert_eq!(ok("thread:main,nth:2").threads, Threads::Main);
        assert_eq!(ok("nth:2,thread:other").threads, Threads::Other);
        assert_eq!(ok("nth:2").threads, Threads::All);
    }

    #[test]
    fn bad_specs_name_the_bad_word() {
        assert_eq!(bad_word("nht:3"), "nht:3");
        assert_eq!(bad_word("nth:3,thread:mian"), "thread:mian");
        assert_eq!(bad_word("nth:0"), "nth:0");
        assert_eq!(bad_word("every:x"), "every:x");
        assert_eq!(bad_word("prob:1.5"), "prob:1.5");
        assert_eq!(bad_word("prob:0.1,seed:z"), "seed:z");
        assert_eq!(bad_word("nth:3,seed:1"), "seed:1");
        assert_eq!(bad_word("nth:3,every:2"), "every:2");
        assert_eq!(bad_word("thread:main"), "thread:main");
        assert_eq!(bad_word("nth:3,"), "");
        assert_eq!(bad_word("size-over:1Q"), "size-over:1Q");
    }

    #[test]
    fn nth_fails_one_allocation() {
        assert_eq!(failures("nth:3", [8; 10]), [3]);
    }

    #[test]
    fn every_fails_multiples() {
        assert_eq!(failures("every:4", [8; 13]), [4, 8, 12]);
    }

    #[test]
    fn size_over_and_after_bytes_look_at_sizes() {
        assert_eq!(failures("size-over:100", [50, 101, 100, 4096]), [2, 4]);
        assert_eq!(failures("after-bytes:250", [100, 100, 100, 1]), [3, 4]);
    }

    #[test]
    fn probability_is_reproducible_and_near_p() {
        let a = failures("prob:0.1,seed:42", core::iter::repeat_n(8, 100_000));
        let b = failures("prob:0.1,seed:42", core::iter::repeat_n(8, 100_000));
        let c = failures("prob:0.1,seed:43", core::iter::repeat_n(8, 100_000));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // 10% of 100 000, binomial standard deviation ~95: 6 sigma either way.
        assert!((9_400..=10_600).contains(&a.len()), "{}", a.len());
        assert!(failures("prob:0", [8; 1000]).is_empty());
        assert_eq!(failures("prob:1", [8; 1000]).len(), 1000);
    }

    #[test]
    fn thread_filters_count_only_their_threads() {
        // The test harness runs tests on threads other than the initial one.
        let main_only = Injector::new(ok("every:1,thread:main"));
        let others = Injector::new(ok("every:1,thread:other"));
        let on_main = os::is_initial_thread();
        assert_eq!(main_only.decide(8).is_some(), on_main);
        assert_eq!(others.decide(8).is_some(), !on_main);
        assert_eq!(main_only.seen() + others.seen(), 1);
    }
}
