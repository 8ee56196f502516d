//! The OS layer: the only module that calls mmap, munmap, madvise, futex, clock and write.
//!
//! Contract for callers:
//! - sizes and addresses passed to `map_aligned`, `unmap`, `purge` are multiples of the OS page
//!   size (`page_size()`, read at run time: 4, 16 and 64 KiB pages exist);
//! - failures come back as `None` / `false`, never as a panic, and nothing here allocates;
//! - fresh mappings and purged ranges read as zero.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The OS page size, read once with `sysconf` and cached.
#[inline]
pub fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions and does not allocate.
    let queried = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = if queried > 0 && (queried as usize).is_power_of_two() {
        queried as usize
    } else {
        4096
    };
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Rounds `n` up to a multiple of `align` (a power of two), or `None` on overflow.
#[inline]
pub const fn align_up(n: usize, align: usize) -> Option<usize> {
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Reserves and commits `size` bytes of zeroed read-write memory whose start is a multiple of
/// `align` (a power of two at least the page size). Returns `None` when the OS refuses.
pub fn map_aligned(size: usize, align: usize) -> Option<NonNull<u8>> {
    if align <= page_size() {
        // Every mapping is page aligned: no over-reserve, no trim.
        return map(size, ptr::null_mut(), 0);
    }
    if let Some(p) = map_in_own_range(size, align) {
        return Some(p);
    }
    map_over_reserved(size, align)
}

/// Larder's own address range. The kernel places mappings top-down from below the stack (thread
/// stacks, libraries, other allocators' reservations), so a range far below that is free for
/// years of a process's life: segments placed upward in it from a cursor cost one mmap each,
/// never collide with each other (each thread claims its range by moving the cursor first), and
/// never with the kernel's placements. The base varies with ASLR over 1 TiB; the range starts
/// above the shadow memory of AddressSanitizer (which ends at 16 TiB) and below where PIE
/// programs and their brk heap load.
const OWN_RANGE_BASE: usize = 20 << 40;
const OWN_RANGE_SPREAD: usize = 1 << 40;
const OWN_RANGE_END: usize = 64 << 40;
/// Claims in a row that found the range taken after which larder stops trying it.
const OWN_RANGE_MISSES_MAX: u32 = 8;
/// Mappings larger than this come from the kernel: they are huge blocks, unmapped when freed,
/// and the cursor never moves back, so they would use the range up.
const OWN_RANGE_CLAIM_MAX: usize = 64 << 20;
/// The next free address of the own range (0: not chosen yet; `usize::MAX`: given up).
static OWN_RANGE_NEXT: AtomicUsize = AtomicUsize::new(0);
static OWN_RANGE_MISSES: AtomicU32 = AtomicU32::new(0);

fn own_range_start() -> usize {
    // Two addresses ASLR randomises independently (a static of the library, the stack).
    let local = 0u8;
    let seed = (&OWN_RANGE_NEXT as *const AtomicUsize as usize)
        ^ (&local as *const u8 as usize).rotate_left(29);
    let spread = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 24;
    OWN_RANGE_BASE + ((spread % OWN_RANGE_SPREAD) & !((4 << 20) - 1))
}

fn map_in_own_range(size: usize, align: usize) -> Option<NonNull<u8>> {
    let claimed = align_up(size, align)?;
    if claimed > OWN_RANGE_CLAIM_MAX {
        return None;
    }
    let mut next = OWN_RANGE_NEXT.load(Ordering::Relaxed);
    let mut wrapped = false;
    let start = loop {
        if next == usize::MAX {
            return None;
        }
        let start = align_up(if next == 0 { own_range_start() } else { next }, align)?;
        let end = start.checked_add(claimed)?;
        if end > OWN_RANGE_END {
            // The range is used up (a process that maps and frees for weeks): start again
            // from its base, where most spans have long been freed; taken ones are skipped.
            if wrapped {
                return None;
            }
            wrapped = true;
            match OWN_RANGE_NEXT.compare_exchange(next, 0, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => next = 0,
                Err(now) => next = now,
            }
            continue;
        }
        match OWN_RANGE_NEXT.compare_exchange_weak(next, end, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => break start,
            Err(now) => next = now,
        }
    };
    // MAP_FIXED_NOREPLACE fails rather than clobber a mapping someone else placed there; a
    // kernel older than 4.17 takes it as a plain hint and may answer elsewhere.
    let Some(p) = map(size, start as *mut u8, libc::MAP_FIXED_NOREPLACE) else {
        // (`map` returns straight after a failed mmap, so errno is still mmap's.)
        if errno() == libc::EEXIST {
            // Someone else's mapping: the cursor stays past it.
            own_range_missed();
        } else {
            // Out of memory or address space: give the claim back if nobody claimed after it.
            let _ = OWN_RANGE_NEXT.compare_exchange(
                start + claimed,
                start,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        return None;
    };
    if p.as_ptr() as usize != start {
        unmap(p.as_ptr(), size);
        own_range_missed();
        return None;
    }
    OWN_RANGE_MISSES.store(0, Ordering::Relaxed);
    Some(p)
}

fn own_range_missed() {
    if OWN_RANGE_MISSES.fetch_add(1, Ordering::Relaxed) + 1 >= OWN_RANGE_MISSES_MAX {
        OWN_RANGE_NEXT.store(usize::MAX, Ordering::Relaxed);
    }
}

/// Whether a mapping of larder's that ends at `end` may grow in place to `new_end`: when the
/// own range's next claim starts at `end`, the claim moves past `new_end` first (false if
/// another thread claimed it meanwhile), so that no segment is later placed where the mapping
/// grew (which would make that claim fail, and enough such failures end the own range).
pub fn may_grow_in_place(end: usize, new_end: usize) -> bool {
    OWN_RANGE_NEXT.load(Ordering::Relaxed) != end
        || OWN_RANGE_NEXT
            .compare_exchange(end, new_end, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Copies this process's bytes at `addr` into `buf` with `process_vm_readv`: an unreadable page
/// ends the copy short instead of faulting. The bytes copied, or `Err(errno)` when none were
/// (`EFAULT`: `addr` itself is unreadable; `EPERM`, `ENOSYS`, `EACCES`: the call is refused,
/// as a seccomp filter may).
pub(crate) fn copy_own(addr: usize, buf: &mut [u8]) -> Result<usize, libc::c_int> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: reads this process's memory into `buf` (at most its length); the kernel checks
    // the source range and copies only what is mapped and readable.
    let got = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    usize::try_from(got).map_err(|_| errno())
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

fn map_over_reserved(size: usize, align: usize) -> Option<NonNull<u8>> {
    let over = size.checked_add(align)?;
    let raw = map(over, ptr::null_mut(), 0)?;
    let start = raw.as_ptr() as usize;
    let aligned = align_up(start, align)?;
    let head = aligned - start;
    let tail = over - head - size;
    if head > 0 {
        unmap(raw.as_ptr(), head);
    }
    if tail > 0 {
        unmap((aligned + size) as *mut u8, tail);
    }
    NonNull::new(aligned as *mut u8)
}

fn map(size: usize, hint: *mut u8, extra_flags: libc::c_int) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping without MAP_FIXED (MAP_FIXED_NOREPLACE refuses to
    // replace anything) touches no existing memory; the result is checked for MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            hint.cast(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | extra_flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    NonNull::new(p.cast())
}

/// Gives a range back to the OS entirely.
pub fn unmap(addr: *mut u8, size: usize) {
    // SAFETY: callers pass a page-aligned range that larder mapped and no longer uses; munmap of
    // such a range cannot affect memory outside it.
    unsafe {
        libc::munmap(addr.cast(), size);
    }
}

/// Releases the physical memory behind a range while keeping it mapped: the next touch reads
/// zeros. RSS falls at once (MADV_DONTNEED, not MADV_FREE, whose effect waits for memory
/// pressure and so would hide from users watching RSS).
pub fn purge(addr: *mut u8, size: usize) -> bool {
    if size == 0 {
        return true;
    }
    // SAFETY: callers pass a page-aligned range inside a mapping larder owns and whose contents
    // it no longer needs.
    unsafe { libc::madvise(addr.cast(), size, libc::MADV_DONTNEED) == 0 }
}

/// Asks the kernel to back a range with transparent huge pages (2 MiB on x86-64), or no longer
/// to. A block of megabytes whose every page is written then faults once per 2 MiB instead of
/// once per 4 KiB, and costs fewer TLB misses. Advice only: false when the kernel has no THP.
pub fn advise_huge_pages(addr: *mut u8, size: usize, huge: bool) -> bool {
    let advice = if huge {
        libc::MADV_HUGEPAGE
    } else {
        libc::MADV_NOHUGEPAGE
    };
    // SAFETY: callers pass a page-aligned range inside a mapping larder owns; the advice changes
    // how the kernel backs it, never its contents.
    unsafe { libc::madvise(addr.cast(), size, advice) == 0 }
}

/// Extends the mapping `[addr, addr + old_size)` to `new_size` bytes without moving it; false
/// when the address space after it is taken.
pub fn grow_in_place(addr: *mut u8, old_size: usize, new_size: usize) -> bool {
    // SAFETY: without MREMAP_MAYMOVE the kernel either extends the mapping in place into free
    // address space or fails; the existing contents are untouched either way.
    let p = unsafe { libc::mremap(addr.cast(), old_size, new_size, 0) };
    p == addr.cast()
}

/// Moves the pages of the mapping `[from, from + old_size)` to `to`, extended to `new_size`
/// bytes, replacing whatever larder had mapped at `[to, to + new_size)`. The kernel moves page
/// table entries: nothing is copied and nothing faults in again. The old range is unmapped.
/// False when the kernel refuses: the old range is then intact, but the destination may already
/// have been unmapped (Linux unmaps it before it checks the move), so the caller must not
/// unmap it again.
pub fn move_mapping(from: *mut u8, old_size: usize, new_size: usize, to: *mut u8) -> bool {
    // SAFETY: callers pass a whole mapping larder owns at `from` and a reservation larder owns
    // at `to`, neither overlapping the other; with MREMAP_FIXED the kernel only replaces the
    // destination range, and on failure leaves the old range untouched.
    let p = unsafe {
        libc::mremap(
            from.cast(),
            old_size,
            new_size,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            to.cast::<libc::c_void>(),
        )
    };
    p == to.cast()
}

/// Milliseconds on a monotonic clock (for purge delays).
pub fn now_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Sleeps until `word` may have changed from `expected`, or `timeout_ms` passes.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout_ms: Option<u64>) {
    let ts;
    let ts_ptr = match timeout_ms {
        Some(ms) => {
            ts = libc::timespec {
                tv_sec: (ms / 1000) as libc::time_t,
                tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
            };
            &ts as *const libc::timespec
        }
        None => ptr::null(),
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which lives as long as the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts_ptr,
        );
    }
}

/// Wakes up to `count` threads waiting on `word`.
pub fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: FUTEX_WAKE only uses the address of `word` as a key.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            count,
        );
    }
}

