//! Server-wide counters and the lines that report them.

use std::fmt;
use std::time::Duration;

use crate::logic::udp::UdpCounts;

/// Totals since the server started: what the STATS line and the Summary
/// report (and the endpoint, beside its own `EndpointCounters`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Connections accepted and served (rejected ones not included).
    pub served: u64,
    /// Connections open now.
    pub active: usize,
    /// Most connections open at once.
    pub peak: usize,
    /// Connections closed at once because of `--max-connections`.
    pub rejected: u64,
    /// Connections closed by the idle timeout.
    pub timed_out: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes echoed to clients.
    pub bytes_out: u64,
    /// Connections that switched to the zero-copy (splice) path.
    pub spliced: u64,
    /// UDP echo's counters, when `--udp` is on.
    pub udp: Option<UdpCounts>,
}

impl Totals {
    /// Counts a newly served connection.
    pub fn opened(&mut self) {
        self.served += 1;
        self.active += 1;
        self.peak = self.peak.max(self.active);
    }

    /// Counts a connection that ended.
    pub fn closed(&mut self) {
        self.active -= 1;
    }

    /// The body of the periodic STATS log line.
    pub fn report(&self) -> StatsLine<'_> {
        StatsLine(self)
    }

    /// The one-line summary printed when the server stops, with the log
    /// lines lost on the way to stdout (said only when there were some)
    /// and how long it ran.
    pub fn summary(&self, log_dropped: u64, uptime: Duration) -> Summary<'_> {
        Summary {
            totals: self,
            log_dropped,
            uptime,
        }
    }
}

/// Displays as the body of a STATS line.
pub struct StatsLine<'a>(&'a Totals);

impl fmt::Display for StatsLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "connections: {} total, {} active, {} peak; bytes: {} in, {} out; \
             rejected: {}; timed out: {}",
            s.served, s.active, s.peak, s.bytes_in, s.bytes_out, s.rejected, s.timed_out
        )?;
        match &s.udp {
            Some(udp) => write!(f, "; {}", udp.report()),
            None => Ok(()),
        }
    }
}

/// Displays as the final summary line: exact counts, with the byte
/// counts also in binary units where they are large.
pub struct Summary<'a> {
    /// The counters.
    pub totals: &'a Totals,
    /// Log lines lost on the way to stdout.
    pub log_dropped: u64,
    /// Time since the server started.
    pub uptime: Duration,
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.totals;
        write!(
            f,
            "Summary: {} connections served, {} bytes in{}, {} bytes out{}, peak {} concurrent, \
             {} rejected, {} timed out",
            s.served,
            s.bytes_in,
            BinaryUnits(s.bytes_in),
            s.bytes_out,
            BinaryUnits(s.bytes_out),
            s.peak,
            s.rejected,
            s.timed_out
        )?;
        if let Some(udp) = &s.udp {
            write!(f, "; {}", udp.report())?;
        }
        if self.log_dropped > 0 {
            write!(f, ", {} log lines dropped", self.log_dropped)?;
        }
        write!(f, ", up {}", Uptime(self.uptime))
    }
}

/// ` (1.5 GiB)` for a count of bytes of at least 1 KiB; nothing below
/// (the exact count says it).
struct BinaryUnits(u64);

impl fmt::Display for BinaryUnits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if self.0 < 1024 {
            return Ok(());
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < UNITS.len() {
            value /= 1024.0;
            unit += 1;
        }
        write!(f, " ({value:.1} {})", UNITS[unit])
    }
}

/// `12.3s`, `4m 05s`, `2h 03m 04s` or `3d 02h 01m`: the run's length to
/// the precision that matters at its scale.
struct Uptime(Duration);

impl fmt::Display for Uptime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let (days, hours, mins, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
        if secs < 60 {
            write!(f, "{:.1}s", self.0.as_secs_f64())
        } else if secs < 3600 {
            write!(f, "{mins}m {s:02}s")
        } else if secs < 86_400 {
            write!(f, "{hours}h {mins:02}m {s:02}s")
        } else {
            write!(f, "{days}d {hours:02}h {mins:02}m")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Peak follows the most connections open at once, not the total.
    #[test]
    fn peak_tracks_concurrency() {
        let mut stats = Totals::default();
        stats.opened();
        stats.opened();
        stats.closed();
        stats.opened();
        assert_eq!((stats.served, stats.active, stats.peak), (3, 2, 2));
    }

    // The report lines carry every figure, in the documented wording.
    #[test]
    fn lines_carry_every_figure() {
        let stats = Totals {
            served: 7,
            active: 2,
            peak: 5,
            rejected: 3,
            timed_out: 1,
            bytes_in: 1234,
            bytes_out: 1200,
            spliced: 1,
            udp: None,
        };
        assert_eq!(
            stats.report().to_string(),
            "connections: 7 total, 2 active, 5 peak; bytes: 1234 in, 1200 out; \
             rejected: 3; timed out: 1"
        );
        assert_eq!(
            stats.summary(0, Duration::from_millis(2500)).to_string(),
            "Summary: 7 connections served, 1234 bytes in (1.2 KiB), 1200 bytes out (1.2 KiB), \
             peak 5 concurrent, 3 rejected, 1 timed out, up 2.5s"
        );
        assert!(stats
            .summary(12, Duration::from_secs(3723))
            .to_string()
            .ends_with(", 1 timed out, 12 log lines dropped, up 1h 02m 03s"));
    }

    // With --udp on, both lines carry UDP's figures too.
    #[test]
    fn lines_carry_udp_when_on() {
        let mut udp = UdpCounts::default();
        udp.received(64);
        udp.sent(64);
        udp.received(64);
        udp.drop(crate::logic::udp::UdpDrop::RateLimit);
        let stats = Totals {
            udp: Some(udp),
            ..Totals::default()
        };
        let udp_part = "UDP: 2 datagrams in, 1 out, 128 bytes in, 64 out, 1 dropped \
                        (1 over the per-source rate limit)";
        assert!(
            stats
                .report()
                .to_string()
                .ends_with(&format!("; {udp_part}")),
            "{}",
            stats.report()
        );
        assert_eq!(
            stats.summary(2, Duration::from_secs(1)).to_string(),
            format!(
                "Summary: 0 connections served, 0 bytes in, 0 bytes out, peak 0 concurrent, \
                 0 rejected, 0 timed out; {udp_part}, 2 log lines dropped, up 1.0s"
            )
        );
    }

    // Large counts read at a glance; small ones need no unit.
    #[test]
    fn summary_units_scale() {
        let stats = Totals {
            bytes_in: 85_342_232_768,
            bytes_out: 1023,
            ..Totals::default()
        };
        let line = stats
            .summary(0, Duration::from_secs(2 * 86_400 + 3 * 3600 + 65))
            .to_string();
        assert!(
            line.contains(" 85342232768 bytes in (79.5 GiB), 1023 bytes out, "),
            "{line}"
        );
        assert!(line.ends_with(", up 2d 03h 01m"), "{line}");
        let line = stats.summary(0, Duration::from_secs(245)).to_string();
        assert!(line.ends_with(", up 4m 05s"), "{line}");
    }
}
