//! `larder run --profile`: the heap profile the library's sampler wrote
//! (larder/src/check/profile.rs) read back, its stacks named with the same
//! symboliser as check mode's reports, and shown three ways: the top sites as
//! text (live at the peak, live at exit, allocated), all of them as JSON, and
//! a flame graph SVG (the `inferno` crate).
//!
//! The records, one line each, appended at exit by every process on the library:
//! `larder-profile v1 pid=P rate=R samples=N dropped=N live_bytes=B peak_bytes=B`
//! `larder-site v1 pid=P alloc_samples=N alloc_bytes=B alloc_se=B peak_samples=N
//! peak_bytes=B peak_se=B exit_samples=N exit_bytes=B exit_se=B stack=F;F;..`
//! Bytes are estimates (each sample weighted by the inverse of its chance of
//! being sampled) and `_se` their standard errors.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::check_record::{frames, Frame, Symbolizer};
use crate::summary::bytes;
use crate::Failure;

/// An estimate of bytes from samples.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Estimate {
    /// Samples behind it.
    pub samples: u64,
    /// Estimated bytes.
    pub bytes: u64,
    /// Its standard error, in bytes (about `bytes / sqrt(samples)` for blocks
    /// much smaller than the sampling rate).
    pub standard_error: u64,
}

impl Estimate {
    fn merge(&mut self, other: &Estimate) {
        self.samples += other.samples;
        self.bytes += other.bytes;
        let se = (self.standard_error as f64).hypot(other.standard_error as f64);
        self.standard_error = se.round() as u64;
    }
}

/// One allocation site: the stack outside larder's library, innermost first.
#[derive(Clone, Debug, Serialize)]
pub struct Site {
    /// The stack, innermost frame (the caller of malloc) first.
    pub stack: Vec<Frame>,
    /// Bytes allocated over the process's life.
    pub allocated: Estimate,
    /// Bytes live at the peak of (estimated) live bytes.
    pub at_peak: Estimate,
    /// Bytes still live at exit.
    pub at_exit: Estimate,
}

impl Site {
    /// A one-line name: the innermost frame with a function name, with its
    /// location, and its caller.
    pub fn label(&self) -> String {
        let mut named = self.stack.iter().map(frame_name);
        match (named.next(), named.next()) {
            (Some(inner), Some(outer)) => format!("{inner} <- {outer}"),
            (Some(inner), None) => inner,
            _ => "(no stack)".to_owned(),
        }
    }
}

fn frame_name(f: &Frame) -> String {
    let function = f.function.clone().unwrap_or_else(|| {
        let module = f.module.rsplit('/').next().unwrap_or(&f.module);
        format!("{module}+{:#x}", f.offset)
    });
    match &f.location {
        Some(location) => {
            let file = location.rsplit('/').next().unwrap_or(location);
            format!("{function} ({file})")
        }
        None => function,
    }
}

/// The profile of one process.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessProfile {
    /// Its process id.
    pub pid: u32,
    /// Its program's name, from its heap record (absent when it wrote none).
    pub name: Option<String>,
    /// The mean bytes between samples.
    pub rate_bytes: u64,
    /// Samples taken.
    pub samples: u64,
    /// Samples not kept (the live table was full).
    pub dropped: u64,
    /// Estimated live bytes at the peak (all sites).
    pub peak_bytes: u64,
    /// Estimated live bytes at exit (all sites).
    pub exit_bytes: u64,
    /// Every site, by bytes live at the peak, largest first.
    pub sites: Vec<Site>,
}

/// What a flame graph weighs its frames by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Measure {
    /// Bytes live at the peak.
    Peak,
    /// Bytes live at exit.
    Exit,
    /// Bytes allocated over the run.
    Alloc,
}

impl Measure {
    fn of(self, site: &Site) -> &Estimate {
        match self {
            Measure::Peak => &site.at_peak,
            Measure::Exit => &site.at_exit,
            Measure::Alloc => &site.allocated,
        }
    }

    fn title(self) -> &'static str {
        match self {
            Measure::Peak => "live at the peak",
            Measure::Exit => "live at exit",
            Measure::Alloc => "allocated",
        }
    }
}

fn number(fields: &BTreeMap<&str, &str>, key: &str) -> Option<u64> {
    fields.get(key)?.parse().ok()
}

fn fields_of(rest: &str) -> BTreeMap<&str, &str> {
    crate::check_record::fields(rest).collect()
}

