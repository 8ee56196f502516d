//! Per-thread words for check mode's hot paths. Inside liblarder_check.so a `thread_local!`
//! goes through `__tls_get_addr` (about 25 instructions a use, measured with callgrind), so on
//! x86-64 Linux each word is a TLS variable of the initial-exec model defined in assembly, as
//! the core's heap pointer is (`heap::current_heap`): one `fs`-relative load or store, its
//! offset from the thread pointer read once from the GOT. Elsewhere a `thread_local!`.

/// Defines `mod $name` with `get() -> u64` and `set(u64)` on a per-thread word named `$symbol`
/// (a fresh thread's reads 0).
macro_rules! tls_word {
    ($(#[$doc:meta])* $name:ident, $symbol:literal) => {
        $(#[$doc])*
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        mod $name {
            core::arch::global_asm!(
                ".pushsection .tbss,\"awT\",@nobits",
                ".p2align 3",
                concat!(".globl ", $symbol),
                concat!(".hidden ", $symbol),
                concat!(".type ", $symbol, ", @object"),
                concat!(".size ", $symbol, ", 8"),
                concat!($symbol, ":"),
                ".zero 8",
                ".popsection",
            );

            /// The word's offset from the thread pointer: the same for every thread, so the
            /// compiler may reuse it between a `get` and a `set`.
            #[inline(always)]
            fn offset() -> usize {
                let offset: usize;
                // SAFETY: reads the GOT entry the dynamic linker filled in at load time and
                // never changes again, nothing else.
                unsafe {
                    core::arch::asm!(
                        concat!("mov {o}, qword ptr [rip + ", $symbol, "@GOTTPOFF]"),
                        o = out(reg) offset,
                        options(pure, nomem, nostack, preserves_flags),
                    )
                };
                offset
            }

            /// This thread's value.
            #[inline(always)]
            pub fn get() -> u64 {
                let value: u64;
                // SAFETY: reads this thread's copy of the 8-byte TLS word defined above.
                unsafe {
                    core::arch::asm!(
                        "mov {v}, qword ptr fs:[{o}]",
                        o = in(reg) offset(),
                        v = out(reg) value,
                        options(nostack, readonly, preserves_flags),
                    )
                };
                value
            }

            /// Sets this thread's value.
            #[inline(always)]
            pub fn set(value: u64) {
                // SAFETY: writes this thread's copy of the 8-byte TLS word defined above,
                // nothing else.
                unsafe {
                    core::arch::asm!(
                        "mov qword ptr fs:[{o}], {v}",
                        o = in(reg) offset(),
                        v = in(reg) value,
                        options(nostack, preserves_flags),
                    )
                };
            }
        }

        $(#[$doc])*
        #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
        mod $name {
            use core::cell::Cell;

            std::thread_local! {
                static WORD: Cell<u64> = const { Cell::new(0) };
            }

            /// This thread's value.
            #[inline(always)]
            pub fn get() -> u64 {
                WORD.with(Cell::get)
            }

            /// Sets this thread's value.
            #[inline(always)]
            pub fn set(value: u64) {
                WORD.with(|w| w.set(value));
            }
        }
    };
}

pub(super) use tls_word;

tls_word!(
    /// This thread's number plus one (0: not dealt yet).
    thread_number_word,
    "larder_check_thread_number"
);

/// A number for the calling thread, dealt at its first call in the order threads ask: check
/// mode's striped tables and counters pick their stripe by it, so that each thread keeps to
/// lines of its own. (A hash of the block's address sent every thread to every stripe, and the
/// stripes' lines went from core to core; one of the stack address sent threads whose stacks
/// are 8 MiB apart to two of sixteen.)
#[inline(always)]
pub(super) fn thread_number() -> usize {
    match thread_number_word::get() {
        0 => deal_thread_number(),
        n => (n - 1) as usize,
    }
}

#[cold]
#[inline(never)]
fn deal_thread_number() -> usize {
    static NEXT: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    thread_number_word::set(n as u64 + 1);
    n
}
