//! `bench -i SECS`: the measured window cut into intervals, each with its
//! own rate and latency percentiles, as iperf3 reports them. A text line
//! or a `--json-stream` event goes out as each interval ends; `--json`
//! keeps them for the report's `intervals` array.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::rate::{throughput, RateFormat};
use super::report::thousands;
use super::window::MAX_LATENCY_NS;
use crate::client::error::ClientError;
use crate::client::output;
use crate::logic::json;

/// Most intervals the `--json` report lists: the latest ones, so a run
/// of any length prints a bounded document.
pub const JSON_INTERVALS: usize = 10_000;

/// Where each interval goes as it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntervalOutput {
    /// A text line on stdout.
    Text(RateFormat),
    /// Kept for the `--json` report.
    Report,
    /// A `--json-stream` event on stdout.
    Stream,
}

/// What an interval's `messages` count, as its text line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Echoed messages, each timed.
    Msgs,
    /// `--size` writes echoed (bulk) or taken (discard): not timed.
    Writes,
    /// `--size` blocks received (chargen): not timed.
    Blocks,
    /// framed replies, each timed.
    Frames,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Msgs => "msgs",
            Unit::Writes => "writes",
            Unit::Blocks => "blocks",
            Unit::Frames => "frames",
        }
    }

    /// Whether its messages have a latency.
    fn timed(self) -> bool {
        matches!(self, Unit::Msgs | Unit::Frames)
    }
}

/// One interval's figures; times in seconds from the window's start.
#[derive(Debug, Clone, Serialize)]
pub struct IntervalFigures {
    /// Start, seconds into the measured window.
    pub start_s: f64,
    /// End, seconds into the measured window.
    pub end_s: f64,
    /// Messages (bulk and discard: writes; chargen: `--size` blocks;
    /// framed: replies) echoed and verified in it.
    pub messages: u64,
    /// Bytes echoed and verified (discard and framed: sent; chargen:
    /// received and checked) in it.
    pub bytes: u64,
    /// Messages per second.
    pub msgs_per_s: f64,
    /// Megabytes (10⁶ bytes) per second.
    pub mb_per_s: f64,
    /// Bits per second.
    pub bits_per_s: f64,
    /// Median latency of its messages, µs (only where they are timed).
    pub p50_us: Option<f64>,
    /// 99th percentile latency of its messages, µs (only where timed).
    pub p99_us: Option<f64>,
}

/// The intervals of one run.
#[derive(Debug)]
pub struct Intervals {
    period: Duration,
    output: IntervalOutput,
    unit: Unit,
    /// The window's start: intervals count from it.
    origin: Option<Instant>,
    /// The current interval's start and end.
    from: Instant,
    /// When the current interval ends.
    pub next: Instant,
    messages: u64,
    bytes: u64,
    latency: Histogram<u64>,
    /// For `--json`: the latest intervals, at most [`JSON_INTERVALS`].
    pub kept: VecDeque<IntervalFigures>,
    /// Intervals that no longer fit in `kept`.
    pub omitted: u64,
}

impl Intervals {
    /// Intervals of `period` of an echo run (bulk: of writes); they start
    /// when the window opens.
    pub fn new(
        period: Duration,
        output: IntervalOutput,
        bulk: bool,
        now: Instant,
    ) -> Result<Self, ClientError> {
        let unit = if bulk { Unit::Writes } else { Unit::Msgs };
        Self::of(period, output, unit, now)
    }

    /// Intervals of `period` counting `unit`.
    pub fn of(
        period: Duration,
        output: IntervalOutput,
        unit: Unit,
        now: Instant,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            period,
            output,
            unit,
            origin: None,
            from: now,
            next: now + period,
            messages: 0,
            bytes: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
                .map_err(|e| ClientError::Other(format!("latency histogram: {e}")))?,
            kept: VecDeque::new(),
            omitted: 0,
        })
    }

    /// The measured window opens at `at`: the first interval starts.
    pub fn open(&mut self, at: Instant) {
        self.origin = Some(at);
        self.from = at;
        self.next = at + self.period;
    }

    /// Whether the intervals are running (the window is open).
    pub fn running(&self) -> bool {
        self.origin.is_some()
    }

    /// Counts echoes in the current interval.
    pub fn count(&mut self, messages: u64, bytes: u64) {
        self.messages += messages;
        self.bytes += bytes;
    }

    /// Counts one message's latency in the current interval.
    pub fn latency(&mut self, ns: u64) {
        self.latency.saturating_record(ns.max(1));
    }

    /// Ends every interval that is over by `now`.
    pub fn tick(&mut self, now: Instant) {
        while self.running() && now >= self.next {
            let end = self.next;
            self.emit(end);
            self.from = end;
            self.next = end + self.period;
        }
    }

    /// The window closed at `end`: the last interval, if it has any
    /// length, ends there too.
    pub fn close(&mut self, end: Instant) {
        self.tick(end);
        if self.running() && end > self.from {
            self.emit(end);
        }
        self.origin = None;
    }

    /// For the report: the period, the intervals kept and how many were
    /// left out.
    pub fn into_report(self) -> (Duration, Vec<IntervalFigures>, u64) {
        (self.period, Vec::from(self.kept), self.omitted)
    }

    fn emit(&mut self, end: Instant) {
        let Some(origin) = self.origin else { return };
        let seconds = end.saturating_duration_since(self.from).as_secs_f64();
        let per_s = |x: f64| if seconds > 0.0 { x / seconds } else { 0.0 };
        let round = |x: f64, digits: i32| {
            let scale = 10f64.powi(digits);
            (x * scale).round() / scale
        };
        let measured = self.unit.timed() && !self.latency.is_empty();
        let quantile = |q: f64| round(self.latency.value_at_quantile(q) as f64 / 1e3, 3);
        let figures = IntervalFigures {
            start_s: round(self.from.saturating_duration_since(origin).as_secs_f64(), 6),
            end_s: round(end.saturating_duration_since(origin).as_secs_f64(), 6),
            messages: self.messages,
            bytes: self.bytes,
            msgs_per_s: round(per_s(self.messages as f64), 3),
            mb_per_s: round(per_s(self.bytes as f64) / 1e6, 3),
            bits_per_s: round(per_s(self.bytes as f64) * 8.0, 0),
            p50_us: measured.then(|| quantile(0.50)),
            p99_us: measured.then(|| quantile(0.99)),
        };
        self.messages = 0;
        self.bytes = 0;
        self.latency.reset();
        match self.output {
            IntervalOutput::Text(format) => {
                output::line(format_args!("{}", text_line(&figures, self.unit, format)))
            }
            IntervalOutput::Stream => output::stream_event("interval", &json::to_string(&figures)),
            IntervalOutput::Report => {
                if self.kept.len() == JSON_INTERVALS {
                    self.kept.pop_front();
                    self.omitted += 1;
                }
                self.kept.push_back(figures);
            }
        }
    }
}

