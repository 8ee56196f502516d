//! The markdown report: per thread count, tables of median wall time, CPU time and peak RSS
//! (each with its ratio to the reference contender, the best in bold), and a table of the
//! figures particular to some workloads.

use super::summary::{Cell, CellKey};
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the report is about.
pub struct ReportInput<'a> {
    /// Medians per (threads, workload, contender).
    pub cells: &'a BTreeMap<CellKey, Cell>,
    /// Thread counts, in order.
    pub threads: &'a [usize],
    /// Workload names, in order.
    pub workloads: &'a [String],
    /// Contender names and descriptions, in column order.
    pub contenders: &'a [(String, String)],
    /// The contender ratios are relative to.
    pub reference: &'a str,
    /// Size scale and repetitions, for the heading.
    pub scale: f64,
    /// Repetitions per contender and workload.
    pub reps: usize,
}

/// A figure of a cell that the tables compare (lower is better for all of them).
#[derive(Clone, Copy)]
enum Figure {
    Wall,
    Cpu,
    Rss,
}

impl Figure {
    fn of(self, cell: &Cell) -> f64 {
        match self {
            Figure::Wall => cell.wall_s,
            Figure::Cpu => cell.cpu_s,
            Figure::Rss => cell.max_rss_bytes,
        }
    }

    fn show(self, value: f64) -> String {
        match self {
            Figure::Wall | Figure::Cpu => format!("{} s", significant(value)),
            Figure::Rss => format!("{} MiB", significant(value / (1u64 << 20) as f64)),
        }
    }
}

/// Three significant figures, without going to exponents.
pub fn significant(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

fn cell<'a>(
    input: &'a ReportInput,
    threads: usize,
    workload: &str,
    contender: &str,
) -> Option<&'a Cell> {
    input
        .cells
        .get(&(threads, workload.to_string(), contender.to_string()))
}

fn usable(cell: Option<&Cell>) -> Option<&Cell> {
    cell.filter(|c| c.runs > 0 && c.failures == 0)
}

fn header(out: &mut String, first: &str, input: &ReportInput) {
    let names: Vec<&str> = input.contenders.iter().map(|(n, _)| n.as_str()).collect();
    let _ = writeln!(out, "| {first} | {} |", names.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(names.len()));
}

fn figure_table(out: &mut String, input: &ReportInput, threads: usize, figure: Figure) {
    header(out, "workload", input);
    for workload in input.workloads {
        let values: Vec<Option<f64>> = input
            .contenders
            .iter()
            .map(|(c, _)| usable(cell(input, threads, workload, c)).map(|c| figure.of(c)))
            .collect();
        let best = values
            .iter()
            .flatten()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let reference =
            usable(cell(input, threads, workload, input.reference)).map(|c| figure.of(c));
        let shown: Vec<String> = values
            .iter()
            .zip(input.contenders)
            .map(|(value, (name, _))| match value {
                None if cell(input, threads, workload, name).is_some_and(|c| c.failures > 0) => {
                    "FAILED".to_string()
                }
                None => "–".to_string(),
                Some(v) => {
                    let ratio = reference.map_or(String::new(), |r| format!(" ({:.2}×)", v / r));
                    let text = format!("{}{ratio}", figure.show(*v));
                    if *v == best {
                        format!("**{text}**")
                    } else {
                        text
                    }
                }
            })
            .collect();
        let _ = writeln!(out, "| {workload} | {} |", shown.join(" | "));
    }
    out.push('\n');
}

/// Per-workload figures that are not times: false sharing's shared cache lines, fragmentation's
/// RSS over live bytes, and how fast RSS fell in rss-fall.
fn workload_figures(out: &mut String, input: &ReportInput, threads: usize) {
    type Row = (&'static str, &'static str, fn(&Cell) -> Option<String>);
    let rows: [Row; 6] = [
        (
            "false-sharing",
            "objects on a cache line another thread also used, %",
            |c| Some(format!("{:.0}", c.metrics.get("shared_line_pct")?)),
        ),
        ("fragmentation", "peak RSS / peak live bytes", |c| {
            let live = *c.metrics.get("peak_live_bytes")?;
            Some(format!("{:.2}", c.max_rss_bytes / live))
        }),
        (
            "rss-fall",
            "ms until half / nine tenths of the freed memory left RSS",
            |c| {
                let window = *c.metrics.get("window_ms")?;
                let show = |t: f64| {
                    if t < 0.0 {
                        format!(">{window:.0}")
                    } else {
                        format!("{t:.0}")
                    }
                };
                Some(format!(
                    "{} / {}",
                    show(*c.metrics.get("t50_ms")?),
                    show(*c.metrics.get("t90_ms")?)
                ))
            },
        ),
        (
            "rss-fall",
            "freed memory still resident at the end, %",
            |c| Some(format!("{:.0}", c.metrics.get("retained_pct")?)),
        ),
        (
            "idle-after-exit",
            "RSS 0 / 250 / 500 / 1000 / 2000 ms after the last free, MiB",
            |c| {
                let at = |ms: u32| {
                    c.metrics
                        .get(&format!("rss_at_{ms}ms_bytes"))
                        .map_or("–".to_string(), |b| {
                            format!("{:.0}", b / f64::from(1 << 20))
                        })
                };
                Some([0, 250, 500, 1000, 2000].map(at).join(" / "))
            },
        ),
        (
            "idle-after-exit",
            "ms until nine tenths of the freed memory left RSS",
            |c| {
                let t = *c.metrics.get("t90_ms")?;
                let window = *c.metrics.get("window_ms")?;
                Some(if t < 0.0 {
                    format!(">{window:.0}")
                } else {
                    format!("{t:.0}")
                })
            },
        ),
    ];
    let present = rows
        .iter()
        .any(|(w, _, _)| input.workloads.iter().any(|x| x == w));
    if !present {
        return;
    }
    let _ = writeln!(out, "Workload figures (medians; lower is better):\n");
    header(out, "figure", input);
    for (workload, what, show) in rows {
        if !input.workloads.iter().any(|w| w == workload) {
            continue;
        }
        let shown: Vec<String> = input
            .contenders
            .iter()
            .map(|(c, _)| {
                usable(cell(input, threads, workload, c))
                    .and_then(show)
                    .unwrap_or_else(|| "–".to_string())
            })
            .collect();
        let _ = writeln!(out, "| {workload}: {what} | {} |", shown.join(" | "));
    }
    out.push('\n');
}

