//! Round-trip-time summaries for the few samples of a ping run, computed
//! exactly (the benchmark's millions of samples use an HDR histogram).

use std::time::Duration;

/// min/avg/max/mdev as `ping` prints them, plus nearest-rank percentiles.
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
    /// Median.
    pub p50: Duration,
    /// 95th percentile.
    pub p95: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl RttSummary {
    /// Summarizes `samples`; `None` when there are none.
    pub fn of(samples: &[Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let n = sorted.len() as f64;
        let secs: Vec<f64> = sorted.iter().map(Duration::as_secs_f64).collect();
        let mean = secs.iter().sum::<f64>() / n;
        let variance = secs.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        Some(Self {
            min: sorted[0],
            avg: Duration::from_secs_f64(mean),
            max: sorted[sorted.len() - 1],
            mdev: Duration::from_secs_f64(variance.sqrt()),
            p50: nearest_rank(&sorted, 50.0),
            p95: nearest_rank(&sorted, 95.0),
            p99: nearest_rank(&sorted, 99.0),
        })
    }
}

/// The smallest sample with at least `percent`% of samples at or below it.
fn nearest_rank(sorted: &[Duration], percent: f64) -> Duration {
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
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

    #[test]
    fn summary_of_known_samples() {
        let samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let s = RttSummary::of(&samples).unwrap();
        assert_eq!((s.min, s.max), (ms(1), ms(100)));
        assert_eq!((s.p50, s.p95, s.p99), (ms(50), ms(95), ms(99)));
        assert!((millis(s.avg) - 50.5).abs() < 1e-6);
        // Population standard deviation of 1..=100.
        assert!((millis(s.mdev) - 28.866).abs() < 1e-3);
    }

    #[test]
    fn one_sample_is_every_statistic() {
        let s = RttSummary::of(&[ms(7)]).unwrap();
        assert_eq!((s.min, s.avg, s.max, s.p99), (ms(7), ms(7), ms(7), ms(7)));
        assert_eq!(s.mdev, Duration::ZERO);
        assert_eq!(RttSummary::of(&[]), None);
    }
}
