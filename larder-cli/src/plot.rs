//! `larder run --plot heap.svg`: the program's live bytes, committed bytes and
//! RSS over its run, drawn from the `larder-timeline v1` lines the library's
//! sampler thread appends to the report file (larder-c/src/timeline.rs), with
//! the peak of live bytes marked. The main process gets three lines; each child
//! process on larder gets a thin line of its live bytes.

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;

use crate::summary::bytes;
use crate::Failure;

/// One sample of one process.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// Seconds since the program started.
    pub t: f64,
    /// Bytes in live blocks.
    pub live: u64,
    /// Bytes committed (mapped read-write and touched or about to be).
    pub committed: u64,
    /// Resident set.
    pub rss: u64,
}

/// The samples of each process, by pid, in time order. `start_us` is the
/// CLOCK_MONOTONIC time at which the program was started.
pub fn parse_timeline(text: &str, start_us: u64) -> BTreeMap<u32, Vec<Sample>> {
    let mut by_pid: BTreeMap<u32, Vec<Sample>> = BTreeMap::new();
    for line in text.lines() {
        let Some(fields) = line.strip_prefix("larder-timeline v1 ") else {
            continue;
        };
        let mut pid = None;
        let (mut t, mut live, mut committed, mut rss) = (None, None, None, None);
        for (key, value) in crate::check_record::fields(fields) {
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "pid" => pid = u32::try_from(value).ok(),
                "t_us" => t = Some(value.saturating_sub(start_us) as f64 / 1e6),
                "live_bytes" => live = Some(value),
                "committed_bytes" => committed = Some(value),
                "rss_bytes" => rss = Some(value),
                _ => {}
            }
        }
        if let (Some(pid), Some(t), Some(live), Some(committed), Some(rss)) =
            (pid, t, live, committed, rss)
        {
            by_pid.entry(pid).or_default().push(Sample {
                t,
                live,
                committed,
                rss,
            });
        }
    }
    for samples in by_pid.values_mut() {
        samples.sort_by(|a, b| a.t.total_cmp(&b.t));
    }
    by_pid
}

/// CLOCK_MONOTONIC in microseconds: the clock of the library's samples.
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is valid for writes; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// The MiB figure of a byte count, for the y axis.
fn mib(value: u64) -> f64 {
    value as f64 / (1024.0 * 1024.0)
}

/// Font files tried for the plot's text, Debian's fonts-dejavu-core first.
const FONT_CANDIDATES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the font plotters lays text out with. With the `ab_glyph` feature (enabled here
/// and by larder-bench, so the workspace build has it whichever crate asks) plotters finds no
/// font by itself: without this the plot fails with "FontUnavailable".
fn register_font() -> Result<(), String> {
    static FONT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    FONT.get_or_init(|| {
        let path = FONT_CANDIDATES
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or("no TrueType font found (install fonts-dejavu-core)")?;
        let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
        // Fonts registered with plotters must live as long as the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path} is not a usable font"))
    })
    .clone()
}

/// A line of the main process: its legend, colour, and figure.
type Series = (&'static str, RGBColor, fn(&Sample) -> u64);

/// Draws the timeline of `main_pid` (and the live bytes of the other
/// processes) to an SVG file.
pub fn draw(
    path: &Path,
    title: &str,
    main_pid: u32,
    timeline: &BTreeMap<u32, Vec<Sample>>,
) -> Result<(), Failure> {
    let fail = |e: &dyn std::fmt::Display| {
        Failure::new(format!("cannot draw the plot {}: {e}", path.display()))
    };
    register_font().map_err(|e| fail(&e))?;
    let main: &[Sample] = timeline.get(&main_pid).map_or(&[], Vec::as_slice);
    let all = timeline.values().flatten();
    let t_max = all.clone().map(|s| s.t).fold(0.01, f64::max);
    let y_max = all
        .map(|s| mib(s.live.max(s.committed).max(s.rss)))
        .fold(0.01, f64::max)
        * 1.1;

    let root = SVGBackend::new(path, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|e| fail(&e))?;
    chart
        .configure_mesh()
        .x_desc("time since start (s)")
        .y_desc("MiB")
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|e| fail(&e))?;

    let series: [Series; 3] = [
        ("RSS", RGBColor(128, 128, 128), |s| s.rss),
        ("committed", RGBColor(230, 140, 20), |s| s.committed),
        ("live bytes", RGBColor(30, 90, 200), |s| s.live),
    ];
    for (label, color, value) in series {
        chart
            .draw_series(LineSeries::new(
                main.iter().map(|s| (s.t, mib(value(s)))),
                color.stroke_width(2),
            ))
            .map_err(|e| fail(&e))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let children = timeline.iter().filter(|(&pid, _)| pid != main_pid);
    for (i, (pid, samples)) in children.enumerate() {
        let color = Palette99::pick(i + 3).mix(0.8);
        let series = chart
            .draw_series(LineSeries::new(
                samples.iter().map(|s| (s.t, mib(s.live))),
                color.stroke_width(1),
            ))
            .map_err(|e| fail(&e))?;
        // A legend entry for the first few children only, to stay readable.
        if i < 4 {
            series
                .label(format!("live bytes, child {pid}"))
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        }
    }
    if let Some(peak) = main.iter().max_by_key(|s| s.live) {
        let at = (peak.t, mib(peak.live));
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series([
                Circle::new(at, 6, red.filled()).into_dyn(),
                Text::new(
                    format!("peak live {} at {:.2} s", bytes(peak.live), peak.t),
                    // Left of the mark near the right edge, so the text stays inside.
                    (
                        if peak.t > t_max * 0.7 {
                            peak.t - t_max * 0.25
                        } else {
                            peak.t
                        },
                        mib(peak.live) + y_max * 0.03,
                    ),
                    ("sans-serif", 16).into_font().color(&red),
                )
                .into_dyn(),
            ])
            .map_err(|e| fail(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(&e))?;
    root.present().map_err(|e| fail(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_grouped_by_process_and_timed_from_the_start() {
        let text = "larder-timeline v1 pid=7 t_us=3000000 live_bytes=10 committed_bytes=20 rss_bytes=30\n\
                    noise\n\
                    larder-timeline v1 pid=7 t_us=2500000 live_bytes=5 committed_bytes=20 rss_bytes=30\n\
                    larder-timeline v1 pid=8 t_us=2600000 live_bytes=1 committed_bytes=2 rss_bytes=3\n\
                    larder-timeline v1 pid=9 t_us=2600000 live_bytes=1\n";
        let timeline = parse_timeline(text, 2_000_000);
        assert_eq!(timeline.len(), 2, "the truncated line of pid 9 is skipped");
        let main = &timeline[&7];
        assert_eq!(main.len(), 2);
        assert_eq!(main[0].t, 0.5);
        assert_eq!(main[1].live, 10);
    }
}
