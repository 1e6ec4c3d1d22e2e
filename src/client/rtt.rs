//! Round-trip-time statistics for a ping run, in fixed memory however long
//! it lasts: min, max, mean and standard deviation kept exactly as running
//! figures, percentiles from an HDR histogram (as the benchmark's).

use std::time::Duration;

use hdrhistogram::Histogram;

/// Longest time the histogram tells apart; longer samples count as this
/// (min, max, avg and mdev stay exact).
const MAX_TRACKED_NS: u64 = 24 * 3600 * 1_000_000_000;

/// min/avg/max/mdev as `ping` prints them, plus percentiles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttSummary {
    /// Fastest sample.
    pub min: Duration,
    /// Mean.
    pub avg: Duration,
    /// Slowest sample.
    pub max: Duration,
    /// Standard deviation (ping's "mdev").
    pub mdev: Duration,
    /// Median (3 significant digits).
    pub p50: Duration,
    /// 95th percentile (3 significant digits).
    pub p95: Duration,
    /// 99th percentile (3 significant digits).
    pub p99: Duration,
}

/// The running figures of any number of samples.
#[derive(Debug, Clone)]
pub struct RttStats {
    count: u64,
    min: Duration,
    max: Duration,
    /// Welford's running mean and sum of squared deviations, in seconds:
    /// stable over billions of samples, unlike a sum of squares.
    mean: f64,
    m2: f64,
    histogram: Histogram<u64>,
}

impl Default for RttStats {
    fn default() -> Self {
        Self::new()
    }
}

impl RttStats {
    /// No samples yet.
    pub fn new() -> Self {
        Self {
            count: 0,
            min: Duration::MAX,
            max: Duration::ZERO,
            mean: 0.0,
            m2: 0.0,
            // Fixed bounds: the histogram never grows after this.
            histogram: Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, sample: Duration) {
        self.count += 1;
        self.min = self.min.min(sample);
        self.max = self.max.max(sample);
        let x = sample.as_secs_f64();
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        let ns = u64::try_from(sample.as_nanos()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(ns.max(1));
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The summary; `None` when there are no samples.
    pub fn summary(&self) -> Option<RttSummary> {
        if self.count == 0 {
            return None;
        }
        let variance = (self.m2 / self.count as f64).max(0.0);
        // The histogram's bucket may reach past the slowest sample.
        let quantile = |q: f64| {
            Duration::from_nanos(self.histogram.value_at_quantile(q)).clamp(self.min, self.max)
        };
        Some(RttSummary {
            min: self.min,
            avg: Duration::from_secs_f64(self.mean.max(0.0)),
            max: self.max,
            mdev: Duration::from_secs_f64(variance.sqrt()),
            p50: quantile(0.50),
            p95: quantile(0.95),
            p99: quantile(0.99),
        })
    }
}

/// Milliseconds as a float, the unit every RTT is printed in.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn stats(samples: impl IntoIterator<Item = Duration>) -> RttStats {
        let mut s = RttStats::new();
        samples.into_iter().for_each(|d| s.record(d));
        s
    }

    fn close(a: Duration, b: Duration) -> bool {
        // Three significant digits.
        (millis(a) - millis(b)).abs() <= millis(b) * 1e-3
    }

    #[test]
    fn summary_of_known_samples() {
        let s = stats((1..=100).rev().map(ms)).summary().unwrap();
        assert_eq!((s.min, s.max), (ms(1), ms(100)));
        assert!(close(s.p50, ms(50)) && close(s.p95, ms(95)) && close(s.p99, ms(99)));
        assert!((millis(s.avg) - 50.5).abs() < 1e-6);
        // Population standard deviation of 1..=100.
        assert!((millis(s.mdev) - 28.866).abs() < 1e-3);
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let s = stats([ms(7)]).summary().unwrap();
        assert_eq!((s.min, s.avg, s.max, s.p99), (ms(7), ms(7), ms(7), ms(7)));
        assert_eq!(s.mdev, Duration::ZERO);
        assert_eq!(RttStats::new().summary(), None);
    }

    // Many samples cost no memory and keep min/max exact and the mean and
    // deviation right.
    #[test]
    fn a_million_samples_in_fixed_memory() {
        let mut s = RttStats::new();
        for i in 0..1_000_000u64 {
            s.record(Duration::from_micros(100 + i % 2 * 20));
        }
        let r = s.summary().unwrap();
        assert_eq!(s.count(), 1_000_000);
        assert_eq!(
            (r.min, r.max),
            (Duration::from_micros(100), Duration::from_micros(120))
        );
        assert!((millis(r.avg) - 0.110).abs() < 1e-9, "{r:?}");
        assert!((millis(r.mdev) - 0.010).abs() < 1e-9, "{r:?}");
    }
}