/// How many workloads the reference wins, on time and on peak RSS.
fn standing(input: &ReportInput, threads: usize) -> String {
    let mut wins = [0usize; 2];
    let mut counted = 0;
    for workload in input.workloads {
        let Some(reference) = usable(cell(input, threads, workload, input.reference)) else {
            continue;
        };
        counted += 1;
        for (i, figure) in [Figure::Wall, Figure::Rss].into_iter().enumerate() {
            let best = input
                .contenders
                .iter()
                .filter_map(|(c, _)| usable(cell(input, threads, workload, c)))
                .map(|c| figure.of(c))
                .fold(f64::INFINITY, f64::min);
            wins[i] += usize::from(figure.of(reference) <= best);
        }
    }
    format!(
        "{} is first on wall time in {} of {counted} workloads and lowest on peak RSS in {} of {counted}.",
        input.reference, wins[0], wins[1]
    )
}

/// Renders the whole report.
pub fn render(input: &ReportInput) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Scale {}, {} run{} per workload and contender, interleaved; medians. Ratios are to `{}`; \
         the best of each row is in bold; FAILED means a run failed its self-check or crashed.\n",
        input.scale,
        input.reps,
        if input.reps == 1 { "" } else { "s" },
        input.reference
    );
    let _ = writeln!(out, "Contenders:\n");
    for (name, description) in input.contenders {
        let _ = writeln!(out, "- `{name}`: {description}");
    }
    out.push('\n');
    for &threads in input.threads {
        let _ = writeln!(
            out,
            "#### {threads} thread{}\n",
            if threads == 1 { "" } else { "s" }
        );
        let _ = writeln!(out, "{}\n", standing(input, threads));
        let _ = writeln!(out, "Wall time (median):\n");
        figure_table(&mut out, input, threads, Figure::Wall);
        let _ = writeln!(out, "CPU time, user + system (median):\n");
        figure_table(&mut out, input, threads, Figure::Cpu);
        let _ = writeln!(out, "Peak RSS (median):\n");
        figure_table(&mut out, input, threads, Figure::Rss);
        workload_figures(&mut out, input, threads);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell_with(wall_s: f64, rss: f64, failures: usize) -> Cell {
        Cell {
            runs: 1,
            failures,
            wall_s,
            cpu_s: wall_s,
            sys_s: 0.0,
            max_rss_bytes: rss,
            metrics: BTreeMap::new(),
        }
    }

    #[test]
    fn tables_show_ratios_bold_the_best_and_mark_failures() {
        let mut cells = BTreeMap::new();
        cells.insert(
            (2, "tree".to_string(), "larder".to_string()),
            cell_with(2.0, 4.0 * 1048576.0, 0),
        );
        cells.insert(
            (2, "tree".to_string(), "system".to_string()),
            cell_with(1.0, 8.0 * 1048576.0, 0),
        );
        cells.insert(
            (2, "tree".to_string(), "broken".to_string()),
            cell_with(0.5, 1.0, 1),
        );
        let contenders: Vec<(String, String)> = ["larder", "system", "broken"]
            .iter()
            .map(|n| (n.to_string(), format!("about {n}")))
            .collect();
        let text = render(&ReportInput {
            cells: &cells,
            threads: &[2],
            workloads: &["tree".to_string()],
            contenders: &contenders,
            reference: "larder",
            scale: 1.0,
            reps: 3,
        });
        assert!(
            text.contains("| tree | 2.00 s (1.00×) | **1.00 s (0.50×)** | FAILED |"),
            "{text}"
        );
        assert!(
            text.contains("| tree | **4.00 MiB (1.00×)** | 8.00 MiB (2.00×) | FAILED |"),
            "{text}"
        );
        assert!(text.contains(
            "larder is first on wall time in 0 of 1 workloads and lowest on peak RSS in 1 of 1."
        ));
        assert!(text.contains("- `system`: about system"));
    }

    #[test]
    fn significant_figures() {
        assert_eq!(significant(123.4), "123");
        assert_eq!(significant(12.34), "12.3");
        assert_eq!(significant(1.234), "1.23");
        assert_eq!(significant(0.01234), "0.012");
    }
}
