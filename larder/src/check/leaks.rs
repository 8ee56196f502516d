//! Leaks at exit, found as LeakSanitizer and Boehm's leak mode find them: a conservative mark
//! from the roots (every readable and writable mapping that is not larder's heap: stacks, the
//! data and bss of every module, TLS) through the live blocks; a pointer anywhere inside a block
//! keeps it. Blocks left unmarked are lost: "definitely" when no other lost block points to
//! them, "indirectly" when one does (in a cycle of lost blocks, the first found leads, as
//! Valgrind's cliques do). Reports are grouped by allocation stack, definitely lost first,
//! largest first.
//!
//! Live blocks are kept in tables, a shard for each thread (a lock each; the exit checks also
//! walk them to check the redzones of blocks never freed); the scan's own tables are
//! mmap'd (the heap is not used, and the tables are left out of the roots).

use super::block::Header;
use super::report::Record;
use crate::options;
use crate::report::Writer;
use crate::sync::Lock;
use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::Ordering::{Acquire, Relaxed};

/// A shard's live blocks: a table of header addresses in which a block keeps its place (its
/// header records the index), so that taking a block out touches the table and its own header
/// only. A doubly linked list through the headers wrote both neighbours' headers on every
/// free: two live blocks anywhere in the heap, cold, and the lock's release waited for those
/// stores. Free places are chained through the table (`FREE_TAG` set, the next free place
/// above it) and reused last out first, so the places in use stay few and warm.
struct List {
    /// The shard's table in `TABLES` (null until its first block); see `List::place`.
    places: *mut usize,
    /// Places handed out so far, in use or free.
    used: usize,
    /// The first free place below `used`, plus one (0: none).
    free: usize,
    count: usize,
}

// SAFETY: the table is touched only under the shard's lock.
unsafe impl Send for List {}

/// One lock and table per shard, a cache line each, so that threads allocating at once rarely
/// meet on a lock (one global list made every malloc and free of every thread take the same
/// lock).
#[repr(align(64))]
struct Shard(Lock<List>);

const SHARDS: usize = 64;
/// Live blocks a shard can hold at once (its share of the reservation: 32 MiB, touched only
/// as it fills). A block past it is not listed (nor checked at exit); 2^28 live blocks in all.
const PLACES: usize = 1 << 22;
/// A free place's tag (headers are 16-byte aligned, so a header's address never has it).
const FREE_TAG: usize = 1;
/// The header's `place` of a block that is in no table.
pub const UNLISTED: usize = usize::MAX;

static LIVE: [Shard; SHARDS] = [const {
    Shard(Lock::new(List {
        places: core::ptr::null_mut(),
        used: 0,
        free: 0,
        count: 0,
    }))
}; SHARDS];
/// Every shard's table, one reservation (so that the leak mark leaves out one range).
static TABLES: AtomicPtr<usize> = AtomicPtr::new(core::ptr::null_mut());
const TABLES_BYTES: usize = SHARDS * (PLACES + LINE) * core::mem::size_of::<usize>();

/// The shard a thread lists its blocks in: its own (by `thread_number`), so that the shard's
/// lock and table lines stay in its core's cache; a block freed by another thread is taken out
/// of the shard it was listed in (its `place` says which).
fn thread_shard() -> usize {
    super::tls::thread_number() % SHARDS
}

/// A header's `place`: its shard and its index in the shard's table.
fn place_of(shard: usize, index: usize) -> usize {
    shard * PLACES + index
}

/// The shard and index of a `place` (not `UNLISTED`).
fn shard_and_index(place: usize) -> (usize, usize) {
    (place / PLACES, place % PLACES)
}

/// The tables' mapping (empty until made): no root of the leak mark, since it points to
/// every live block.
pub fn mapped_range() -> core::ops::Range<usize> {
    match TABLES.load(Acquire) as usize {
        0 => 0..0,
        p => p..p + TABLES_BYTES,
    }
}

/// Places in a cache line.
const LINE: usize = 8;

