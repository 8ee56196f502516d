//! Raw run records and their medians per (threads, workload, contender).

use std::collections::BTreeMap;

/// One run of one workload by one contender: what the runner measured and what the worker said.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// Thread count given to the workload.
    pub threads: usize,
    /// Size scale given to the workload.
    pub scale: f64,
    /// Workload name.
    pub workload: String,
    /// Contender name.
    pub contender: String,
    /// Repetition number, from 0.
    pub rep: usize,
    /// Wall seconds, spawn to exit.
    pub wall_s: f64,
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub sys_s: f64,
    /// Peak RSS in bytes.
    pub max_rss_bytes: u64,
    /// The worker's own timing of the workload kernel, in seconds.
    pub kernel_s: f64,
    /// Allocations made.
    pub ops: u64,
    /// Blocks verified.
    pub checked: u64,
    /// Workload figures.
    pub metrics: BTreeMap<String, f64>,
    /// Why the run failed, if it did (then the figures above are zero).
    pub error: Option<String>,
}

/// Medians over the successful runs of one (threads, workload, contender).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Cell {
    /// Successful runs.
    pub runs: usize,
    /// Failed runs.
    pub failures: usize,
    /// Median wall seconds.
    pub wall_s: f64,
    /// Median user+sys seconds.
    pub cpu_s: f64,
    /// Median system seconds.
    pub sys_s: f64,
    /// Median peak RSS in bytes.
    pub max_rss_bytes: f64,
    /// Median of each workload figure.
    pub metrics: BTreeMap<String, f64>,
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// Key of a cell: (threads, workload, contender).
pub type CellKey = (usize, String, String);

/// Groups records into cells and takes medians.
pub fn summarise(records: &[RunRecord]) -> BTreeMap<CellKey, Cell> {
    let mut groups: BTreeMap<CellKey, Vec<&RunRecord>> = BTreeMap::new();
    for r in records {
        groups
            .entry((r.threads, r.workload.clone(), r.contender.clone()))
            .or_default()
            .push(r);
    }
    groups
        .into_iter()
        .map(|(key, runs)| {
            let ok: Vec<&RunRecord> = runs.iter().copied().filter(|r| r.error.is_none()).collect();
            let of = |f: &dyn Fn(&RunRecord) -> f64| {
                median(&ok.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let mut metrics = BTreeMap::new();
            for name in ok.iter().flat_map(|r| r.metrics.keys()) {
                if !metrics.contains_key(name) {
                    metrics.insert(
                        name.clone(),
                        of(&|r| r.metrics.get(name).copied().unwrap_or(f64::NAN)),
                    );
                }
            }
            let cell = Cell {
                runs: ok.len(),
                failures: runs.len() - ok.len(),
                wall_s: of(&|r| r.wall_s),
                cpu_s: of(&|r| r.user_s + r.sys_s),
                sys_s: of(&|r| r.sys_s),
                max_rss_bytes: of(&|r| r.max_rss_bytes as f64),
                metrics,
            };
            (key, cell)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(contender: &str, wall_s: f64, error: Option<&str>) -> RunRecord {
        RunRecord {
            threads: 2,
            scale: 1.0,
            workload: "tree".into(),
            contender: contender.into(),
            rep: 0,
            wall_s,
            user_s: wall_s,
            sys_s: 0.5,
            max_rss_bytes: 1 << 20,
            kernel_s: wall_s,
            ops: 1,
            checked: 1,
            metrics: BTreeMap::from([("t50_ms".to_string(), wall_s * 10.0)]),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }

    #[test]
    fn cells_take_medians_of_successful_runs_only() {
        let records = vec![
            record("a", 1.0, None),
            record("a", 3.0, None),
            record("a", 2.0, None),
            record("a", 100.0, Some("boom")),
            record("b", 5.0, None),
        ];
        let cells = summarise(&records);
        let a = &cells[&(2, "tree".to_string(), "a".to_string())];
        assert_eq!((a.runs, a.failures), (3, 1));
        assert_eq!(a.wall_s, 2.0);
        assert_eq!(a.cpu_s, 2.5);
        assert_eq!(a.metrics["t50_ms"], 20.0);
        assert_eq!(cells[&(2, "tree".to_string(), "b".to_string())].wall_s, 5.0);
    }
}