/// Writes bytes to a file descriptor with raw write(2), retrying short writes. Never allocates.
pub fn write_fd(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the buffer is valid for `bytes.len()` bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n <= 0 {
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Resident set size of this process in bytes (from /proc/self/statm), or 0 if unknown.
pub fn resident_bytes() -> usize {
    let mut buf = [0u8; 128];
    // SAFETY: the path is a NUL-terminated literal; the buffer is valid for its length; the
    // descriptor is closed before returning.
    let n = unsafe {
        let fd = libc::open(
            c"/proc/self/statm".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return 0;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    if n <= 0 {
        return 0;
    }
    // statm: "size resident shared ..." in pages; the second field is RSS.
    let mut fields = buf[..n as usize].split(|&b| b == b' ');
    fields.next();
    let resident = fields.next().map(parse_decimal).unwrap_or(0);
    resident * page_size()
}

/// What kind of memory holds an address larder does not own, for reporting a bad free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mapping {
    /// A thread's stack: the main stack, or the mapping that holds the caller's stack pointer.
    Stack,
    /// A file mapped by the loader (a program's or library's code or data, globals among them),
    /// other than the dynamic loader itself, whose early allocations programs may free.
    Module,
    /// Anonymous memory (another allocator's, the loader's, or plain mmap), or unknown.
    Other,
    /// Not mapped at all.
    Unmapped,
}

/// Finds the mapping that holds `addr` in /proc/self/maps (read with raw system calls into a
/// stack buffer: no allocation). `stack_pointer` is an address on the calling thread's stack.
pub fn mapping_of(addr: usize, stack_pointer: usize) -> Mapping {
    // SAFETY: the path is a NUL-terminated literal.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Mapping::Other;
    }
    let mut buf = [0u8; 4096];
    let mut filled = 0;
    let mut found = Mapping::Unmapped;
    'read: loop {
        // SAFETY: the buffer is valid for the remaining length; `fd` is open.
        let n = unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
        if n <= 0 {
            break;
        }
        filled += n as usize;
        while let Some(end) = buf[..filled].iter().position(|&b| b == b'\n') {
            if let Some(kind) = classify_maps_line(&buf[..end], addr, stack_pointer) {
                found = kind;
                break 'read;
            }
            buf.copy_within(end + 1..filled, 0);
            filled -= end + 1;
        }
        if filled == buf.len() {
            // A line longer than the buffer (a very long path): drop it.
            filled = 0;
        }
    }
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    found
}

/// The kind of one /proc/self/maps line's mapping, if it holds `addr`.
fn classify_maps_line(line: &[u8], addr: usize, stack_pointer: usize) -> Option<Mapping> {
    let dash = line.iter().position(|&b| b == b'-')?;
    let space = line.iter().position(|&b| b == b' ')?;
    let start = parse_hex(&line[..dash]);
    let end = parse_hex(line.get(dash + 1..space)?);
    if !(start..end).contains(&addr) {
        return None;
    }
    // The path is the sixth field: after five fields separated by runs of spaces.
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    let path = fields.nth(5).unwrap_or(&[]);
    Some(
        if path == b"[stack]" || (start..end).contains(&stack_pointer) {
            Mapping::Stack
        } else if path.starts_with(b"/") && !contains(path, b"/ld-linux") {
            Mapping::Module
        } else {
            Mapping::Other
        },
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A hexadecimal number as /proc/self/maps writes addresses (lower-case, no prefix).
pub(crate) fn parse_hex(digits: &[u8]) -> usize {
    digits.iter().fold(0usize, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => 0,
        };
        acc.wrapping_mul(16).wrapping_add(d as usize)
    })
}

fn parse_decimal(digits: &[u8]) -> usize {
    digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0usize, |acc, &b| {
            acc.wrapping_mul(10).wrapping_add((b - b'0') as usize)
        })
}

