//! The error records check mode (liblarder_check.so) appends to the report
//! file, and their frames turned into function and file:line.
//!
//! The library writes, with one write(2) per record:
//! `larder-error v1 pid=P class=C op=O addr=0x.. [block=0x.. size=N]
//! [offset=N] [at=F;F..] [free=F;F..] [alloc=F;F..]`, each frame F being a
//! module path, `+`, and the offset of the call site from the module's load
//! base. The library names frames only through dladdr (it may not allocate);
//! here, in an ordinary process, the `addr2line` crate (gimli) reads each
//! module's debug info to name function, file and line.

use std::collections::HashMap;

use serde::Serialize;

/// One frame: where it is and, when symbolised, what it is.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Frame {
    /// The module's path.
    pub module: String,
    /// The call site's offset from the module's load base.
    pub offset: u64,
    /// The function, when debug info or symbols name it.
    pub function: Option<String>,
    /// `file:line`, when debug info has it.
    pub location: Option<String>,
    /// The functions the call site was inlined into, innermost first, each with its own
    /// `file:line`: the call chain the compiler folded into this one frame (a Rust
    /// `Box::drop` into the function that dropped it, a C `static inline` helper).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inlined_into: Vec<InlinedCaller>,
}

/// A function a frame's call site was inlined into.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct InlinedCaller {
    /// The function.
    pub function: Option<String>,
    /// `file:line` of the inlined call in it.
    pub location: Option<String>,
}

/// One error check mode reported.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorRecord {
    /// The process that reported it.
    pub pid: u32,
    /// The class: double-free, invalid-free, heap-buffer-overflow, ...
    pub class: String,
    /// The operation that found it: free, realloc, quarantine.
    pub op: String,
    /// The bad address.
    pub addr: u64,
    /// The block's start, when known.
    pub block: Option<u64>,
    /// The block's requested size, when known.
    pub size: Option<u64>,
    /// The bad byte's offset from the block's start, when known.
    pub offset: Option<i64>,
    /// Where the error was found.
    pub at: Vec<Frame>,
    /// Where the block was freed.
    pub free: Vec<Frame>,
    /// Where the block was allocated.
    pub alloc: Vec<Frame>,
}

/// The error records in the report file's text; other lines are skipped.
pub fn parse_errors(text: &str) -> Vec<ErrorRecord> {
    text.lines().filter_map(parse_error).collect()
}

fn hex(v: &str) -> Option<u64> {
    u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()
}

/// The `key=value` fields of a record's text after its tag; words without `=` are skipped.
pub fn fields(rest: &str) -> impl Iterator<Item = (&str, &str)> {
    rest.split(' ').filter_map(|f| f.split_once('='))
}

/// A field value as the library meant it: `%20`, `%0A` and `%25` (how it writes a space, a
/// newline and `%` inside a value) decoded.
pub fn unescape(v: &str) -> String {
    v.replace("%20", " ")
        .replace("%0A", "\n")
        .replace("%25", "%")
}

/// The frames of a record field, `module+0xoffset;...`, not yet named.
pub fn frames(v: &str) -> Vec<Frame> {
    v.split(';')
        .filter_map(|f| {
            let (module, offset) = f.rsplit_once('+')?;
            Some(Frame {
                module: unescape(module),
                offset: hex(offset)?,
                function: None,
                location: None,
                inlined_into: Vec::new(),
            })
        })
        .collect()
}

fn parse_error(line: &str) -> Option<ErrorRecord> {
    let rest = line.strip_prefix("larder-error v1 ")?;
    let mut record = ErrorRecord {
        pid: 0,
        class: String::new(),
        op: String::new(),
        addr: 0,
        block: None,
        size: None,
        offset: None,
        at: Vec::new(),
        free: Vec::new(),
        alloc: Vec::new(),
    };
    for (key, value) in fields(rest) {
        match key {
            "pid" => record.pid = value.parse().ok()?,
            "class" => record.class = value.to_owned(),
            "op" => record.op = unescape(value),
            "addr" => record.addr = hex(value)?,
            "block" => record.block = hex(value),
            "size" => record.size = value.parse().ok(),
            "offset" => record.offset = value.parse().ok(),
            "at" => record.at = frames(value),
            "free" => record.free = frames(value),
            "alloc" => record.alloc = frames(value),
            _ => {}
        }
    }
    (!record.class.is_empty()).then_some(record)
}