/// The profiles in the report file's text, by pid; frames not yet named.
pub fn parse_profiles(text: &str) -> BTreeMap<u32, ProcessProfile> {
    let mut profiles = BTreeMap::new();
    let mut sites: Vec<(u32, Site)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("larder-profile v1 ") {
            let f = fields_of(rest);
            let (Some(pid), Some(rate)) = (number(&f, "pid"), number(&f, "rate")) else {
                continue;
            };
            profiles.insert(
                pid as u32,
                ProcessProfile {
                    pid: pid as u32,
                    name: None,
                    rate_bytes: rate,
                    samples: number(&f, "samples").unwrap_or(0),
                    dropped: number(&f, "dropped").unwrap_or(0),
                    peak_bytes: number(&f, "peak_bytes").unwrap_or(0),
                    exit_bytes: number(&f, "live_bytes").unwrap_or(0),
                    sites: Vec::new(),
                },
            );
        } else if let Some(rest) = line.strip_prefix("larder-site v1 ") {
            let f = fields_of(rest);
            let Some(pid) = number(&f, "pid") else {
                continue;
            };
            let estimate = |name: &str| Estimate {
                samples: number(&f, &format!("{name}_samples")).unwrap_or(0),
                bytes: number(&f, &format!("{name}_bytes")).unwrap_or(0),
                standard_error: number(&f, &format!("{name}_se")).unwrap_or(0),
            };
            sites.push((
                pid as u32,
                Site {
                    stack: f.get("stack").map(|s| frames(s)).unwrap_or_default(),
                    allocated: estimate("alloc"),
                    at_peak: estimate("peak"),
                    at_exit: estimate("exit"),
                },
            ));
        }
    }
    for (pid, site) in sites {
        if let Some(profile) = profiles.get_mut(&pid) {
            profile.sites.push(site);
        }
    }
    profiles
}

/// Names every frame, drops the frames inside `library` (the profiler's own,
/// above the program's call of malloc), merges sites whose stacks are then
/// the same, and sorts them by bytes live at the peak.
pub fn symbolize(profiles: &mut BTreeMap<u32, ProcessProfile>, library: &Path) {
    let library_name = library
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let inside_library = |f: &Frame| {
        library_name
            .as_deref()
            .is_some_and(|name| f.module.rsplit('/').next() == Some(name))
    };
    let mut symbolizer = Symbolizer::default();
    for profile in profiles.values_mut() {
        let mut merged: Vec<Site> = Vec::new();
        let mut index: BTreeMap<Vec<(String, u64)>, usize> = BTreeMap::new();
        for mut site in std::mem::take(&mut profile.sites) {
            let skip = site.stack.iter().take_while(|f| inside_library(f)).count();
            site.stack.drain(..skip);
            for frame in &mut site.stack {
                symbolizer.frame(frame);
            }
            let key = site
                .stack
                .iter()
                .map(|f| (f.module.clone(), f.offset))
                .collect::<Vec<_>>();
            match index.get(&key) {
                Some(&i) => {
                    let into = &mut merged[i];
                    into.allocated.merge(&site.allocated);
                    into.at_peak.merge(&site.at_peak);
                    into.at_exit.merge(&site.at_exit);
                }
                None => {
                    index.insert(key, merged.len());
                    merged.push(site);
                }
            }
        }
        merged.sort_by(|a, b| {
            (b.at_peak.bytes, b.allocated.bytes).cmp(&(a.at_peak.bytes, a.allocated.bytes))
        });
        profile.sites = merged;
    }
}

/// The profiles for people: for each process (the program first), its top
/// `top` sites live at the peak, live at exit and allocated.
pub fn write_text(
    out: &mut String,
    profiles: &BTreeMap<u32, ProcessProfile>,
    main_pid: u32,
    top: usize,
) {
    let ordered = profiles
        .get(&main_pid)
        .into_iter()
        .chain(profiles.values().filter(|p| p.pid != main_pid));
    for p in ordered {
        let _ = writeln!(
            out,
            "  profile       {}: {} samples, one per {} allocated on average{}",
            process_name(p),
            p.samples,
            bytes(p.rate_bytes),
            if p.dropped > 0 {
                format!(" ({} dropped: too many live samples)", p.dropped)
            } else {
                String::new()
            }
        );
        let _ = writeln!(
            out,
            "    estimates ± one standard error (about 1/sqrt(samples) of a site's bytes in small blocks)"
        );
        for (measure, total) in [
            (Measure::Peak, Some(p.peak_bytes)),
            (Measure::Exit, Some(p.exit_bytes)),
            (Measure::Alloc, None),
        ] {
            let mut sites: Vec<&Site> =
                p.sites.iter().filter(|s| measure.of(s).bytes > 0).collect();
            sites.sort_by_key(|s| std::cmp::Reverse(measure.of(s).bytes));
            let total = total
                .map(|t| format!(", {} in all", bytes(t)))
                .unwrap_or_default();
            let _ = writeln!(out, "    {}{total}:", measure.title());
            if sites.is_empty() {
                let _ = writeln!(out, "      (nothing sampled)");
            }
            for (rank, site) in sites.iter().take(top).enumerate() {
                let e = measure.of(site);
                let _ = writeln!(
                    out,
                    "      {:>2}. {:>10} ± {:<10} {:>5} samples  {}",
                    rank + 1,
                    bytes(e.bytes),
                    bytes(e.standard_error),
                    e.samples,
                    site.label()
                );
            }
        }
    }
}