/// Whether the calling thread is the process's initial thread (its thread id is the process
/// id). One gettid(2) and one getpid(2) system call: for fault injection's `thread:` filter, not
/// for a fast path.
pub fn is_initial_thread() -> bool {
    // SAFETY: gettid and getpid take no arguments and cannot fail.
    unsafe { libc::gettid() == libc::getpid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn aligned_mapping_is_aligned_zeroed_and_purgeable() {
        let align = 4 << 20;
        let size = 2 * page_size();
        let p = map_aligned(size, align).expect("mmap");
        assert_eq!(p.as_ptr() as usize % align, 0);
        // SAFETY: the mapping is `size` bytes, readable and writable.
        unsafe {
            assert_eq!(*p.as_ptr(), 0);
            p.as_ptr().write_bytes(0xAB, size);
            assert!(purge(p.as_ptr(), size));
            assert_eq!(*p.as_ptr().add(size - 1), 0);
        }
        unmap(p.as_ptr(), size);
    }

    #[test]
    fn impossible_mapping_fails_without_panic() {
        assert!(map_aligned(usize::MAX - (8 << 20), 4 << 20).is_none());
        assert!(map_aligned(1 << 62, 4 << 20).is_none());
    }

    #[test]
    fn maps_tell_stack_module_and_heap_apart() {
        let local = 0u64;
        let here = &local as *const u64 as usize;
        assert_eq!(mapping_of(here, here), Mapping::Stack);
        static GLOBAL: u64 = 7;
        let global = &GLOBAL as *const u64 as usize;
        assert_eq!(mapping_of(global, here), Mapping::Module);
        let p = map_aligned(page_size(), page_size()).expect("mmap");
        assert_eq!(mapping_of(p.as_ptr() as usize, here), Mapping::Other);
        unmap(p.as_ptr(), page_size());
    }

    #[test]
    fn rss_is_readable() {
        assert!(resident_bytes() > 0);
    }
}
