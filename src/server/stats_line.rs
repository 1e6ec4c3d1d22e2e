//! The STATS line (every `--stats-interval`, and on SIGUSR1):
//! the server's totals in one log line.

use std::time::Instant;

use log::info;

use super::Server;

impl Server {
    /// Logs the totals when `--stats-interval` says it is time.
    pub(super) fn report_stats(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.next_stats, self.config.stats_interval) else {
            return;
        };
        if now >= at {
            self.log_stats(now);
            self.next_stats = Some(now + every);
        }
    }

    /// Logs the totals now.
    pub(super) fn log_stats(&mut self, now: Instant) {
        // The endpoint's TCP figures are fresh at least this often.
        if let Some(endpoint) = &mut self.endpoint {
            if endpoint.listener().is_some() {
                endpoint.figures().sample_tcp(&mut self.connections, now);
            }
        }
        let s = &self.stats;
        info!(
            target: "STATS",
            connections_total = s.served,
            connections_active = s.active,
            connections_peak = s.peak,
            bytes_in = s.bytes_in,
            bytes_out = s.bytes_out,
            rejected = s.rejected,
            timed_out = s.timed_out;
            "{}",
            s.report()
        );
    }
}