impl List {
    /// Where place `i` lies: each shard's table is its own run of the reservation (a thread
    /// fills its shard's pages one after the other; interleaved a line at a time, one thread's
    /// places lay a page apart, a page of memory for every eight live blocks), the runs a line
    /// longer than the table, so that shards' first places do not all share one cache set.
    fn place(&self, i: usize) -> *mut usize {
        // Inside the reservation for `i < PLACES`, which callers keep to.
        self.places.wrapping_add(i)
    }

    /// The headers in the table, in place order.
    fn headers(&self) -> impl Iterator<Item = *const Header> + '_ {
        (0..self.used).filter_map(move |i| {
            // SAFETY: places below `used` were written under the lock the caller holds.
            let entry = unsafe { self.place(i).read() };
            (entry & FREE_TAG == 0).then_some(entry as *const Header)
        })
    }
}

/// Adds a new block's header to the live blocks.
pub fn insert(h: *mut Header) {
    let first = thread_shard();
    // A thread whose shard is full lists its blocks in the next ones.
    for shard in (first..SHARDS).chain(0..first) {
        match insert_in(shard, h) {
            Listed::Yes => return,
            Listed::Full => continue,
            Listed::NoMemory => break,
        }
    }
    // SAFETY: `h` is a fresh header this thread owns.
    unsafe { (*h).place = UNLISTED };
}

enum Listed {
    Yes,
    Full,
    NoMemory,
}

fn insert_in(shard: usize, h: *mut Header) -> Listed {
    let mut list = LIVE[shard].0.lock();
    if list.places.is_null() {
        let Some(all) = super::depot::mapped(&TABLES, TABLES_BYTES) else {
            return Listed::NoMemory;
        };
        // SAFETY: the shard's table lies inside the reservation.
        list.places = unsafe { all.add(shard * (PLACES + LINE)) };
    }
    let index = if list.free != 0 {
        let index = list.free - 1;
        // SAFETY: a free place below `used`, holding the next free place (tagged).
        list.free = unsafe { list.place(index).read() } >> 1;
        index
    } else if list.used < PLACES {
        list.used += 1;
        list.used - 1
    } else {
        return Listed::Full;
    };
    // SAFETY: `index < PLACES`, inside the reservation (`List::place`); `h` is a fresh header
    // this thread owns.
    unsafe {
        list.place(index).write(h as usize);
        (*h).place = place_of(shard, index);
    }
    list.count += 1;
    Listed::Yes
}

/// Takes a block that stops being live out of the live blocks.
pub fn remove(h: *mut Header) {
    // SAFETY: the caller owns the block (it won the block's state), so `place` is stable.
    let place = unsafe { (*h).place };
    if place == UNLISTED {
        return;
    }
    let (shard, index) = shard_and_index(place);
    let mut list = LIVE[shard].0.lock();
    // SAFETY: `index` was handed to `h` by `insert` in this shard and is still its own.
    unsafe { list.place(index).write(list.free << 1 | FREE_TAG) };
    list.free = index + 1;
    list.count -= 1;
}

/// Calls `f` with each block still live (its state `LIVE`), one shard at a time under the
/// shard's lock: a block freed meanwhile waits in its free until its shard is done, and `f`
/// must not allocate or free from check mode.
pub fn for_each_live(mut f: impl FnMut(&Header)) {
    for shard in &LIVE {
        let list = shard.0.lock();
        for h in list.headers() {
            // SAFETY: the table's headers are blocks' not yet given back to the core (a free
            // takes a block out of the table before the quarantine can release it), unchanged
            // while the lock is held.
            let header = unsafe { &*h };
            if header.state() == super::block::LIVE {
                f(header);
            }
        }
    }
}

/// Fork handlers: every shard's lock is held across `fork`.
pub fn lock_for_fork() {
    for shard in &LIVE {
        shard.0.lock_for_fork();
    }
}

/// Releases the locks taken by `lock_for_fork`, in the parent or the child.
pub fn unlock_after_fork() {
    for shard in LIVE.iter().rev() {
        // SAFETY: called only after `lock_for_fork` by the forking thread (or its child copy).
        unsafe { shard.0.unlock_after_fork() };
    }
}

const PAGE: usize = 4096;
/// Whether `process_vm_readv` was refused once (it will be again).
static COPY_REFUSED: AtomicBool = AtomicBool::new(false);

