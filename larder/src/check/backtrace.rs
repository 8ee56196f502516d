//! Backtraces captured inside the allocator: a fixed array of return addresses, taken with
//! libgcc's `_Unwind_Backtrace` (linked by Rust's std already). With glibc 2.35+ the unwinder
//! finds each module's unwind tables through `_dl_find_object`, which neither allocates nor
//! takes a lock an allocating function holds, so capture is safe inside malloc and free.
//! Symbolisation is deferred to reporting: `write_frames` names frames through `dladdr`
//! (exported symbols, module + offset); `larder run --check` turns module + offset into
//! function and file:line with debug info, outside the checked process.

use core::ffi::{c_int, c_void, CStr};

use super::unwind_cache;
use crate::report::Writer;

/// The most frames a backtrace keeps (the innermost ones).
pub const MAX_FRAMES: usize = 16;

/// Return addresses, innermost first.
#[derive(Clone, Copy)]
pub struct Backtrace {
    /// The addresses; only the first `len` are meaningful.
    pub frames: [usize; MAX_FRAMES],
    /// How many frames were captured.
    pub len: u8,
    /// Whether a report shows larder's own innermost frames too (see `shown`): for a fault in
    /// larder's own code, whose frames are then the point.
    pub keep_own: bool,
}

type TraceFn = extern "C" fn(ctx: *mut c_void, arg: *mut c_void) -> c_int;

extern "C" {
    fn _Unwind_Backtrace(trace: TraceFn, arg: *mut c_void) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
    fn _Unwind_GetIPInfo(ctx: *mut c_void, ip_before_insn: *mut c_int) -> usize;
    fn _Unwind_GetCFA(ctx: *mut c_void) -> usize;
}

/// `_URC_NO_REASON` goes on walking; `_URC_END_OF_STACK` stops it.
const URC_NO_REASON: c_int = 0;
const URC_END_OF_STACK: c_int = 5;

/// Frames a slow capture records: `capture`'s own, those skipped, and the kept ones.
const WALK_MAX: usize = MAX_FRAMES + 8;

struct Walk {
    /// (return address, the frame's stack pointer), from `capture`'s frame outward.
    frames: [(usize, usize); WALK_MAX],
    /// Bit `i`: frame `i` was interrupted by a signal (its address is the faulting
    /// instruction's, not a return address).
    interrupted: u32,
    len: usize,
    ended: bool,
}

extern "C" fn on_frame(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed to `_Unwind_Backtrace`, alive and not
    // otherwise borrowed for the duration of the walk.
    let walk = unsafe { &mut *arg.cast::<Walk>() };
    // SAFETY: `ctx` is the unwinder's context for the current frame.
    let mut before_insn: c_int = 0;
    // SAFETY: as above; `before_insn` is writable.
    let (ip, sp) = unsafe {
        (
            _Unwind_GetIPInfo(ctx, &mut before_insn),
            _Unwind_GetCFA(ctx),
        )
    };
    if ip == 0 {
        walk.ended = true;
        return URC_END_OF_STACK;
    }
    if walk.len >= WALK_MAX {
        return URC_END_OF_STACK;
    }
    walk.frames[walk.len] = (ip, sp);
    if before_insn != 0 {
        walk.interrupted |= 1 << walk.len;
    }
    walk.len += 1;
    URC_NO_REASON
}

/// This function's stack pointer.
#[inline(always)]
fn stack_pointer() -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        let sp: usize;
        // SAFETY: reads a register; no memory is touched.
        unsafe {
            core::arch::asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags))
        };
        sp
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

impl Backtrace {
    /// An empty backtrace.
    pub const EMPTY: Backtrace = Backtrace {
        frames: [0; MAX_FRAMES],
        len: 0,
        keep_own: false,
    };

    /// The caller's backtrace, leaving out `skip` frames above `capture`'s caller (0 keeps the
    /// caller of `capture` as frame #0), at most `MAX_FRAMES`. Never allocates. Most captures
    /// walk with the frame sizes `unwind_cache` learned; the others, and one in a thousand to
    /// check the cache, ask libgcc's unwinder.
    ///
    /// Inlined, so that the backtrace is filled in the caller's own frame (returned by value
    /// from a function of its own, it was copied, 136 bytes a call); the work is
    /// `capture_into`'s, whose frame is the walks' frame 0.
    #[inline(always)]
    pub fn capture(skip: usize) -> Backtrace {
        let mut bt = Backtrace::EMPTY;
        bt.capture_here(skip);
        bt
    }

