//! The last minutes of the server's totals, one sample a second, kept so
//! that the dashboard can chart them and show the current throughput from
//! its first render (a page that only had its own samples would show
//! nothing until it had two, and no history at all).

use std::collections::VecDeque;

use serde::Serialize;

use crate::logic::stats::Totals;

/// Seconds between samples.
pub const HISTORY_STEP_S: f64 = 1.0;
/// Samples kept: five minutes.
pub const HISTORY_LEN: usize = 300;
/// The current throughput is measured over about this many seconds.
pub const RATE_WINDOW_S: f64 = 5.0;

/// One sample of the totals.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    /// Unix time, seconds.
    t: f64,
    bytes_in: u64,
    bytes_out: u64,
    active: usize,
}

/// The totals sampled about once a second, the newest last.
#[derive(Debug, Clone)]
pub struct History {
    samples: VecDeque<Sample>,
}

impl Default for History {
    fn default() -> Self {
        Self::new()
    }
}

/// The throughput between two readings of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Seconds the rates were measured over.
    pub window_s: f64,
    /// Bytes received per second.
    pub in_bps: f64,
    /// Bytes echoed per second.
    pub out_bps: f64,
}

/// The history as `/stats.json` writes it: per step, its end time, the
/// throughput over it and the connections open at its end.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HistorySeries {
    pub step_s: f64,
    pub t: Vec<f64>,
    pub in_bps: Vec<f64>,
    pub out_bps: Vec<f64>,
    pub active: Vec<usize>,
}

impl History {
    /// No samples yet.
    pub const fn new() -> Self {
        Self {
            samples: VecDeque::new(),
        }
    }

    /// Records the totals at unix time `t`, unless the last sample is less
    /// than a step old (the loop may call this more often).
    pub fn record(&mut self, t: f64, totals: &Totals) {
        if let Some(last) = self.samples.back() {
            if t - last.t < HISTORY_STEP_S * 0.9 {
                return;
            }
        }
        if self.samples.len() == HISTORY_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back(Sample {
            t,
            bytes_in: totals.bytes_in,
            bytes_out: totals.bytes_out,
            active: totals.active,
        });
    }

    /// The throughput from the oldest sample of the last [`RATE_WINDOW_S`]
    /// to `totals` read at `t`; `None` before the first sample.
    pub fn rates(&self, t: f64, totals: &Totals) -> Option<Rates> {
        let from = self
            .samples
            .iter()
            .find(|s| t - s.t <= RATE_WINDOW_S + HISTORY_STEP_S * 0.5)
            .or(self.samples.back())?;
        let span = t - from.t;
        (span > 0.0).then(|| Rates {
            window_s: span,
            in_bps: totals.bytes_in.saturating_sub(from.bytes_in) as f64 / span,
            out_bps: totals.bytes_out.saturating_sub(from.bytes_out) as f64 / span,
        })
    }

    /// The series the dashboard charts: one point per pair of successive
    /// samples.
    pub fn series(&self) -> HistorySeries {
        let mut out = HistorySeries {
            step_s: HISTORY_STEP_S,
            ..HistorySeries::default()
        };
        let pairs = self.samples.iter().zip(self.samples.iter().skip(1));
        for (a, b) in pairs {
            let span = b.t - a.t;
            if span <= 0.0 {
                continue;
            }
            // Milliseconds and whole bytes: the document stays small.
            out.t.push((b.t * 1000.0).round() / 1000.0);
            let per_s = |now: u64, then: u64| (now.saturating_sub(then) as f64 / span).round();
            out.in_bps.push(per_s(b.bytes_in, a.bytes_in));
            out.out_bps.push(per_s(b.bytes_out, a.bytes_out));
            out.active.push(b.active);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(bytes_in: u64, bytes_out: u64, active: usize) -> Totals {
        Totals {
            bytes_in,
            bytes_out,
            active,
            ..Totals::default()
        }
    }

    // One sample a step however often the loop calls; the oldest go first.
    #[test]
    fn keeps_one_sample_a_step_and_five_minutes() {
        let mut h = History::default();
        for i in 0..(HISTORY_LEN as u64 + 10) * 4 {
            let t = i as f64 * 0.25;
            h.record(t, &totals(i * 100, i * 50, 1));
        }
        assert_eq!(h.samples.len(), HISTORY_LEN);
        let s = h.series();
        assert_eq!(s.t.len(), HISTORY_LEN - 1);
        // 4 calls a second, 100 bytes in and 50 out each.
        assert!(s.in_bps.iter().all(|&r| (r - 400.0).abs() < 1e-6), "{s:?}");
        assert!(s.out_bps.iter().all(|&r| (r - 200.0).abs() < 1e-6));
        assert_eq!(s.active, vec![1; HISTORY_LEN - 1]);
    }

    // The current rate spans the last few seconds, not the whole history,
    // and is there as soon as one sample was taken.
    #[test]
    fn rates_cover_the_last_seconds() {
        let mut h = History::default();
        assert_eq!(h.rates(1.0, &totals(0, 0, 0)), None);
        h.record(0.0, &totals(0, 0, 0));
        let r = h.rates(0.5, &totals(1000, 500, 1)).unwrap();
        assert_eq!((r.window_s, r.in_bps, r.out_bps), (0.5, 2000.0, 1000.0));
        // Idle for a minute, then 10 s of 1000 B/s.
        for t in 1..=60 {
            h.record(t as f64, &totals(1000, 500, 1));
        }
        for t in 61..=70 {
            let b = 1000 + (t - 60) * 1000;
            h.record(t as f64, &totals(b, b, 1));
        }
        let r = h.rates(70.0, &totals(11_000, 11_000, 1)).unwrap();
        assert_eq!(r.window_s, 5.0);
        assert_eq!(r.in_bps, 1000.0);
    }
}
