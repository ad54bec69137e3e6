//! CPU time and memory of the node processes, from Linux's /proc, and their size on disk. A
//! process that is gone reads as zeros.

use std::path::PathBuf;

/// Clock ticks per second of the CPU times in /proc (the Linux USER_HZ).
const CLOCK_TICKS_PER_S: f64 = 100.0;
/// Fields of /proc/PID/stat (numbered from 1) holding the user and system CPU time, in ticks.
const STAT_UTIME_FIELD: usize = 14;
const STAT_STIME_FIELD: usize = 15;
/// The field of /proc/PID/stat holding the parent's pid.
const STAT_PPID_FIELD: usize = 4;
/// The first field of /proc/PID/stat after the command name (which may hold spaces).
const STAT_FIELD_AFTER_COMMAND: usize = 3;

/// The node processes a suite watches.
pub(super) struct Procs {
    /// (name, pid) of each node, in validator order.
    pub(super) pids: Vec<(String, u32)>,
    /// One node's base path: its size on disk gives bytes per CDR.
    pub(super) base: PathBuf,
}

/// One process's CPU time and memory, from /proc.
pub(super) struct ProcSample {
    /// User plus system CPU time, in clock ticks.
    cpu_ticks: u64,
    /// Resident memory now (VmRSS).
    pub(super) rss_kib: u64,
    /// Peak resident memory (VmHWM).
    pub(super) peak_kib: u64,
}

impl Procs {
    pub(super) fn sample(&self) -> Vec<ProcSample> {
        self.pids.iter().map(|(_, pid)| ProcSample::read(*pid)).collect()
    }

    /// CPU use of each process between two samples, in percent of one core.
    pub(super) fn cpu_percent(before: &[ProcSample], after: &[ProcSample], seconds: f64) -> Vec<f64> {
        before
            .iter()
            .zip(after)
            .map(|(b, a)| {
                let used = a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / CLOCK_TICKS_PER_S;
                (used / seconds.max(1e-9) * 1000.0).round() / 10.0
            })
            .collect()
    }
}

impl ProcSample {
    fn read(pid: u32) -> ProcSample {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command name, which may hold spaces and ends with the last `)`.
        let fields: Vec<&str> =
            stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
        let field = |n: usize| {
            fields.get(n - STAT_FIELD_AFTER_COMMAND).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0)
        };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ProcSample {
            cpu_ticks: field(STAT_UTIME_FIELD) + field(STAT_STIME_FIELD),
            rss_kib: kib("VmRSS:"),
            peak_kib: kib("VmHWM:"),
        }
    }
}

/// The child processes of `parent`, named `node-PID`, in pid order.
pub(super) fn children_of(parent: u32) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(STAT_PPID_FIELD - STAT_FIELD_AFTER_COMMAND))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(parent) {
            out.push((format!("node-{pid}"), pid));
        }
    }
    out.sort_by_key(|(_, pid)| *pid);
    out
}

/// Bytes of the files under `dir`.
pub(super) fn dir_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match entry.metadata() {
            Ok(meta) if meta.is_dir() => total += dir_size(&entry.path()),
            Ok(meta) => total += meta.len(),
            Err(_) => {}
        }
    }
    total
}