    /// As [`capture`](Backtrace::capture), into `self`: on the paths of every malloc and free,
    /// where the value `capture` returns is moved into a temporary at a cost of a copy.
    #[inline(always)]
    pub fn capture_here(&mut self, skip: usize) {
        Backtrace::capture_into(skip, true, self);
    }

    /// `capture`'s work, into `bt` (empty): with `cached`, tries the cache first. Its own
    /// frame is frame 0 of the walks, its caller's frame 1.
    #[inline(never)]
    fn capture_into(skip: usize, cached: bool, bt: &mut Backtrace) {
        let sp = stack_pointer();
        let skip = skip.min(WALK_MAX - MAX_FRAMES - 1);
        if cfg!(target_arch = "x86_64")
            && cached
            && !unwind_cache::verify_now()
            && unwind_cache::walk(sp, skip, bt)
        {
            return;
        }
        let mut walk = Walk {
            frames: [(0, 0); WALK_MAX],
            interrupted: 0,
            len: 0,
            ended: false,
        };
        // SAFETY: `on_frame` only touches `walk`, which outlives the call.
        let end = unsafe { _Unwind_Backtrace(on_frame, (&mut walk as *mut Walk).cast()) };
        walk.ended |= end == URC_END_OF_STACK && walk.len < WALK_MAX;
        let frames = &walk.frames[..walk.len];
        if cfg!(target_arch = "x86_64") {
            unwind_cache::learn_walk(sp, frames, walk.interrupted, walk.ended);
        }
        // `capture_into` itself is the first frame the unwinder reports. A frame interrupted
        // by a signal is kept one byte on, so that `call_site` lands on the faulting
        // instruction itself.
        bt.len = 0;
        for (i, &(ip, _)) in frames.iter().enumerate().skip(1 + skip).take(MAX_FRAMES) {
            bt.frames[bt.len as usize] = ip + (walk.interrupted >> i & 1) as usize;
            bt.len += 1;
        }
    }

    /// The captured frames, innermost first.
    pub fn frames(&self) -> &[usize] {
        &self.frames[..(self.len as usize).min(MAX_FRAMES)]
    }

    /// The frames a report shows: without the innermost ones that lie in larder's own shared
    /// library (liblarder_check.so's `malloc`, its C rules and the checks), so that frame #0 is
    /// the program's call, as a reader looks for the culprit. Where larder is linked into the
    /// program (Rust's `Checked`), its frames share the program's module and are all kept; so
    /// are they all when no frame is the program's.
    pub fn shown(&self) -> &[usize] {
        let frames = self.frames();
        let Some(own) = own_library_base().filter(|_| !self.keep_own) else {
            return frames;
        };
        let outside = |&ret: &usize| locate(call_site(ret)).is_none_or(|l| l.base != own);
        match frames.iter().position(outside) {
            Some(first) => &frames[first..],
            None => frames,
        }
    }
}

/// The load base of the shared library this code is in, or `None` when it is linked into the
/// program itself (or cannot be told). Looked up once, on the reporting path.
fn own_library_base() -> Option<usize> {
    use core::sync::atomic::{AtomicUsize, Ordering};
    /// 0: not looked up yet; 1: not a shared library; else the base.
    static OWN: AtomicUsize = AtomicUsize::new(0);
    let mut base = OWN.load(Ordering::Relaxed);
    if base == 0 {
        let here = own_library_base as fn() -> Option<usize> as usize;
        base = match locate(here) {
            Some(l) if l.module.windows(3).any(|w| w == b".so") && l.base > 1 => l.base,
            _ => 1,
        };
        OWN.store(base, Ordering::Relaxed);
    }
    (base != 1).then_some(base)
}

struct OuterWalk<'a> {
    inside: &'a dyn Fn(usize) -> bool,
    top: usize,
    frames: usize,
}

extern "C" fn on_outer_frame(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `OuterWalk` that `stack_above` passed, alive for the walk.
    let walk = unsafe { &mut *arg.cast::<OuterWalk>() };
    // SAFETY: `ctx` is the unwinder's context for the current frame.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    walk.frames += 1;
    if ip == 0 || walk.frames > 256 {
        return URC_END_OF_STACK;
    }
    if !(walk.inside)(call_site(ip)) {
        // The context of a frame holds its stack pointer at the call it is in: where the
        // frame's own slots begin.
        // SAFETY: as above.
        walk.top = unsafe { _Unwind_GetCFA(ctx) };
        return URC_END_OF_STACK;
    }
    URC_NO_REASON
}