/// What guard pages covered in one process (`larder-guard v1 pid=P guarded=N unguarded=N
/// how=H [budget=B]`, written at exit by each checked process that guarded a block).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct GuardRecord {
    /// The process.
    pub pid: u32,
    /// Blocks placed against a guard page.
    pub guarded: u64,
    /// Blocks left unguarded (sampling, or the pool's limits).
    pub unguarded: u64,
    /// Which blocks: `all`, `1/N`, or `budget-then-1/N` (auto past its budget).
    pub how: String,
}

/// The guard records in the report file's text.
pub fn parse_guards(text: &str) -> Vec<GuardRecord> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("larder-guard v1 ")?;
            let mut record = GuardRecord::default();
            for (key, value) in fields(rest) {
                match key {
                    "pid" => record.pid = value.parse().ok()?,
                    "guarded" => record.guarded = value.parse().ok()?,
                    "unguarded" => record.unguarded = value.parse().ok()?,
                    "how" => record.how = value.to_owned(),
                    _ => {}
                }
            }
            Some(record)
        })
        .collect()
}

/// The guard pages' line of the summary: the program's own process, and the others added up.
pub fn write_guard_text(out: &mut String, records: &[GuardRecord], pid: u32) {
    use std::fmt::Write;
    let how = |h: &str| match (h, h.rsplit_once("1/")) {
        ("all", _) => "every block".to_owned(),
        (h, Some((_, n))) if h.starts_with("budget-then-") => {
            format!("every block until LARDER_GUARD_BUDGET, then 1 in {n}")
        }
        (_, Some((_, n))) => format!("1 in {n}"),
        (h, None) => h.to_owned(),
    };
    if let Some(r) = records.iter().find(|r| r.pid == pid) {
        let _ = writeln!(
            out,
            "  guard pages   {} blocks guarded, {} not ({})",
            r.guarded,
            r.unguarded,
            how(&r.how)
        );
    }
    let others: Vec<&GuardRecord> = records.iter().filter(|r| r.pid != pid).collect();
    if !others.is_empty() {
        let _ = writeln!(
            out,
            "  guard pages   {} blocks guarded, {} not, in {} other processes",
            others.iter().map(|r| r.guarded).sum::<u64>(),
            others.iter().map(|r| r.unguarded).sum::<u64>(),
            others.len()
        );
    }
}

/// Names frames from each module's debug info, loading each module once.
#[derive(Default)]
pub struct Symbolizer {
    loaders: HashMap<String, Option<addr2line::Loader>>,
}

impl Symbolizer {
    /// Fills in the function and location of every frame of `records`.
    pub fn symbolize(&mut self, records: &mut [ErrorRecord]) {
        for record in records {
            self.frames(
                record
                    .at
                    .iter_mut()
                    .chain(record.free.iter_mut())
                    .chain(record.alloc.iter_mut()),
            );
        }
    }

    /// Fills in the function and location of each frame given.
    pub fn frames<'a>(&mut self, frames: impl IntoIterator<Item = &'a mut Frame>) {
        for frame in frames {
            self.frame(frame);
        }
    }

    /// Fills in the function and location of one frame.
    pub fn frame(&mut self, frame: &mut Frame) {
        let loader = self
            .loaders
            .entry(frame.module.clone())
            .or_insert_with(|| addr2line::Loader::new(&frame.module).ok());
        let Some(loader) = loader else { return };
        // Shared objects and position-independent programs are linked at
        // address 0, so the offset from the load base is the address in the file.
        let probe = frame.offset;
        if let Ok(mut frames) = loader.find_frames(probe) {
            // The innermost (possibly inlined) function is the one at the call site; the
            // others, outward, are the functions it was inlined into.
            let name = |f: &addr2line::Frame<_>| {
                f.function
                    .as_ref()
                    .and_then(|n| n.demangle().ok().map(|n| n.into_owned()))
            };
            let location = |f: &addr2line::Frame<_>| {
                f.location
                    .as_ref()
                    .and_then(|l| Some(format!("{}:{}", l.file?, l.line.unwrap_or(0))))
            };
            if let Ok(Some(f)) = frames.next() {
                frame.function = name(&f);
                frame.location = location(&f);
            }
            while let Ok(Some(f)) = frames.next() {
                frame.inlined_into.push(InlinedCaller {
                    function: name(&f),
                    location: location(&f),
                });
            }
        }
        if frame.function.is_none() {
            frame.function = loader
                .find_symbol(probe)
                .map(|s| addr2line::demangle_auto(s.into(), None).into_owned());
        }
    }
}

