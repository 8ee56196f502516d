//! A cache of how big each frame is at each call site, learned from libgcc's unwinder, so that
//! most backtraces are taken without it (x86-64 only). Unwinding with the DWARF call frame
//! information costs about a microsecond per backtrace (find the FDE, interpret its program,
//! for every frame); it was most of check mode's time, taken at every malloc and free.
//!
//! On x86-64 a frame's canonical frame address (CFA: the caller's stack pointer before the
//! call) is, at a call site whose function keeps a fixed frame, the frame's stack pointer plus
//! a constant, and the return address lies just below the CFA. Each slow capture records, for
//! every return address it passes, that constant (`delta`); a capture then walks with one
//! table lookup and one load per frame while every return address it meets has a delta seen
//! twice and never contradicted, and goes back to the unwinder at the first it does not know.
//! A function whose frame size varies at a call site (`alloca`, stack realignment) is seen with
//! two deltas and marked unusable; one in `VERIFY_EVERY` captures takes the slow path anyway,
//! so such a site is found even after the cache has warmed. A walk never reads outside the
//! stack range this thread's slow captures have seen, so even a wrong delta yields a wrong
//! frame, never a fault.

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::backtrace::{Backtrace, MAX_FRAMES};

/// Cache entries (a power of two): distinct return addresses on the program's malloc paths.
const ENTRIES: usize = 1 << 15;
const PROBES_MAX: usize = 16;
/// One capture in this many takes the slow path and re-learns (and checks) its frames.
const VERIFY_EVERY: u64 = 1024;
/// Frames above this size are not believed.
const DELTA_MAX: u64 = 1 << 24;

/// A rule: the delta in the low 32 bits, the times it was seen (saturating at 255) in bits 32
/// to 39, then the flags.
const SEEN_SHIFT: u32 = 32;
const END_OF_STACK: u64 = 1 << 62;
const UNUSABLE: u64 = 1 << 63;
/// A delta is trusted once seen this many times.
const TRUSTED_AFTER: u64 = 2;

struct Entry {
    pc: AtomicUsize,
    rule: AtomicU64,
}

static TABLE: [Entry; ENTRIES] = [const {
    Entry {
        pc: AtomicUsize::new(0),
        rule: AtomicU64::new(0),
    }
}; ENTRIES];

/// `capture`'s own frame size, from its stack pointer to its CFA (0: not known yet;
/// `usize::MAX`: the fast path is off, `capture`'s stack pointer did not stay put).
static CAPTURE_DELTA: AtomicUsize = AtomicUsize::new(0);

super::tls::tls_word!(
    /// The highest stack address this thread's slow captures reached: a walk stays below it.
    stack_top,
    "larder_check_stack_top"
);

super::tls::tls_word!(
    /// This thread's captures so far: every `VERIFY_EVERY`th takes the slow path. Per thread,
    /// since one counter for all made every malloc and free of every thread write one line.
    captures,
    "larder_check_captures"
);

fn slot_of(pc: usize) -> usize {
    (pc.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) & (ENTRIES - 1)
}

/// The rule learned for the return address `pc`, or 0.
fn rule(pc: usize) -> u64 {
    let mut i = slot_of(pc);
    for _ in 0..PROBES_MAX {
        let entry = &TABLE[i];
        match entry.pc.load(Ordering::Acquire) {
            0 => return 0,
            p if p == pc => return entry.rule.load(Ordering::Acquire),
            _ => i = (i + 1) & (ENTRIES - 1),
        }
    }
    0
}

/// Whether a walk may go on through a frame with rule `r`.
fn trusted(r: u64) -> bool {
    r & UNUSABLE == 0 && (r >> SEEN_SHIFT) & 0xff >= TRUSTED_AFTER
}

/// Whether a walk may go on through the frame returning to `pc`.
#[cfg(test)]
pub fn knows(pc: usize) -> bool {
    trusted(rule(pc))
}

