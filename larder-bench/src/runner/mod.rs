//! The runner: finds (or builds) a worker per allocator, runs every workload for every
//! contender in its own process, interleaved (A B C D A B C D …) so that drift in the machine's
//! speed hits all alike, and writes the raw results, the markdown report and the charts.

pub mod build;
pub mod chart;
pub mod child;
pub mod contenders;
pub mod report;
pub mod summary;

use crate::workloads::{result, Workload};
use clap::Parser;
use contenders::Contender;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use summary::RunRecord;

/// The scale `--quick` uses: every workload does a small fraction of its work.
pub const QUICK_SCALE: f64 = 0.02;

#[derive(Parser, Debug)]
#[command(
    name = "larder-bench",
    about = "Benchmarks larder against the system allocator, mimalloc and jemalloc, side by side",
    after_help = "Workers live in <runner's folder>/bench-bins (see --workers); --build makes them with cargo.\n\
                  Outputs: <out>/results.json, <out>/report.md, <out>/comparison-<N>t.{png,svg}, \
                  and <out>/scaling.{png,svg} for several thread counts."
)]
struct Args {
    /// Smoke run: tiny sizes, one run each (no claim about speed).
    #[arg(long)]
    quick: bool,
    /// Work per thread; 1.0 is the full run (default 1.0, or 0.02 with --quick).
    #[arg(long)]
    scale: Option<f64>,
    /// Thread counts, comma-separated (default: the number of CPUs).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Runs per workload and contender (default 5, or 1 with --quick).
    #[arg(long)]
    reps: Option<usize>,
    /// Workloads to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', value_enum)]
    workloads: Vec<Workload>,
    /// Contenders to run, comma-separated: larder, system, mimalloc, jemalloc, and preload
    /// names such as ld-mimalloc (default: every one available).
    #[arg(long, value_delimiter = ',')]
    allocators: Vec<String>,
    /// Adds a contender: the system-allocator worker with LD_PRELOAD=PATH (repeatable).
    #[arg(long = "preload", value_name = "NAME=PATH")]
    preloads: Vec<String>,
    /// Do not add Debian's libmimalloc, libjemalloc, libtcmalloc_minimal and liblarder.so.
    #[arg(long)]
    no_default_preloads: bool,
    /// Folder of prebuilt workers, larder-bench-worker-<allocator>.
    #[arg(long)]
    workers: Option<PathBuf>,
    /// Build the workers with cargo first (run from inside the workspace).
    #[arg(long)]
    build: bool,
    /// Contender that ratios are relative to (default larder, else ld-larder, else the first).
    #[arg(long)]
    reference: Option<String>,
    /// Output folder (default <runner's folder>/../bench-results).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Per-run time limit in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// TrueType font for the charts.
    #[arg(long)]
    font: Option<PathBuf>,
    /// Seed for the workloads' random sizes and orders (the same for every contender).
    #[arg(long, default_value_t = 0x1a2d_e5)]
    seed: u64,
    /// List workloads and contenders, then exit.
    #[arg(long)]
    list: bool,
    /// Re-render report and charts from a results.json instead of running.
    #[arg(long, value_name = "RESULTS_JSON")]
    from_results: Option<PathBuf>,
}

/// Everything a run produced, as written to results.json.
#[derive(serde::Serialize, serde::Deserialize)]
struct ResultsFile {
    command: Vec<String>,
    scale: f64,
    reps: usize,
    threads: Vec<usize>,
    workloads: Vec<String>,
    contenders: Vec<(String, String)>,
    reference: String,
    records: Vec<RunRecord>,
}