/// `name (pid N)`, or `pid N` without a name.
fn process_name(p: &ProcessProfile) -> String {
    match &p.name {
        Some(name) => format!("{name} (pid {})", p.pid),
        None => format!("pid {}", p.pid),
    }
}

/// Draws a flame graph of `measure` over every process's sites to `path`: the
/// root frames are the processes, then each stack from the outermost frame in.
pub fn draw_flame_graph(
    path: &Path,
    profiles: &BTreeMap<u32, ProcessProfile>,
    measure: Measure,
    title: &str,
) -> Result<(), Failure> {
    let mut lines = Vec::new();
    for p in profiles.values() {
        for site in &p.sites {
            let weight = measure.of(site).bytes;
            if weight == 0 {
                continue;
            }
            let mut line = process_name(p).replace(';', ":");
            // Callers by function alone, so that one function's calls merge into one frame;
            // the call of malloc with its file and line.
            for (depth, frame) in site.stack.iter().enumerate().rev() {
                let name = match (&frame.function, depth) {
                    (Some(function), 1..) => function.clone(),
                    _ => frame_name(frame),
                };
                line.push(';');
                line.push_str(&name.replace(';', ":"));
            }
            let _ = write!(line, " {weight}");
            lines.push(line);
        }
    }
    if lines.is_empty() {
        lines.push("(nothing sampled) 1".to_owned());
    }
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("{title}: bytes {}", measure.title());
    options.count_name = "bytes".to_owned();
    options.colors =
        inferno::flamegraph::Palette::Basic(inferno::flamegraph::color::BasicPalette::Mem);
    let file = std::fs::File::create(path)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    inferno::flamegraph::from_lines(
        &mut options,
        lines.iter().map(String::as_str),
        std::io::BufWriter::new(file),
    )
    .map_err(|e| {
        Failure::new(format!(
            "cannot draw the flame graph {}: {e}",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "larder-heap v1 pid=7\n\
        larder-profile v1 pid=7 rate=524288 samples=5 dropped=0 live_bytes=100 peak_bytes=300\n\
        larder-site v1 pid=7 alloc_samples=3 alloc_bytes=300 alloc_se=30 peak_samples=3 peak_bytes=300 \
        peak_se=30 exit_samples=1 exit_bytes=100 exit_se=40 stack=/lib/liblarder_check.so+0x10;/bin/p+0x20\n\
        larder-site v1 pid=7 alloc_samples=2 alloc_bytes=50 alloc_se=40 peak_samples=0 peak_bytes=0 \
        peak_se=0 exit_samples=0 exit_bytes=0 exit_se=0 stack=/lib/liblarder_check.so+0x99;/bin/p+0x20\n\
        larder-site v1 pid=8 alloc_samples=1 alloc_bytes=1 alloc_se=0 peak_samples=0 peak_bytes=0 \
        peak_se=0 exit_samples=0 exit_bytes=0 exit_se=0 stack=/bin/p+0x20\n";

    #[test]
    fn records_are_read_and_sites_merged_past_the_library_frames() {
        let mut profiles = parse_profiles(TEXT);
        // pid 8 wrote no profile header: its site is not trusted.
        assert_eq!(profiles.len(), 1);
        let p = &profiles[&7];
        assert_eq!((p.rate_bytes, p.samples, p.peak_bytes), (524288, 5, 300));
        assert_eq!(p.sites.len(), 2);
        symbolize(&mut profiles, Path::new("/x/liblarder_check.so"));
        let p = &profiles[&7];
        assert_eq!(p.sites.len(), 1, "{:?}", p.sites);
        let site = &p.sites[0];
        assert_eq!(site.stack.len(), 1);
        assert_eq!(site.stack[0].offset, 0x20);
        assert_eq!(site.allocated.samples, 5);
        assert_eq!(site.allocated.bytes, 350);
        assert_eq!(site.allocated.standard_error, 50);
        assert_eq!(site.at_exit.bytes, 100);
        let mut text = String::new();
        write_text(&mut text, &profiles, 7, 10);
        assert!(text.contains("live at the peak, 300 B in all"), "{text}");
        assert!(text.contains("allocated:"), "{text}");
    }

    #[test]
    fn the_flame_graph_is_an_svg_with_the_sites() {
        let mut profiles = parse_profiles(TEXT);
        symbolize(&mut profiles, Path::new("/x/liblarder_check.so"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flame.svg");
        draw_flame_graph(&path, &profiles, Measure::Alloc, "test").unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100.min(svg.len())]);
        assert!(svg.contains("pid 7"));
        assert!(svg.contains("p+0x20"));
    }
}
