//! The charts, drawn with plotters as PNG and SVG.
//!
//! `comparison`: two panels, wall time and peak RSS, one group of bars per workload and one bar
//! per contender, each the ratio to the reference contender on a log axis (1 = as good as the
//! reference, lower is better). `scaling`: one small panel per workload, median wall time
//! against thread count, one line per contender (drawn when there are several thread counts).
//!
//! Text needs a TrueType font, read at run time (Debian's fonts-dejavu-core by default).

use super::summary::{Cell, CellKey};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Font files tried when none is given.
const FONT_CANDIDATES: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

static FONT: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the font plotters draws text with; `Err` says why there is none.
pub fn load_font(explicit: Option<&Path>) -> Result<(), String> {
    FONT.get_or_init(|| {
        let path: PathBuf = match explicit {
            Some(p) => p.to_path_buf(),
            None => FONT_CANDIDATES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or("no TrueType font found (install fonts-dejavu-core or pass --font)")?,
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The font must outlive every chart; it is loaded once per process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable font", path.display()))
    })
    .clone()
}

/// What a chart shows.
pub struct ChartInput<'a> {
    /// Medians per (threads, workload, contender).
    pub cells: &'a BTreeMap<CellKey, Cell>,
    /// Workload names, in order.
    pub workloads: &'a [String],
    /// Contender names, in order.
    pub contenders: &'a [String],
    /// The contender ratios are relative to.
    pub reference: &'a str,
}

fn colour(index: usize, name: &str) -> RGBColor {
    match name {
        "larder" => RGBColor(200, 30, 30),
        "system" => RGBColor(120, 120, 120),
        "mimalloc" => RGBColor(31, 100, 200),
        "jemalloc" => RGBColor(40, 150, 60),
        "ld-larder" => RGBColor(245, 130, 120),
        "ld-mimalloc" => RGBColor(120, 170, 235),
        "ld-jemalloc" => RGBColor(130, 205, 130),
        "ld-tcmalloc" => RGBColor(230, 160, 40),
        _ => {
            let c = Palette99::pick(index + 20).to_rgba();
            RGBColor(c.0, c.1, c.2)
        }
    }
}

fn cell<'a>(
    input: &'a ChartInput,
    threads: usize,
    workload: &str,
    contender: &str,
) -> Option<&'a Cell> {
    input
        .cells
        .get(&(threads, workload.to_string(), contender.to_string()))
        .filter(|c| c.runs > 0 && c.failures == 0)
}

type Ratios = Vec<Vec<Option<f64>>>;

/// Where the ratio panels draw labelled guide lines.
const RATIO_GUIDES: [f64; 17] = [
    0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 20.0, 50.0, 100.0, 1000.0,
];

/// ratios[workload][contender] of a figure to the reference's.
fn ratios(input: &ChartInput, threads: usize, figure: fn(&Cell) -> f64) -> Ratios {
    input
        .workloads
        .iter()
        .map(|w| {
            let reference = cell(input, threads, w, input.reference).map(figure);
            input
                .contenders
                .iter()
                .map(|c| {
                    Some(figure(cell(input, threads, w, c)?) / reference?)
                        .filter(|r| r.is_finite() && *r > 0.0)
                })
                .collect()
        })
        .collect()
}

fn draw_error<E: std::fmt::Debug>(e: E) -> String {
    format!("drawing the chart: {e:?}")
}

fn ratio_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panel: &DrawingArea<DB, Shift>,
    input: &ChartInput,
    title: &str,
    ratios: &Ratios,
) -> Result<(), String> {
    let all: Vec<f64> = ratios.iter().flatten().flatten().copied().collect();
    let low = all.iter().copied().fold(0.5f64, f64::min) * 0.8;
    let high = all.iter().copied().fold(2.0f64, f64::max) * 1.25;
    let groups = input.workloads.len() as f64;
    let mut chart = ChartBuilder::on(panel)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(34)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5f64..groups - 0.5, (low..high).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .x_labels(0)
        .y_labels(0)
        .y_desc(format!("× {} (lower is better)", input.reference))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(draw_error)?;
    // Plotters labels a log axis sparsely below 1, so the guide lines are drawn here.
    let tick =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for level in RATIO_GUIDES
        .into_iter()
        .filter(|l| (low..=high).contains(l))
    {
        let guide = PathElement::new(vec![(-0.5, level), (groups - 0.5, level)], BLACK.mix(0.15));
        chart
            .draw_series(std::iter::once(guide))
            .map_err(draw_error)?;
        let (x, y) = chart.backend_coord(&(-0.5, level));
        root.draw(&Text::new(format!("{level}"), (x - 6, y), tick.clone()))
            .map_err(draw_error)?;
    }
    let width = 0.84 / input.contenders.len() as f64;
    for (ci, name) in input.contenders.iter().enumerate() {
        let fill = colour(ci, name).filled();
        let bars = ratios.iter().enumerate().filter_map(|(wi, row)| {
            let ratio = row[ci]?;
            let x0 = wi as f64 - 0.42 + ci as f64 * width;
            Some(Rectangle::new([(x0, low), (x0 + width * 0.9, ratio)], fill))
        });
        chart.draw_series(bars).map_err(draw_error)?;
    }
    let parity = PathElement::new(
        vec![(-0.5, 1.0), (groups - 0.5, 1.0)],
        BLACK.stroke_width(2),
    );
    chart
        .draw_series(std::iter::once(parity))
        .map_err(draw_error)?;
    let label =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Center, VPos::Top));
    for (wi, workload) in input.workloads.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(wi as f64, low));
        root.draw(&Text::new(workload.as_str(), (x, y + 8), label.clone()))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// A row of coloured squares and contender names, starting at `at`.
fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    input: &ChartInput,
    at: (i32, i32),
) -> Result<(), String> {
    let (mut x, y) = at;
    for (ci, name) in input.contenders.iter().enumerate() {
        let square = Rectangle::new([(x, y), (x + 16, y + 16)], colour(ci, name).filled());
        area.draw(&square).map_err(draw_error)?;
        area.draw(&Text::new(name.as_str(), (x + 22, y), ("sans-serif", 17)))
            .map_err(draw_error)?;
        x += 40 + 10 * name.len() as i32;
    }
    Ok(())
}

fn comparison<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    input: &ChartInput,
    threads: usize,
) -> Result<(), String> {
    root.fill(&WHITE).map_err(draw_error)?;
    let heading = format!(
        "larder-bench, {threads} thread{}: median of interleaved runs, each bar relative to {}",
        if threads == 1 { "" } else { "s" },
        input.reference
    );
    let (top, rest) = root.split_vertically(76);
    top.draw(&Text::new(heading, (20, 10), ("sans-serif", 24)))
        .map_err(draw_error)?;
    legend_row(&top, input, (24, 48))?;
    let panels = rest.split_evenly((2, 1));
    let wall = ratios(input, threads, |c| c.wall_s);
    let rss = ratios(input, threads, |c| c.max_rss_bytes);
    ratio_panel(&root, &panels[0], input, "Wall time", &wall)?;
    ratio_panel(&root, &panels[1], input, "Peak RSS", &rss)?;
    root.present().map_err(draw_error)
}

fn scaling<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    input: &ChartInput,
    threads: &[usize],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(draw_error)?;
    let (top, rest) = root.split_vertically(40);
    top.draw(&Text::new(
        "larder-bench: median wall time (s) against threads",
        (20, 10),
        ("sans-serif", 24),
    ))
    .map_err(draw_error)?;
    let columns = 4;
    let rows = input.workloads.len().div_ceil(columns);
    let panels = rest.split_evenly((rows, columns));
    // Threads on a log2 axis, one label per doubling (plotters' log axis labels and meshes
    // every integer in between).
    let max_doublings = (*threads.iter().max().unwrap_or(&1) as f64).log2().max(1.0);
    for (workload, panel) in input.workloads.iter().zip(panels.iter()) {
        let top_time = input
            .contenders
            .iter()
            .flat_map(|c| {
                threads
                    .iter()
                    .filter_map(move |&t| cell(input, t, workload, c).map(|c| c.wall_s))
            })
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(workload.as_str(), ("sans-serif", 17))
            .margin(8)
            .x_label_area_size(36)
            .y_label_area_size(46)
            .build_cartesian_2d(-0.1f64..max_doublings + 0.1, 0.0..top_time)
            .map_err(draw_error)?;
        chart
            .configure_mesh()
            .x_labels(max_doublings as usize + 1)
            .x_label_formatter(&|v| format!("{:.0}", v.exp2()))
            .x_desc("threads")
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(draw_error)?;
        for (ci, name) in input.contenders.iter().enumerate() {
            let points: Vec<(f64, f64)> = threads
                .iter()
                .filter_map(|&t| {
                    cell(input, t, workload, name).map(|c| ((t as f64).log2(), c.wall_s))
                })
                .collect();
            let style = colour(ci, name).stroke_width(2);
            chart
                .draw_series(LineSeries::new(points.clone(), style))
                .map_err(draw_error)?;
            chart
                .draw_series(
                    points
                        .into_iter()
                        .map(|p| Circle::new(p, 3, style.filled())),
                )
                .map_err(draw_error)?;
        }
    }
    if let Some(legend_panel) = panels.get(input.workloads.len()) {
        for (ci, name) in input.contenders.iter().enumerate() {
            let y = 20 + ci as i32 * 22;
            legend_panel
                .draw(&Rectangle::new(
                    [(20, y), (40, y + 12)],
                    colour(ci, name).filled(),
                ))
                .map_err(draw_error)?;
            legend_panel
                .draw(&Text::new(name.as_str(), (48, y - 2), ("sans-serif", 16)))
                .map_err(draw_error)?;
        }
    }
    root.present().map_err(draw_error)
}

const COMPARISON_SIZE: (u32, u32) = (1700, 1000);
const SCALING_SIZE: (u32, u32) = (1600, 1000);

/// Writes `<stem>.png` and `<stem>.svg` comparing the contenders at `threads`.
pub fn write_comparison(
    stem: &Path,
    input: &ChartInput,
    threads: usize,
) -> Result<Vec<PathBuf>, String> {
    let (png, svg) = (stem.with_extension("png"), stem.with_extension("svg"));
    comparison(
        BitMapBackend::new(&png, COMPARISON_SIZE).into_drawing_area(),
        input,
        threads,
    )?;
    comparison(
        SVGBackend::new(&svg, COMPARISON_SIZE).into_drawing_area(),
        input,
        threads,
    )?;
    Ok(vec![png, svg])
}

/// Writes `<stem>.png` and `<stem>.svg` with wall time against thread count.
pub fn write_scaling(
    stem: &Path,
    input: &ChartInput,
    threads: &[usize],
) -> Result<Vec<PathBuf>, String> {
    let (png, svg) = (stem.with_extension("png"), stem.with_extension("svg"));
    scaling(
        BitMapBackend::new(&png, SCALING_SIZE).into_drawing_area(),
        input,
        threads,
    )?;
    scaling(
        SVGBackend::new(&svg, SCALING_SIZE).into_drawing_area(),
        input,
        threads,
    )?;
    Ok(vec![png, svg])
}
