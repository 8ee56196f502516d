//! The one line a worker prints on stdout when a workload has passed, and its parser.
//!
//! `larder-bench-result allocator=mimalloc workload=tree ops=42 checked=42 kernel_s=0.5 m.x=1`
//! Fields are `key=value` with no spaces; workload metrics carry an `m.` prefix.

use super::Outcome;

/// The first word of a result line, so the runner can ignore anything else a worker prints.
pub const TAG: &str = "larder-bench-result";

/// A parsed result line.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultLine {
    /// The allocator the worker was built with.
    pub allocator: String,
    /// The workload's name.
    pub workload: String,
    /// The workload's own timing of its kernel (without process start and exit), in seconds.
    pub kernel_s: f64,
    /// Allocations, verified blocks and workload metrics.
    pub outcome: Outcome,
}

/// Formats a result line.
pub fn format(allocator: &str, workload: &str, kernel_s: f64, outcome: &Outcome) -> String {
    let mut line = format!(
        "{TAG} allocator={allocator} workload={workload} ops={} checked={} kernel_s={kernel_s}",
        outcome.ops, outcome.checked
    );
    for (name, value) in &outcome.metrics {
        line.push_str(&format!(" m.{name}={value}"));
    }
    line
}

/// Finds and parses the result line in a worker's stdout.
pub fn parse(stdout: &str) -> Result<ResultLine, String> {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(TAG))
        .ok_or_else(|| "the worker printed no result line".to_string())?;
    let mut parsed = ResultLine {
        allocator: String::new(),
        workload: String::new(),
        kernel_s: f64::NAN,
        outcome: Outcome::default(),
    };
    for field in line.split_whitespace().skip(1) {
        let (key, value) = field
            .split_once('=')
            .ok_or_else(|| format!("bad field {field:?}"))?;
        let number = || value.parse::<f64>().map_err(|e| format!("{key}: {e}"));
        match key {
            "allocator" => parsed.allocator = value.to_string(),
            "workload" => parsed.workload = value.to_string(),
            "ops" => parsed.outcome.ops = number()? as u64,
            "checked" => parsed.outcome.checked = number()? as u64,
            "kernel_s" => parsed.kernel_s = number()?,
            _ => match key.strip_prefix("m.") {
                Some(metric) => parsed.outcome.metrics.push((metric.to_string(), number()?)),
                None => return Err(format!("unknown field {key:?}")),
            },
        }
    }
    if parsed.allocator.is_empty() || parsed.workload.is_empty() {
        return Err("result line lacks allocator or workload".to_string());
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_formatted_line_parses_back() {
        let outcome = Outcome {
            ops: 12,
            checked: 11,
            metrics: vec![("peak_live_bytes".into(), 4096.0), ("t50_ms".into(), 1.5)],
        };
        let text = format!("noise\n{}\n", format("mimalloc", "tree", 0.25, &outcome));
        let parsed = parse(&text).unwrap();
        assert_eq!(parsed.allocator, "mimalloc");
        assert_eq!(parsed.workload, "tree");
        assert_eq!(parsed.kernel_s, 0.25);
        assert_eq!(parsed.outcome, outcome);
    }

    #[test]
    fn garbage_is_refused() {
        assert!(parse("hello").is_err());
        assert!(parse(&format!("{TAG} allocator=x workload=y what=1")).is_err());
        assert!(parse(&format!("{TAG} ops=1")).is_err());
    }
}