/// Records that the frame returning to `pc` was `delta` bytes (or the stack's end, with
/// `END_OF_STACK`); a different value than before makes the site unusable.
fn learn(pc: usize, observed: u64) {
    let mut i = slot_of(pc);
    for _ in 0..PROBES_MAX {
        let entry = &TABLE[i];
        let p = entry.pc.load(Ordering::Acquire);
        if p == 0 {
            if entry
                .pc
                .compare_exchange(0, pc, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
                && entry.pc.load(Ordering::Acquire) != pc
            {
                i = (i + 1) & (ENTRIES - 1);
                continue;
            }
        } else if p != pc {
            i = (i + 1) & (ENTRIES - 1);
            continue;
        }
        let _ = entry
            .rule
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |old| {
                let value = |r: u64| r & (END_OF_STACK | 0xffff_ffff);
                if old & UNUSABLE != 0 {
                    None
                } else if old == 0 {
                    Some(observed | (1 << SEEN_SHIFT))
                } else if value(old) != observed {
                    Some(UNUSABLE)
                } else {
                    let seen = ((old >> SEEN_SHIFT) & 0xff).saturating_add(1).min(255);
                    Some(observed | (seen << SEEN_SHIFT))
                }
            });
        return;
    }
}

/// Whether this capture should take the slow path to check the cache.
pub fn verify_now() -> bool {
    let n = captures::get();
    captures::set(n.wrapping_add(1));
    n % VERIFY_EVERY == 0
}

/// Walks the stack from `capture`'s stack pointer `sp` with the cache into `bt`, leaving out
/// the first `skip` frames above `capture`'s caller. False when a frame is not known (or the
/// walk would leave the stack range seen): the caller then unwinds the slow way.
pub fn walk(sp: usize, skip: usize, bt: &mut Backtrace) -> bool {
    let own = CAPTURE_DELTA.load(Ordering::Relaxed);
    if own == 0 || own == usize::MAX {
        return false;
    }
    let top = stack_top::get() as usize;
    let Some(mut cfa) = sp.checked_add(own) else {
        return false;
    };
    if cfa <= sp || cfa % 8 != 0 {
        return false;
    }
    let mut index = 0;
    let mut len = 0;
    // Past the first frame `cfa` only grows, by learned deltas that are multiples of 8 below
    // `DELTA_MAX`, so staying below `top` is the one bound left to check.
    while cfa <= top {
        // SAFETY: `sp < cfa - 8 < top`: between this thread's stack pointer and the highest
        // address its unwinder reached, all mapped stack of this thread.
        let pc = unsafe { ((cfa - 8) as *const usize).read() };
        if pc == 0 {
            break;
        }
        if index >= skip {
            bt.frames[len] = pc;
            len += 1;
            if len == MAX_FRAMES {
                break;
            }
        }
        index += 1;
        // One probe per frame: the table is larger than the L1 cache, and asking whether a
        // frame is known and then for its rule made two trips for each.
        let r = rule(pc);
        if !trusted(r) {
            return false;
        }
        if r & END_OF_STACK != 0 {
            break;
        }
        cfa += (r & 0xffff_ffff) as usize;
    }
    if cfa > top {
        return false;
    }
    bt.len = len as u8;
    true
}

/// Learns from a slow capture: `sp` was `capture`'s stack pointer, `frames` the unwinder's
/// (return address, stack pointer of that frame) pairs from `capture`'s own frame outward,
/// `interrupted` the frames (bits) a signal interrupted, `ended` whether the last one is the
/// stack's outermost. A signal frame is never walked through by the cache: the interrupted
/// frame's address is not a return address below its caller's stack pointer.
pub fn learn_walk(sp: usize, frames: &[(usize, usize)], interrupted: u32, ended: bool) {
    let (Some(&(_, capture_sp)), Some(&(_, caller_sp))) = (frames.first(), frames.get(1)) else {
        return;
    };
    if capture_sp != sp {
        CAPTURE_DELTA.store(usize::MAX, Ordering::Relaxed);
        return;
    }
    let _ = CAPTURE_DELTA.compare_exchange(
        0,
        caller_sp - capture_sp,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for (k, pair) in frames.windows(2).enumerate().skip(1) {
        let ((pc, frame_sp), (_, next_sp)) = (pair[0], pair[1]);
        let delta = next_sp.wrapping_sub(frame_sp) as u64;
        let signal = (interrupted >> k) & 3 != 0;
        if !signal && next_sp > frame_sp && delta < DELTA_MAX && delta % 8 == 0 {
            learn(pc, delta);
        } else {
            learn(pc, UNUSABLE);
        }
    }
    if let Some(&(last_pc, last_sp)) = frames.last() {
        if ended && frames.len() > 1 {
            learn(last_pc, END_OF_STACK);
        }
        stack_top::set(stack_top::get().max(last_sp as u64));
    }
}