/// Walks out from the caller through the frames whose code `inside` accepts, and returns the
/// stack address where the first frame it does not accept begins (its stack pointer at the
/// call it is in): everything below it on this thread's stack belongs to the accepted frames.
/// `None` when the walk never left them (or could not unwind). Never allocates.
#[inline(never)]
pub fn stack_above(inside: &dyn Fn(usize) -> bool) -> Option<usize> {
    let mut walk = OuterWalk {
        inside,
        top: 0,
        frames: 0,
    };
    // SAFETY: `on_outer_frame` only touches `walk`, which outlives the call.
    unsafe { _Unwind_Backtrace(on_outer_frame, (&mut walk as *mut OuterWalk).cast()) };
    (walk.top != 0).then_some(walk.top)
}

/// Where a code address lies: its module's path and load base, and the nearest exported symbol.
pub struct Location {
    /// The module's path as the dynamic linker knows it (empty for the main program at times).
    pub module: &'static [u8],
    /// The module's load base.
    pub base: usize,
    /// The nearest symbol's name, if `dladdr` found one.
    pub symbol: &'static [u8],
    /// The symbol's address (0 without a symbol).
    pub symbol_addr: usize,
}

/// Looks up `addr` with `dladdr` (no allocation: it reads the loader's tables).
pub fn locate(addr: usize) -> Option<Location> {
    let mut info = libc::Dl_info {
        dli_fname: core::ptr::null(),
        dli_fbase: core::ptr::null_mut(),
        dli_sname: core::ptr::null(),
        dli_saddr: core::ptr::null_mut(),
    };
    // SAFETY: `info` is writable; dladdr only reads the loader's module list.
    if unsafe { libc::dladdr(addr as *const c_void, &mut info) } == 0 {
        return None;
    }
    let text = |p: *const core::ffi::c_char| -> &'static [u8] {
        if p.is_null() {
            b""
        } else {
            // SAFETY: dladdr's strings are NUL-terminated and live as long as the module, which
            // stays loaded while its code is on a stack being reported.
            unsafe { CStr::from_ptr(p) }.to_bytes()
        }
    };
    Some(Location {
        module: text(info.dli_fname),
        base: info.dli_fbase as usize,
        symbol: text(info.dli_sname),
        symbol_addr: info.dli_saddr as usize,
    })
}

/// The function that the call instruction ending at return address `ret` called, where it is a
/// direct `call rel32` (through a PLT stub: the function the stub's GOT slot holds) or a
/// `call *slot(%rip)` (the function the slot holds). For a
/// frame that jumped on to its callee instead of calling it, and so left no frame of its own:
/// `operator delete` is often `jmp free`, and the `free` then returns straight to the code that
/// called `operator delete`. x86-64 only; the code and GOT bytes are copied, never read in
/// place, so a wrong guess reads nothing it should not. On the reporting path only.
pub(super) fn callee(ret: usize) -> Option<usize> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let mut call = [0u8; 6];
    if crate::os::copy_own(ret.checked_sub(6)?, &mut call) != Ok(6) {
        return None;
    }
    let disp = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as isize;
    if call[..2] == [0xff, 0x15] {
        // `call *slot(%rip)`, as code built with -fno-plt calls another module's function.
        return read_word(ret.wrapping_add_signed(disp(&call[2..])));
    }
    if call[1] != 0xe8 {
        return None;
    }
    let target = ret.wrapping_add_signed(disp(&call[2..]));
    // A PLT stub: `jmp *slot(%rip)`, after `endbr64` and a `bnd` prefix where the build has
    // them (.plt.sec).
    let mut stub = [0u8; 11];
    if crate::os::copy_own(target, &mut stub) != Ok(stub.len()) {
        return Some(target);
    }
    let jump_at = match stub {
        [0xff, 0x25, ..] => 0,
        [0xf3, 0x0f, 0x1e, 0xfa, 0xff, 0x25, ..] => 4,
        [0xf3, 0x0f, 0x1e, 0xfa, 0xf2, 0xff, 0x25, ..] => 5,
        _ => return Some(target),
    };
    read_word((target + jump_at + 6).wrapping_add_signed(disp(&stub[jump_at + 2..])))
}

/// The word at `addr`, copied (see `callee`).
fn read_word(addr: usize) -> Option<usize> {
    let mut word = [0u8; 8];
    (crate::os::copy_own(addr, &mut word) == Ok(8)).then(|| usize::from_ne_bytes(word))
}

