//! CPU time and memory of a process, read from `/proc` (Linux).
//!
//! The benchmark client samples the server it loads at the start and end of
//! its measured window, so "CPU per echoed message" comes from the same run
//! as the message count. CPU time is the sum of the per-thread run times in
//! `/proc/PID/task/*/schedstat` (nanoseconds, so a short window is still
//! exact; summing threads makes multi-threaded peers comparable).

use std::fs;
use std::io;
use std::time::Duration;

/// One reading of a process's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessSample {
    /// CPU time used so far by all of its live threads.
    pub cpu: Duration,
    /// Resident memory now (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// Highest resident memory since it started (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
}

/// Reads the counters of process `pid`.
pub fn sample(pid: u32) -> io::Result<ProcessSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |key| {
        status_kib(&status, key).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/status has no {key}"),
            )
        })
    };
    Ok(ProcessSample {
        cpu: cpu_time(pid)?,
        rss_kib: field("VmRSS")?,
        peak_rss_kib: field("VmHWM")?,
    })
}

fn cpu_time(pid: u32) -> io::Result<Duration> {
    let mut nanos: u64 = 0;
    for entry in fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = entry?.path().join("schedstat");
        // A thread that exits between read_dir and this read is simply gone.
        if let Ok(text) = fs::read_to_string(path) {
            nanos = nanos.saturating_add(schedstat_run_nanos(&text).unwrap_or(0));
        }
    }
    Ok(Duration::from_nanos(nanos))
}

/// The first field of a `schedstat` file: nanoseconds spent on a CPU.
///
/// ```
/// assert_eq!(echo_server::os::procstat::schedstat_run_nanos("898013 0 1\n"), Some(898_013));
/// ```
pub fn schedstat_run_nanos(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// A `kB` line of `/proc/PID/status`, e.g. `VmRSS:    2048 kB`.
///
/// ```
/// let status = "Name:\techo\nVmHWM:\t    4096 kB\nVmRSS:\t    2048 kB\n";
/// assert_eq!(echo_server::os::procstat::status_kib(status, "VmRSS"), Some(2048));
/// ```
pub fn status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().strip_suffix("kB")?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_process_accumulates_cpu_time() {
        // A child of its own: in this test process, other test threads come
        // and go, and a thread's time leaves the sum when it exits.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("spawn sh");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let first = sample(child.id());
        std::thread::sleep(std::time::Duration::from_millis(200));
        let second = sample(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let (first, second) = (
            first.expect("child's /proc"),
            second.expect("child's /proc"),
        );
        assert!(second.cpu > first.cpu, "{first:?} then {second:?}");
        assert!(second.rss_kib > 0 && second.peak_rss_kib >= second.rss_kib);
    }

    #[test]
    fn malformed_lines_are_not_numbers() {
        assert_eq!(status_kib("VmRSS: lots kB", "VmRSS"), None);
        assert_eq!(status_kib("VmRSSX: 5 kB", "VmRSS"), None);
        assert_eq!(schedstat_run_nanos(""), None);
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(sample(u32::MAX).is_err());
    }
}
