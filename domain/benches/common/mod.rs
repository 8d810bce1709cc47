//! What every benchmark of `make bench` shares: percentiles, the verdict against a target,
//! the process's memory from `/proc`, and the Markdown fragment each benchmark leaves for
//! `scripts/bench.sh` to gather into BENCHMARKS.md.
#![allow(dead_code)]

use std::time::Duration;

/// Where `scripts/bench.sh` collects the fragments (`LIFELINE_BENCH_OUT`); unset when a
/// benchmark is run on its own, and then it only prints.
const OUT_VAR: &str = "LIFELINE_BENCH_OUT";

/// Prints a benchmark's section of the report and leaves it as `<name>.md` for the report.
pub fn publish(name: &str, markdown: &str) {
    println!("{markdown}");
    if let Some(dir) = std::env::var_os(OUT_VAR) {
        let path = std::path::Path::new(&dir).join(format!("{name}.md"));
        if let Err(error) = std::fs::write(&path, markdown) {
            eprintln!("warning: could not write {}: {error}", path.display());
        }
    }
}

/// The `p`-th percentile (0..=100) of `samples`, nearest rank; zero for no samples.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000_000.0
}

/// A duration for people: µs below a millisecond, ms below ten seconds, else s.
pub fn human(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", us(d))
    } else if d < Duration::from_secs(10) {
        format!("{:.1} ms", ms(d))
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// "count, p50, p`p`" of `samples`: one table cell for a set of timings.
pub fn samples_cell(samples: &[Duration], p: f64) -> String {
    format!(
        "{}, {}, {}",
        samples.len(),
        human(percentile(samples, 50.0)),
        human(percentile(samples, p))
    )
}

/// "met" when `measured` is at most `target`, else by how much it is missed.
pub fn verdict(measured: f64, target: f64, unit: &str) -> String {
    if measured <= target {
        format!("**met** ({measured:.2} {unit} ≤ {target} {unit})")
    } else {
        format!(
            "**missed** by {:.2} {unit} ({:.2}× the target of {target} {unit})",
            measured - target,
            measured / target
        )
    }
}

/// A field of `/proc/<pid>/status` in KiB (`VmHWM`, `VmRSS`), for `pid` or this process.
pub fn status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
}

/// Resets this process's peak resident set (`VmHWM`) to its current size (Linux
/// `clear_refs` 5), so that a later peak belongs to what ran in between. False if the
/// kernel refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