const UNMARKED: u8 = 0;
const REACHABLE: u8 = 1;
const DEFINITE: u8 = 2;
const INDIRECT: u8 = 3;

#[derive(Clone, Copy)]
struct Entry {
    start: usize,
    end: usize,
    stack: u32,
    state: u8,
}

#[derive(Clone, Copy)]
struct Group {
    stack: u32,
    blocks: u64,
    bytes: u64,
    definite: bool,
}

/// Anonymous memory for the scan's tables, unmapped when dropped.
struct Mapped {
    addr: *mut u8,
    len: usize,
}

impl Mapped {
    fn new(len: usize) -> Option<Mapped> {
        let len = len.max(1).next_multiple_of(PAGE);
        // SAFETY: an anonymous private mapping with no address hint.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        (p != libc::MAP_FAILED).then_some(Mapped {
            addr: p.cast(),
            len,
        })
    }

    fn slice<T>(&mut self, n: usize) -> &mut [T] {
        // SAFETY: the mapping holds `len >= n * size_of::<T>()` zeroed bytes (callers size it
        // so), page-aligned, and zero is a valid value of the plain types used here.
        unsafe { core::slice::from_raw_parts_mut(self.addr.cast(), n) }
    }

    /// The mapping's address range.
    fn range(&self) -> core::ops::Range<usize> {
        self.addr as usize..self.addr as usize + self.len
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping was made in `new` and is unmapped once.
        unsafe { libc::munmap(self.addr.cast(), self.len) };
    }
}

/// The block containing `addr`, by binary search over blocks sorted by start.
fn find(blocks: &[Entry], addr: usize) -> Option<usize> {
    let i = blocks.partition_point(|b| b.start <= addr);
    (i > 0 && addr < blocks[i - 1].end).then(|| i - 1)
}

struct Marker<'a> {
    /// The lowest block start and the highest block end: most words scanned lie outside.
    low: usize,
    high: usize,
    blocks: &'a mut [Entry],
    work: &'a mut [usize],
    top: usize,
    /// Where `scan_copied` copies memory to (`COPY_BYTES`, mmap'd: no root).
    copy: &'a mut [u8],
}

/// How much `scan_copied` copies at a time: one system call per 64 KiB of roots (one per
/// 4 KiB page took 43,000 calls at a CPython process's exit).
const COPY_BYTES: usize = 64 << 10;

impl Marker<'_> {
    /// Marks every block a word of `[start, end)` points into with `state` (only unmarked
    /// ones, or, with `state == INDIRECT`, definitely lost ones other than `leader`).
    /// The words are read in place: `[start, end)` must stay readable.
    fn scan(&mut self, start: usize, end: usize, state: u8, leader: usize) {
        let mut p = start.next_multiple_of(8);
        while p + 8 <= end {
            // SAFETY: the caller passes readable memory: a block live when the check listed it
            // (a core block's free waits for the shards' locks the check holds, a guarded
            // block's for the guard pool it holds still), or, where `process_vm_readv` is
            // refused, a root mapping, which only a thread still running could unmap meanwhile.
            let v = unsafe { (p as *const usize).read() };
            p += 8;
            self.mark_word(v, state, leader);
        }
    }

    /// As `scan`, for a root mapping, which may go away while it is scanned (a thread still
    /// running at exit may unmap it, and so may larder's purger thread a span it gives back).
    /// The bytes are copied with `process_vm_readv`, which reports an unreadable page as a
    /// short copy instead of a fault: such a page is not scanned (memory given back holds no
    /// roots), and the scan goes on at the next page.
    fn scan_copied(&mut self, start: usize, end: usize, state: u8, leader: usize) {
        let mut p = start.next_multiple_of(8);
        while p + 8 <= end {
            let want = (end - p).min(self.copy.len()) & !7;
            let copied = if COPY_REFUSED.load(Relaxed) {
                Err(libc::EPERM)
            } else {
                crate::os::copy_own(p, &mut self.copy[..want])
            };
            let got = match copied {
                Ok(got) => got & !7,
                Err(libc::EPERM | libc::ENOSYS | libc::EACCES) => {
                    // The call is refused (a seccomp filter, as some sandboxes set; asked once).
                    // The root is then read in place, or nothing would be scanned and every
                    // block look lost; it may be unmapped meanwhile, and the fault would end the
                    // process.
                    COPY_REFUSED.store(true, Relaxed);
                    self.scan(p, end, state, leader);
                    return;
                }
                Err(_) => 0,
            };
            for at in (0..got).step_by(8) {
                let word = &self.copy[at..at + 8];
                let v = usize::from_ne_bytes(word.try_into().unwrap_or_default());
                self.mark_word(v, state, leader);
            }
            p = if got < want {
                // The page at `p + got` is unreadable: go on after it.
                (p + got + 1).next_multiple_of(PAGE)
            } else {
                p + want
            };
        }
    }

    /// Marks the block `v` points into, if any (see `scan`).
    fn mark_word(&mut self, v: usize, state: u8, leader: usize) {
        if v < self.low || v >= self.high {
            return;
        }
        let Some(i) = find(self.blocks, v) else {
            return;
        };
        let b = &mut self.blocks[i];
        let take = b.state == UNMARKED || (state == INDIRECT && b.state == DEFINITE && i != leader);
        if take {
            b.state = state;
            self.work[self.top] = i;
            self.top += 1;
        }
    }

    fn drain(&mut self, state: u8, leader: usize) {
        while self.top > 0 {
            self.top -= 1;
            let b = self.blocks[self.work[self.top]];
            self.scan(b.start, b.end, state, leader);
        }
    }
}

