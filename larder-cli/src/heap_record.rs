//! Reading the records liblarder.so appends to `LARDER_REPORT_FILE` as each
//! process on larder exits (larder-c's `exit_report` module writes them):
//!
//! `larder-heap v1 pid=P ppid=P alloc_count=N ... reserved_bytes=N name=NAME`
//!
//! `name` comes last and runs to the end of the line, since a program's name
//! may contain spaces.

use serde::Serialize;

/// The heap of one process, as larder counted it when the process exited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HeapRecord {
    /// Process id.
    pub pid: u32,
    /// Parent's process id.
    pub ppid: u32,
    /// The program's name, without its directory.
    pub name: String,
    /// Blocks allocated over the process's life.
    pub alloc_count: u64,
    /// Blocks freed over the process's life.
    pub free_count: u64,
    /// Bytes requested over the process's life.
    pub requested_bytes: u64,
    /// Bytes in blocks still live at exit.
    pub live_bytes: u64,
    /// The most bytes live at any one time.
    pub peak_live_bytes: u64,
    /// Memory larder had committed (backed) at exit.
    pub committed_bytes: u64,
    /// Address space larder had reserved at exit.
    pub reserved_bytes: u64,
}

impl HeapRecord {
    /// Blocks still allocated at exit.
    pub fn live_blocks(&self) -> u64 {
        self.alloc_count.saturating_sub(self.free_count)
    }
}

const PREFIX: &str = "larder-heap v1 ";

/// Parses every well-formed record in `text`; lines that are not records (or
/// were cut short) are skipped.
pub fn parse_records(text: &str) -> Vec<HeapRecord> {
    text.lines().filter_map(parse_record).collect()
}

fn parse_record(line: &str) -> Option<HeapRecord> {
    let fields = line.strip_prefix(PREFIX)?;
    let (numbers, name) = fields.split_once(" name=")?;
    let mut record = HeapRecord {
        name: name.to_owned(),
        ..HeapRecord::default()
    };
    let mut seen = 0;
    for field in numbers.split(' ') {
        let (key, value) = field.split_once('=')?;
        let value: u64 = value.parse().ok()?;
        let slot = match key {
            "pid" => {
                record.pid = u32::try_from(value).ok()?;
                seen += 1;
                continue;
            }
            "ppid" => {
                record.ppid = u32::try_from(value).ok()?;
                continue;
            }
            "alloc_count" => &mut record.alloc_count,
            "free_count" => &mut record.free_count,
            "requested_bytes" => &mut record.requested_bytes,
            "live_bytes" => &mut record.live_bytes,
            "peak_live_bytes" => &mut record.peak_live_bytes,
            "committed_bytes" => &mut record.committed_bytes,
            "reserved_bytes" => &mut record.reserved_bytes,
            // Fields added by a later library are ignored.
            _ => continue,
        };
        *slot = value;
        seen += 1;
    }
    // A record is only trusted with its pid and all seven counters.
    (seen == 8).then_some(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "larder-heap v1 pid=42 ppid=7 alloc_count=10 free_count=4 requested_bytes=1000 \
                        live_bytes=600 peak_live_bytes=900 committed_bytes=65536 reserved_bytes=1048576 \
                        name=my prog";

    #[test]
    fn a_record_is_read_in_full() {
        let records = parse_records(&format!("{LINE}\n"));
        assert_eq!(
            records,
            [HeapRecord {
                pid: 42,
                ppid: 7,
                name: "my prog".into(),
                alloc_count: 10,
                free_count: 4,
                requested_bytes: 1000,
                live_bytes: 600,
                peak_live_bytes: 900,
                committed_bytes: 65536,
                reserved_bytes: 1048576,
            }]
        );
        assert_eq!(records[0].live_blocks(), 6);
    }

    #[test]
    fn truncated_and_foreign_lines_are_skipped() {
        let text = format!(
            "noise\n{}\n{LINE}\nlarder-heap v1 pid=1 name=x\n",
            &LINE[..60]
        );
        let records = parse_records(&text);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].pid, 42);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let line = LINE.replace(" name=", " future_counter=5 name=");
        assert_eq!(parse_records(&line).len(), 1);
    }
}