/// The records for people: one block per error, frames named.
pub fn write_text(out: &mut String, records: &[ErrorRecord]) {
    use std::fmt::Write;
    let _ = writeln!(out, "  check mode    {} error report(s)", records.len());
    for r in records {
        let _ = write!(
            out,
            "  ERROR {} at {:#x} (found by {}, pid {})",
            r.class, r.addr, r.op, r.pid
        );
        if let (Some(block), Some(size)) = (r.block, r.size) {
            let _ = write!(out, ": block {block:#x} of {size} bytes");
            if let Some(off) = r.offset {
                let _ = write!(out, ", offset {off}");
            }
        }
        out.push('\n');
        for (title, frames) in [
            ("found at", &r.at),
            ("freed at", &r.free),
            ("allocated at", &r.alloc),
        ] {
            write_frames(out, title, frames);
        }
    }
}

/// A titled stack for people, one named frame a line (nothing when it is empty).
pub fn write_frames(out: &mut String, title: &str, frames: &[Frame]) {
    use std::fmt::Write;
    if frames.is_empty() {
        return;
    }
    let _ = writeln!(out, "    {title}:");
    let mut i = 0;
    for f in frames {
        let module = f.module.rsplit('/').next().unwrap_or(&f.module);
        let callers = f.inlined_into.iter().map(|c| (&c.function, &c.location));
        for (function, location) in std::iter::once((&f.function, &f.location)).chain(callers) {
            let _ = writeln!(
                out,
                "      #{i} {} {}({module}+{:#x})",
                function.as_deref().unwrap_or("??"),
                location
                    .as_deref()
                    .map(|l| format!("{l} "))
                    .unwrap_or_default(),
                f.offset
            );
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_records_are_read_and_summed() {
        let text = "larder-heap v1 pid=1\n\
                    larder-guard v1 pid=7 guarded=100 unguarded=0 how=all\n\
                    larder-guard v1 pid=8 guarded=5 unguarded=9000 how=budget-then-1/1024 budget=67108864\n\
                    larder-guard v1 pid=9 guarded=1 unguarded=2 how=1/3\n";
        let records = parse_guards(text);
        assert_eq!(records.len(), 3);
        assert_eq!(records[1].how, "budget-then-1/1024");
        let mut out = String::new();
        write_guard_text(&mut out, &records, 8);
        assert!(
            out.contains("5 blocks guarded, 9000 not (every block until LARDER_GUARD_BUDGET, then 1 in 1024)"),
            "{out}"
        );
        assert!(
            out.contains("101 blocks guarded, 2 not, in 2 other processes"),
            "{out}"
        );
    }

    #[test]
    fn a_record_is_read_with_its_frames() {
        let text = "larder-heap v1 pid=1\n\
                    larder-error v1 pid=42 class=double-free op=free addr=0x10 block=0x10 size=100 \
                    at=/lib/a.so+0x1f;/bin/prog+0x20 alloc=/bin/prog+0x30\n";
        let records = parse_errors(text);
        assert_eq!(records.len(), 1);
        let r = &records[0];
        assert_eq!(
            (r.pid, r.class.as_str(), r.addr, r.size),
            (42, "double-free", 16, Some(100))
        );
        assert_eq!(r.at.len(), 2);
        assert_eq!(r.at[1].module, "/bin/prog");
        assert_eq!(r.at[1].offset, 0x20);
        assert_eq!(r.alloc.len(), 1);
        assert!(r.free.is_empty());
    }

    #[test]
    fn words_with_spaces_in_a_record_are_read_whole() {
        let text = "larder-error v1 pid=7 class=alloc-dealloc-mismatch \
                    op=operator%20delete,%20of%20a%20block%20from%20malloc addr=0x10 \
                    at=/home/my%20dir/prog+0x20;/lib/100%25.so+0x1\n";
        let r = &parse_errors(text)[0];
        assert_eq!(r.op, "operator delete, of a block from malloc");
        assert_eq!(r.at[0].module, "/home/my dir/prog");
        assert_eq!(r.at[1].module, "/lib/100%.so");
    }
}