/// Reads /proc/self/maps into `buf`; the length read.
fn read_maps(buf: &mut [u8]) -> usize {
    // SAFETY: a NUL-terminated literal path; the descriptor is closed below.
    let fd = unsafe {
        libc::open(
            c"/proc/self/maps".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return 0;
    }
    let mut len = 0;
    while len < buf.len() {
        // SAFETY: the buffer's tail is writable.
        let n = unsafe { libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len) };
        if n <= 0 {
            break;
        }
        len += n as usize;
    }
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    len
}

/// Where the calling thread's stack starts holding roots.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// Called by the program (`larder::check::at_exit` at the end of `main`): its frames are
    /// live, from `frames_from` (an address in `at_exit`'s frame) up. The checks' own frames
    /// below are not: in a debug build the slots of the leak search's frames that it never
    /// writes held node addresses the exit's redzone checks had left there just before, which
    /// kept a dropped `Rc` cycle "reachable".
    Program { frames_from: usize },
    /// Called from the library's `.fini_array` by the exit machinery (`exit`, ld.so's
    /// `_dl_fini`): only the frames above the outermost of libc's, ld.so's and this library's
    /// are the program's. The slots of the exit machinery's frames that it never writes still
    /// hold whatever the program's deeper calls left there: with nodes of 64 KiB and more the
    /// large-block path of malloc left a node's address in an unwritten slot of `_dl_fini`'s
    /// frame, and that stale copy kept the indirectly lost nodes "reachable".
    ExitMachinery,
}

/// The lowest stack address of the calling thread that holds roots.
fn stack_roots_start(caller: Caller) -> usize {
    let marker = 0usize;
    let stack_pointer = core::hint::black_box(&marker) as *const usize as usize;
    if let Caller::Program { frames_from } = caller {
        return frames_from.max(stack_pointer);
    }
    let module_of = |pc: usize| super::backtrace::locate(pc).map(|l| l.base);
    let own = module_of(stack_roots_start as fn(Caller) -> usize as usize);
    let libc = module_of(libc::exit as unsafe extern "C" fn(core::ffi::c_int) -> ! as usize);
    // SAFETY: getauxval has no preconditions; AT_BASE is ld.so's load base.
    let loader = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
    let exit_machinery = |pc: usize| {
        let m = module_of(pc);
        m.is_some() && (m == own || m == libc || m == Some(loader))
    };
    super::backtrace::stack_above(&exit_machinery)
        .unwrap_or(stack_pointer)
        .max(stack_pointer)
}