/// A return address points after the call; one byte back lies inside the call instruction,
/// which is the line a reader wants.
pub(super) fn call_site(ret: usize) -> usize {
    ret.saturating_sub(1)
}

/// Writes one line per frame, `#0 0xADDR symbol+0xOFF (module+0xOFF)`, without allocating.
pub fn write_frames(w: &mut Writer, bt: &Backtrace) {
    for (i, &ret) in bt.shown().iter().enumerate() {
        let pc = call_site(ret);
        w.str("    #");
        w.u64(i as u64);
        w.str(" ");
        w.hex(pc);
        if let Some(loc) = locate(pc) {
            if !loc.symbol.is_empty() {
                w.str(" ");
                w.bytes(loc.symbol);
                w.str("+");
                w.hex(pc - loc.symbol_addr);
            }
            w.str(" (");
            w.bytes(loc.module);
            w.str("+");
            w.hex(pc.wrapping_sub(loc.base));
            w.str(")");
        }
        w.str("\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(never)]
    fn inner() -> Backtrace {
        Backtrace::capture(0)
    }

    /// `stack_above` accepting the frames of `stack_above` and of this function; also the
    /// address of a local of this frame. A pc belongs to the nearest of the known function starts
    /// below it (within 4 KiB): the caller's code may follow this function's closely (it does in
    /// debug builds), so a window alone would accept the caller's frame too.
    #[inline(never)]
    fn above_this_frame(caller: usize) -> (Option<usize>, usize) {
        let marker = 0u64;
        let local = core::hint::black_box(&marker) as *const u64 as usize;
        let (here, own) = (
            above_this_frame as fn(usize) -> (Option<usize>, usize) as usize,
            stack_above as fn(&dyn Fn(usize) -> bool) -> Option<usize> as usize,
        );
        let inside = |pc: usize| {
            let owner = [here, own, caller]
                .into_iter()
                .filter(|&start| start <= pc && pc < start + 4096)
                .max();
            owner == Some(here) || owner == Some(own)
        };
        (stack_above(&inside), local)
    }

    #[test]
    fn stack_above_ends_where_the_first_frame_not_accepted_begins() {
        let marker = 0u64;
        let caller_local = core::hint::black_box(&marker) as *const u64 as usize;
        let caller = stack_above_ends_where_the_first_frame_not_accepted_begins as fn() as usize;
        let (top, callee_local) = above_this_frame(caller);
        let top = top.expect("the walk leaves the accepted frames");
        assert!(
            callee_local < top && top <= caller_local,
            "{callee_local:#x} < {top:#x} <= {caller_local:#x}"
        );
        assert_eq!(stack_above(&|_| true), None);
    }

    #[inline(never)]
    fn level(n: usize, cached: bool) -> Backtrace {
        let bt = if n == 0 {
            let mut bt = Backtrace::EMPTY;
            Backtrace::capture_into(0, cached, &mut bt);
            bt
        } else {
            level(n - 1, cached)
        };
        core::hint::black_box(bt)
    }

    #[test]
    fn cached_captures_match_the_unwinders() {
        for round in 0..20 {
            for depth in [0, 3, 9, 30] {
                let (fast, slow) = (level(depth, true), level(depth, false));
                // Every frame agrees but the one in this function (two call sites).
                let at_test = depth + 1;
                assert_eq!(fast.len, slow.len, "round {round}, depth {depth}");
                for (i, (f, s)) in fast.frames().iter().zip(slow.frames()).enumerate() {
                    assert!(
                        i == at_test || f == s,
                        "round {round}, depth {depth}, frame {i}"
                    );
                }
                assert!(slow.len as usize >= (depth + 1).min(MAX_FRAMES));
            }
        }
        // And the cache did the fast walks: it knows every frame but the last one kept.
        let mut bt = Backtrace::EMPTY;
        for _ in 0..core::hint::black_box(3) {
            // The third time through this call site, its frame is known too.
            bt = level(9, true);
        }
        for &pc in &bt.frames()[..bt.frames().len() - 1] {
            assert!(unwind_cache::knows(pc), "{pc:#x} not in the cache");
        }
    }

    #[test]
    fn capture_names_the_caller_and_its_module() {
        let bt = inner();
        assert!(bt.len >= 2, "{} frames", bt.len);
        let loc = locate(call_site(bt.frames()[0])).expect("a module");
        assert!(!loc.module.is_empty());
        assert!(bt.frames()[0] > loc.base);
    }
}