/// `bench --json-stream`'s "start" event: what the run is about to do.
#[derive(Serialize)]
pub struct StreamStart {
    /// Always "bench".
    pub mode: &'static str,
    /// The server's mode (`--mode`).
    pub service: &'static str,
    /// The address as given.
    pub target: String,
    /// The address that accepted the probe connection.
    pub address: std::net::SocketAddr,
    /// Connections to open.
    pub connections: u32,
    /// Message (bulk: write) size.
    pub size: usize,
    /// Messages in flight per connection.
    pub depth: u32,
    /// Bulk streaming.
    pub bulk: bool,
    /// Seconds per "interval" event; none when the engine has none.
    pub interval_s: Option<f64>,
}

impl StreamStart {
    /// As one JSON object.
    pub fn to_json(&self) -> String {
        json::to_string(self)
    }
}

/// `[  0.00-  1.00 s]  12,345 msgs/s  0.79 MB/s  p50 45.1 µs  p99 80.2 µs`
fn text_line(f: &IntervalFigures, unit: Unit, format: RateFormat) -> String {
    let mut line = format!(
        "[{:7.2}-{:7.2} s]  {} {}/s  {}",
        f.start_s,
        f.end_s,
        thousands(f.msgs_per_s.round() as u64),
        unit.name(),
        throughput(f.bytes as f64 / (f.end_s - f.start_s).max(1e-9), format)
    );
    if let (Some(p50), Some(p99)) = (f.p50_us, f.p99_us) {
        line.push_str(&format!("  p50 {p50:.1} µs  p99 {p99:.1} µs"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_cut_at_each_period_and_at_its_end() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut iv = Intervals::new(second, IntervalOutput::Report, false, t0).unwrap();
        // Nothing counts before the window opens.
        iv.tick(t0 + 5 * second);
        assert!(iv.kept.is_empty());
        iv.open(t0);
        iv.count(100, 6400);
        iv.latency(50_000);
        iv.tick(t0 + second / 2);
        assert!(iv.kept.is_empty());
        iv.tick(t0 + second);
        iv.count(10, 640);
        iv.close(t0 + second + second / 4);
        let kept: Vec<_> = iv.kept.iter().collect();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert_eq!((kept[0].start_s, kept[0].end_s), (0.0, 1.0));
        assert_eq!((kept[0].messages, kept[0].msgs_per_s), (100, 100.0));
        assert_eq!(kept[0].bits_per_s, 51_200.0);
        assert!((kept[0].p50_us.unwrap() - 50.0).abs() < 0.1, "{kept:?}");
        assert_eq!((kept[1].start_s, kept[1].end_s), (1.0, 1.25));
        assert_eq!((kept[1].messages, kept[1].msgs_per_s), (10, 40.0));
        // Its messages' latencies were not recorded: none, not the last
        // interval's.
        assert_eq!(kept[1].p50_us, None);
    }

    #[test]
    fn the_text_line_names_writes_in_bulk() {
        let f = IntervalFigures {
            start_s: 0.0,
            end_s: 1.0,
            messages: 1000,
            bytes: 1_250_000,
            msgs_per_s: 1000.0,
            mb_per_s: 1.25,
            bits_per_s: 1e7,
            p50_us: None,
            p99_us: None,
        };
        assert_eq!(
            text_line(&f, Unit::Writes, RateFormat::Bits),
            "[   0.00-   1.00 s]  1,000 writes/s  10.00 Mbit/s"
        );
    }

    #[test]
    fn each_unit_names_its_messages_and_only_timed_ones_have_percentiles() {
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        for (unit, name, timed) in [
            (Unit::Msgs, "msgs", true),
            (Unit::Writes, "writes", false),
            (Unit::Blocks, "blocks", false),
            (Unit::Frames, "frames", true),
        ] {
            let mut iv = Intervals::of(second, IntervalOutput::Report, unit, t0).unwrap();
            iv.open(t0);
            iv.count(10, 640);
            iv.latency(20_000);
            iv.close(t0 + second);
            let f = &iv.kept[0];
            assert_eq!(f.p50_us.is_some(), timed, "{unit:?}");
            let line = text_line(f, unit, RateFormat::Bytes);
            assert!(line.contains(&format!("  10 {name}/s  ")), "{line}");
            assert_eq!(line.contains("  p50 "), timed, "{line}");
        }
    }
}
