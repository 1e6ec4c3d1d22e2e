//! Server-wide counters and the lines that report them.

use std::fmt;

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
    /// lines lost on the way to stdout (said only when there were some).
    pub fn summary(&self, log_dropped: u64) -> Summary<'_> {
        Summary(self, log_dropped)
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
        )
    }
}

/// Displays as the final summary line.
pub struct Summary<'a>(&'a Totals, u64);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(
            f,
            "Summary: {} connections served, {} bytes in, {} bytes out, peak {} concurrent, \
             {} rejected, {} timed out",
            s.served, s.bytes_in, s.bytes_out, s.peak, s.rejected, s.timed_out
        )?;
        match self.1 {
            0 => Ok(()),
            dropped => write!(f, ", {dropped} log lines dropped"),
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
        };
        assert_eq!(
            stats.report().to_string(),
            "connections: 7 total, 2 active, 5 peak; bytes: 1234 in, 1200 out; \
             rejected: 3; timed out: 1"
        );
        assert_eq!(
            stats.summary(0).to_string(),
            "Summary: 7 connections served, 1234 bytes in, 1200 bytes out, \
             peak 5 concurrent, 3 rejected, 1 timed out"
        );
        assert!(stats
            .summary(12)
            .to_string()
            .ends_with(", 1 timed out, 12 log lines dropped"));
    }
}