fn runner_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Every contender that can run, in column order, before `--allocators` filtering.
fn discover(args: &Args, workers: &Path) -> Result<Vec<Contender>, String> {
    let mut found: Vec<Contender> = contenders::BUILT_IN
        .iter()
        .map(|name| Contender {
            name: name.to_string(),
            worker: contenders::worker_path(workers, name),
            preload: None,
        })
        .filter(|c| c.worker.exists())
        .collect();
    let system_worker = contenders::worker_path(workers, "system");
    let mut preloads: Vec<(String, PathBuf)> = Vec::new();
    if !args.no_default_preloads {
        let larder_so = runner_dir().join("liblarder.so");
        if larder_so.exists() {
            preloads.push(("ld-larder".to_string(), larder_so));
        }
        for (name, file) in contenders::DEFAULT_PRELOADS {
            if let Some(path) = contenders::find_library(file) {
                preloads.push((name.to_string(), path));
            }
        }
    }
    for arg in &args.preloads {
        let (name, path) = contenders::parse_preload(arg)?;
        if !path.exists() {
            return Err(format!(
                "--preload {name}: {} does not exist",
                path.display()
            ));
        }
        preloads.retain(|(n, _)| *n != name);
        preloads.push((name, path));
    }
    if !preloads.is_empty() && !system_worker.exists() {
        if !args.preloads.is_empty() {
            return Err(format!(
                "preloading needs the system worker, {}",
                system_worker.display()
            ));
        }
        preloads.clear();
    }
    found.extend(preloads.into_iter().map(|(name, lib)| Contender {
        name,
        worker: system_worker.clone(),
        preload: Some(lib),
    }));
    if args.allocators.is_empty() {
        return Ok(found);
    }
    let mut chosen = Vec::new();
    for wanted in &args.allocators {
        match found.iter().find(|c| &c.name == wanted) {
            Some(c) => chosen.push(c.clone()),
            None => {
                return Err(format!(
                    "no contender {wanted:?} (found: {}); build workers with --build, or check --workers",
                    found.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                ))
            }
        }
    }
    Ok(chosen)
}

fn run_one(
    contender: &Contender,
    workload: Workload,
    threads: usize,
    args: &Args,
    scale: f64,
    rep: usize,
) -> RunRecord {
    let mut record = RunRecord {
        threads,
        scale,
        workload: workload.name().to_string(),
        contender: contender.name.clone(),
        rep,
        wall_s: 0.0,
        user_s: 0.0,
        sys_s: 0.0,
        max_rss_bytes: 0,
        kernel_s: 0.0,
        ops: 0,
        checked: 0,
        metrics: BTreeMap::new(),
        error: None,
    };
    let worker_args: Vec<String> = vec![
        "run".into(),
        workload.name().into(),
        "--threads".into(),
        threads.to_string(),
        "--scale".into(),
        scale.to_string(),
        "--seed".into(),
        args.seed.to_string(),
    ];
    let timeout = Duration::from_secs(args.timeout);
    let outcome = child::run_measured(&contender.worker, &worker_args, &contender.env(), timeout)
        .and_then(|finished| result::parse(&finished.stdout).map(|line| (finished.usage, line)))
        .and_then(|(usage, line)| {
            if line.allocator != contender.expected_built_with() || line.workload != workload.name()
            {
                return Err(format!(
                    "the worker answered for {} / {}",
                    line.allocator, line.workload
                ));
            }
            if line.outcome.checked == 0 {
                return Err("the worker verified nothing".to_string());
            }
            Ok((usage, line))
        });
    match outcome {
        Ok((usage, line)) => {
            record.wall_s = usage.wall_s;
            record.user_s = usage.user_s;
            record.sys_s = usage.sys_s;
            record.max_rss_bytes = usage.max_rss_bytes;
            record.kernel_s = line.kernel_s;
            record.ops = line.outcome.ops;
            record.checked = line.outcome.checked;
            record.metrics = line.outcome.metrics.into_iter().collect();
        }
        Err(why) => record.error = Some(why),
    }
    record
}