/// Runs the leak check and reports what is lost; holds every shard's lock and the guard pool
/// throughout, so threads still allocating or freeing wait. Whether any block was lost
/// (definitely or indirectly).
pub fn check(caller: Caller) -> bool {
    let mut shards: [Option<crate::sync::LockGuard<'static, List>>; SHARDS] =
        [const { None }; SHARDS];
    for (guard, shard) in shards.iter_mut().zip(&LIVE) {
        *guard = Some(shard.0.lock());
    }
    // Guarded blocks listed below stay mapped while they are read (a thread still running may
    // free one; its free then waits for the pool before making its pages fault).
    let pool = super::guard::hold();
    let n: usize = shards
        .iter()
        .flatten()
        .map(|list| list.count)
        .sum::<usize>()
        + pool.live_count();
    let Some(mut table) = Mapped::new(n * core::mem::size_of::<Entry>()) else {
        return false;
    };
    let Some(mut work_map) = Mapped::new(n * core::mem::size_of::<usize>()) else {
        return false;
    };
    let Some(mut maps_map) = Mapped::new(4 << 20) else {
        return false;
    };
    let Some(mut copy_map) = Mapped::new(COPY_BYTES) else {
        return false;
    };
    // The scan's own tables hold block addresses: they are no roots; nor are check mode's other
    // mappings.
    let [depot_index, depot_store] = super::depot::mapped_ranges();
    let [guard_pool, guard_slots] = super::guard::mapped_ranges();
    let own = [
        table.range(),
        work_map.range(),
        maps_map.range(),
        copy_map.range(),
        depot_index,
        depot_store,
        super::quarantine::mapped_range(),
        mapped_range(),
        crate::segment_map::own_range(),
        guard_pool,
        guard_slots,
    ];
    let blocks: &mut [Entry] = table.slice(n);
    let mut filled = 0;
    for list in shards.iter().flatten() {
        for h in list.headers().take(n - filled) {
            // SAFETY: the shards' headers are live blocks', unchanged while the locks are held.
            let header = unsafe { &*h };
            let start = header.user();
            blocks[filled] = Entry {
                start,
                end: start + header.size.max(1),
                stack: header.alloc_stack,
                state: UNMARKED,
            };
            filled += 1;
        }
    }
    super::guard::for_each_live(|start, size, stack| {
        if filled < n {
            blocks[filled] = Entry {
                start,
                end: start + size.max(1),
                stack,
                state: UNMARKED,
            };
            filled += 1;
        }
    });
    let blocks = &mut blocks[..filled];
    blocks.sort_unstable_by_key(|b| b.start);
    let maps_len_max = maps_map.len;
    let maps: &mut [u8] = maps_map.slice(maps_len_max);
    let maps_len = read_maps(maps);
    let (low, high) = (
        blocks.first().map_or(0, |b| b.start),
        blocks.iter().map(|b| b.end).max().unwrap_or(0),
    );
    let mut marker = Marker {
        low,
        high,
        blocks,
        work: work_map.slice(n),
        top: 0,
        copy: copy_map.slice(COPY_BYTES),
    };
    // Spans larder's cache holds: free memory, whose stale bytes are no roots.
    let mut cached_all = [const { 0..0 }; crate::cache::SPANS_MAX];
    let count = crate::cache::spans(&mut cached_all);
    let cached = &mut cached_all[..count];
    cached.sort_unstable_by_key(|r| r.start);
    let in_cached_span = |page: usize| {
        let i = cached.partition_point(|r| r.start <= page);
        i > 0 && page < cached[i - 1].end
    };
    let stack_start = stack_roots_start(caller);
    for line in maps[..maps_len].split(|&c| c == b'\n') {
        let mut fields = line.split(|&c| c == b' ').filter(|f| !f.is_empty());
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        let path = fields.nth(3).unwrap_or(b"");
        if perms.len() < 2 || perms[0] != b'r' || perms[1] != b'w' || path.starts_with(b"/dev/") {
            continue;
        }
        let Some(dash) = range.iter().position(|&c| c == b'-') else {
            continue;
        };
        let (mut start, end) = (
            crate::os::parse_hex(&range[..dash]),
            crate::os::parse_hex(&range[dash + 1..]),
        );
        // On the calling thread's stack only what lies above the stack pointer is live:
        // below it, frames that returned (the program's `main` among them at exit) still
        // hold stale copies of pointers, which made lost blocks look reachable
        // (LeakSanitizer also starts at the stack pointer); see `Caller` for the frames
        // above it that are left out too.
        if (start..end).contains(&stack_start) {
            start = stack_start & !7;
        }
        // Runs of root pages, each scanned at once. Copied: the mapping may be unmapped
        // meanwhile (the listing above is a snapshot, and threads still run).
        let mut run_start = None;
        let mut page = start;
        while page < end {
            let skip_to = own.iter().find(|r| r.contains(&page)).map(|r| r.end);
            let next = skip_to
                .map_or(page + PAGE, |e| e.next_multiple_of(PAGE))
                .min(end);
            let root = skip_to.is_none()
                && !crate::alloc::owns(page as *const u8)
                && !in_cached_span(page);
            match (root, run_start) {
                (true, None) => run_start = Some(page),
                (false, Some(from)) => {
                    marker.scan_copied(from, page, REACHABLE, usize::MAX);
                    marker.drain(REACHABLE, usize::MAX);
                    run_start = None;
                }
                _ => {}
            }
            page = next;
        }
        if let Some(from) = run_start {
            marker.scan_copied(from, end, REACHABLE, usize::MAX);
            marker.drain(REACHABLE, usize::MAX);
        }
    }
    // Each lost block not yet reached from another lost one leads; what it reaches is
    // indirectly lost (a leader reached later from another leader becomes indirect too).
    // (The table may hold fewer than `n`: guarded blocks freed by a thread still running since
    // they were counted are not in it.)
    for i in 0..marker.blocks.len() {
        if marker.blocks[i].state == UNMARKED {
            marker.blocks[i].state = DEFINITE;
            let b = marker.blocks[i];
            marker.scan(b.start, b.end, INDIRECT, i);
            marker.drain(INDIRECT, i);
        }
    }
    let lost = report(marker.blocks);
    drop(shards);
    lost
}

/// Groups lost blocks by kind and allocation stack and reports the groups (definitely lost
/// first, largest first): a `larder-leak v1` record per group and one `larder-leak-summary v1`
/// with the totals in the report file, and the same in words on stderr. With a report file
/// set, stderr gets them only with `LARDER_CHECK_VERBOSE=on`: whoever set the file reads it
/// (`larder run --check` puts them in its summary), and a program whose children must keep
/// stderr clean (tests that fork and compare a child's stderr) stays correct under check mode.
/// Whether any block was lost.
fn report(blocks: &mut [Entry]) -> bool {
    let mut totals = [(0u64, 0u64); 4];
    for b in blocks.iter() {
        totals[b.state as usize].0 += (b.end - b.start) as u64;
        totals[b.state as usize].1 += 1;
    }
    let o = options::get();
    let on_stderr = o.report_file.as_c_str().is_none() || o.check_verbose;
    write_summary_record(&totals);
    if totals[DEFINITE as usize].1 + totals[INDIRECT as usize].1 == 0 {
        return false;
    }
    blocks.sort_unstable_by_key(|b| (b.state, b.stack));
    // Groups: runs of equal (state, stack) among the lost blocks, in a mapped table.
    let Some(mut groups_map) = Mapped::new(blocks.len() * core::mem::size_of::<Group>()) else {
        return true;
    };
    let groups: &mut [Group] = groups_map.slice(blocks.len());
    let mut count = 0;
    let mut i = 0;
    while i < blocks.len() {
        let mut j = i;
        let mut bytes = 0u64;
        while j < blocks.len()
            && blocks[j].state == blocks[i].state
            && blocks[j].stack == blocks[i].stack
        {
            bytes += (blocks[j].end - blocks[j].start) as u64;
            j += 1;
        }
        if blocks[i].state >= DEFINITE {
            groups[count] = Group {
                stack: blocks[i].stack,
                blocks: (j - i) as u64,
                bytes,
                definite: blocks[i].state == DEFINITE,
            };
            count += 1;
        }
        i = j;
    }
    let groups = &mut groups[..count];
    // Definitely lost first (the blocks to fix), then indirectly; each largest first.
    groups.sort_unstable_by_key(|g| (!g.definite, core::cmp::Reverse(g.bytes)));
    let mut w = Writer::new(2);
    for g in groups.iter() {
        let bt = &super::depot::get(g.stack);
        if on_stderr {
            w.str("larder check: LEAK: ");
            w.u64(g.bytes);
            w.str(" bytes in ");
            w.u64(g.blocks);
            w.str(" blocks are ");
            w.str(if g.definite {
                "definitely"
            } else {
                "indirectly"
            });
            w.str(" lost, allocated at:\n");
            super::backtrace::write_frames(&mut w, bt);
            w.flush();
        }
        let mut r = Record::new();
        r.push(b"larder-leak v1 pid=");
        // SAFETY: getpid has no preconditions.
        r.num(unsafe { libc::getpid() } as u64, 10);
        r.push(if g.definite {
            b" kind=definite bytes="
        } else {
            b" kind=indirect bytes="
        });
        r.num(g.bytes, 10);
        r.push(b" blocks=");
        r.num(g.blocks, 10);
        r.frames(b"alloc", Some(bt));
        r.append_to_report_file();
    }
    if !on_stderr {
        return true;
    }
    w.str("larder check: leak summary:");
    for (label, state) in [
        (" definitely lost ", DEFINITE),
        ("; indirectly lost ", INDIRECT),
        ("; still reachable ", REACHABLE),
    ] {
        let (bytes, count) = totals[state as usize];
        w.str(label);
        w.u64(bytes);
        w.str(" bytes in ");
        w.u64(count);
        w.str(" blocks");
    }
    w.str("\n");
    w.flush();
    true
}

/// The totals of the leak search, `larder-leak-summary v1 pid=P definite=BYTES/BLOCKS
/// indirect=BYTES/BLOCKS reachable=BYTES/BLOCKS`, written even when nothing is lost (a clean
/// process says so).
fn write_summary_record(totals: &[(u64, u64); 4]) {
    let mut r = Record::new();
    r.push(b"larder-leak-summary v1 pid=");
    // SAFETY: getpid has no preconditions.
    r.num(unsafe { libc::getpid() } as u64, 10);
    for (label, state) in [
        (b" definite=".as_slice(), DEFINITE),
        (b" indirect=", INDIRECT),
        (b" reachable=", REACHABLE),
    ] {
        let (bytes, count) = totals[state as usize];
        r.push(label);
        r.num(bytes, 10);
        r.push(b"/");
        r.num(count, 10);
    }
    r.append_to_report_file();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::AllocKind;

    /// The headers of `ptrs` that `for_each_live` visits (other tests' blocks left out).
    fn visited(ptrs: &[*mut Header]) -> Vec<usize> {
        let mut seen = Vec::new();
        for_each_live(|h| {
            let a = h as *const Header as usize;
            if ptrs.contains(&(a as *mut Header)) {
                seen.push(a);
            }
        });
        seen.sort_unstable();
        seen
    }

    #[test]
    fn only_blocks_still_listed_are_visited_and_places_are_reused() {
        let mut headers: Vec<Header> = (0..200)
            .map(|i| Header::new(i, 8, 0, AllocKind::Malloc))
            .collect();
        let ptrs: Vec<*mut Header> = headers.iter_mut().map(|h| h as *mut Header).collect();
        for &h in &ptrs {
            insert(h);
        }
        for &h in ptrs.iter().step_by(2) {
            remove(h);
        }
        let odd: Vec<usize> = ptrs
            .iter()
            .skip(1)
            .step_by(2)
            .map(|&h| h as usize)
            .collect();
        assert_eq!(visited(&ptrs), odd);
        // Listed again: found again, in a place below the shard's high-water mark.
        // SAFETY: the headers are this test's.
        let used = |h: *mut Header| LIVE[shard_and_index(unsafe { (*h).place }).0].0.lock().used;
        let before = used(ptrs[0]);
        insert(ptrs[0]);
        assert_eq!(used(ptrs[0]), before);
        // SAFETY: the headers are this test's.
        assert_ne!(unsafe { (*ptrs[0]).place }, UNLISTED);
        assert_eq!(visited(&ptrs[..2]), {
            let mut v = vec![ptrs[0] as usize, ptrs[1] as usize];
            v.sort_unstable();
            v
        });
        for &h in ptrs.iter().skip(1).step_by(2).chain([&ptrs[0]]) {
            remove(h);
        }
        assert!(visited(&ptrs).is_empty());
    }
}