fn write_outputs(out: &Path, results: &ResultsFile, font: Option<&Path>) -> Result<String, String> {
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    std::fs::write(out.join("results.json"), json).map_err(|e| format!("results.json: {e}"))?;
    let cells = summary::summarise(&results.records);
    let mut text = report::render(&report::ReportInput {
        cells: &cells,
        threads: &results.threads,
        workloads: &results.workloads,
        contenders: &results.contenders,
        reference: &results.reference,
        scale: results.scale,
        reps: results.reps,
    });
    text = format!("Command: `{}`\n\n{text}", results.command.join(" "));
    std::fs::write(out.join("report.md"), &text).map_err(|e| format!("report.md: {e}"))?;
    let names: Vec<String> = results.contenders.iter().map(|(n, _)| n.clone()).collect();
    let input = chart::ChartInput {
        cells: &cells,
        workloads: &results.workloads,
        contenders: &names,
        reference: &results.reference,
    };
    match chart::load_font(font) {
        Ok(()) => {
            for &threads in &results.threads {
                let files = chart::write_comparison(
                    &out.join(format!("comparison-{threads}t")),
                    &input,
                    threads,
                )?;
                eprintln!(
                    "larder-bench: wrote {}",
                    files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if results.threads.len() > 1 {
                chart::write_scaling(&out.join("scaling"), &input, &results.threads)?;
            }
        }
        Err(why) => eprintln!("larder-bench: no charts: {why}"),
    }
    Ok(text)
}

fn pick_reference(args: &Args, names: &[String]) -> Result<String, String> {
    if let Some(r) = &args.reference {
        return if names.contains(r) {
            Ok(r.clone())
        } else {
            Err(format!("--reference {r}: no such contender"))
        };
    }
    ["larder", "ld-larder"]
        .iter()
        .map(|s| s.to_string())
        .find(|s| names.contains(s))
        .or_else(|| names.first().cloned())
        .ok_or_else(|| "no contenders".to_string())
}

fn run(args: Args) -> Result<bool, String> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| runner_dir().join("..").join("bench-results"));
    if let Some(path) = &args.from_results {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let results: ResultsFile =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        print!("{}", write_outputs(&out, &results, args.font.as_deref())?);
        return Ok(results.records.iter().all(|r| r.error.is_none()));
    }
    let workers = args
        .workers
        .clone()
        .unwrap_or_else(|| runner_dir().join("bench-bins"));
    if args.build {
        let wanted: Vec<String> = if args.allocators.is_empty() {
            contenders::BUILT_IN.iter().map(|s| s.to_string()).collect()
        } else {
            let mut built: Vec<String> = args
                .allocators
                .iter()
                .filter(|a| contenders::BUILT_IN.contains(&a.as_str()))
                .cloned()
                .collect();
            if args
                .allocators
                .iter()
                .any(|a| !contenders::BUILT_IN.contains(&a.as_str()))
                && !built.iter().any(|a| a == "system")
            {
                built.push("system".to_string()); // preloads run the system worker
            }
            built
        };
        let target_dir = runner_dir().join("..");
        build::build_workers(&wanted, &target_dir, &workers)?;
    }
    let contenders = discover(&args, &workers)?;
    if contenders.is_empty() {
        return Err(format!(
            "no workers in {} (use --build or --workers)",
            workers.display()
        ));
    }
    for c in &contenders {
        contenders::verify(c)?;
    }
    let workloads: Vec<Workload> = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    let threads: Vec<usize> = if args.threads.is_empty() {
        vec![std::thread::available_parallelism().map_or(1, |n| n.get())]
    } else {
        args.threads.clone()
    };
    if args.list {
        println!(
            "workloads: {}",
            workloads
                .iter()
                .map(|w| w.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
        for c in &contenders {
            println!("{}: {} ({})", c.name, c.describe(), c.worker.display());
        }
        return Ok(true);
    }
    let scale = args
        .scale
        .unwrap_or(if args.quick { QUICK_SCALE } else { 1.0 });
    let reps = args.reps.unwrap_or(if args.quick { 1 } else { 5 }).max(1);
    let names: Vec<String> = contenders.iter().map(|c| c.name.clone()).collect();
    let reference = pick_reference(&args, &names)?;
    let total = threads.len() * workloads.len() * reps * contenders.len();
    let mut records = Vec::with_capacity(total);
    for &t in &threads {
        for &workload in &workloads {
            for rep in 0..reps {
                for contender in &contenders {
                    let record = run_one(contender, workload, t, &args, scale, rep);
                    match &record.error {
                        None => eprintln!(
                            "[{}/{total}] {} {t}t {} #{rep}: {:.3} s wall, {:.3} s cpu, {:.1} MiB",
                            records.len() + 1,
                            workload.name(),
                            contender.name,
                            record.wall_s,
                            record.user_s + record.sys_s,
                            record.max_rss_bytes as f64 / 1048576.0
                        ),
                        Some(why) => eprintln!(
                            "[{}/{total}] {} {t}t {} #{rep}: FAILED: {why}",
                            records.len() + 1,
                            workload.name(),
                            contender.name
                        ),
                    }
                    records.push(record);
                }
            }
        }
    }
    let all_passed = records.iter().all(|r| r.error.is_none());
    let results = ResultsFile {
        command: std::env::args().collect(),
        scale,
        reps,
        threads,
        workloads: workloads.iter().map(|w| w.name().to_string()).collect(),
        contenders: contenders
            .iter()
            .map(|c| (c.name.clone(), c.describe()))
            .collect(),
        reference,
        records,
    };
    print!("{}", write_outputs(&out, &results, args.font.as_deref())?);
    eprintln!("larder-bench: results in {}", out.display());
    Ok(all_passed)
}

/// Entry point of `larder-bench`.
pub fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("larder-bench: some runs FAILED (see above)");
            ExitCode::FAILURE
        }
        Err(why) => {
            eprintln!("larder-bench: {why}");
            ExitCode::FAILURE
        }
    }
}
