//! A mode benchmark's figures: text for people, one JSON document with
//! `--json`.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use super::{Counters, ModeBench};
use crate::client::bench::interval::{IntervalFigures, Intervals};
use crate::client::bench::report::Latency;
use crate::client::error::{exit, ClientError};
use crate::client::modes::ServiceMode;
use crate::logic::json;

/// The server's CPU time and memory over the window.
#[derive(Debug, Clone, Copy)]
pub struct ServerFigures {
    /// Its PID.
    pub pid: u32,
    /// CPU time spent in the window.
    pub cpu: Duration,
    /// RSS at the window's end.
    pub rss_kib: u64,
    /// Peak RSS.
    pub peak_rss_kib: u64,
}

/// What the measured window saw.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Its length.
    pub elapsed: Duration,
    /// Bytes written.
    pub up: u64,
    /// Bytes received and checked.
    pub down: u64,
    /// Framed replies complete.
    pub replies: u64,
    /// The server's figures (`--server-pid`).
    pub server: Option<ServerFigures>,
}

/// The outcome of `bench --mode discard|chargen|framed`.
#[derive(Debug)]
pub struct ModeReport {
    target: String,
    address: SocketAddr,
    mode: ServiceMode,
    connections: usize,
    size: usize,
    depth: usize,
    warmup: Duration,
    window: Option<Window>,
    total_up: u64,
    total_down: u64,
    latency: Option<Latency>,
    /// `-i` with `--json`: the period, the latest intervals, and how many
    /// were left out.
    intervals: Option<(Duration, Vec<IntervalFigures>, u64)>,
    /// Why the run failed, if it did.
    pub error: Option<ClientError>,
    interrupted: bool,
}

impl ModeReport {
    /// Gathers the figures of a finished run.
    pub fn new(
        cfg: &ModeBench,
        address: SocketAddr,
        window: Option<Window>,
        mut counters: Counters,
        error: Option<ClientError>,
        interrupted: bool,
    ) -> Self {
        Self {
            target: cfg.target.clone(),
            address,
            mode: cfg.mode,
            connections: cfg.connections,
            size: cfg.size,
            depth: cfg.depth,
            warmup: cfg.warmup,
            window,
            total_up: counters.up,
            total_down: counters.down,
            latency: Latency::from_nanos(&counters.latency),
            intervals: counters.intervals.take().map(Intervals::into_report),
            error,
            interrupted,
        }
    }

    /// The exit code: the failure's, 130 after Ctrl+C, else 0.
    pub fn exit_code(&self) -> u8 {
        match (&self.error, self.interrupted) {
            (Some(e), _) => e.exit_code(),
            (None, true) => exit::INTERRUPTED,
            (None, false) => exit::OK,
        }
    }

    /// The bytes that measure this mode: up for discard, down for chargen,
    /// the frames written for framed.
    fn bytes(w: &Window, mode: ServiceMode) -> u64 {
        match mode {
            ServiceMode::Chargen => w.down,
            _ => w.up,
        }
    }

    fn per_s(n: u64, w: &Window) -> f64 {
        let s = w.elapsed.as_secs_f64();
        if s > 0.0 {
            n as f64 / s
        } else {
            0.0
        }
    }

    /// MB (10^6 bytes) per second in the mode's direction.
    pub fn mb_per_s(&self) -> Option<f64> {
        let w = self.window.as_ref()?;
        Some(Self::per_s(Self::bytes(w, self.mode), w) / 1e6)
    }

    /// Server CPU microseconds per MB moved in the window.
    fn cpu_us_per_mb(&self) -> Option<f64> {
        let w = self.window.as_ref()?;
        let server = w.server?;
        let mb = Self::bytes(w, self.mode) as f64 / 1e6;
        (mb > 0.0).then(|| server.cpu.as_secs_f64() * 1e6 / mb)
    }

    /// The `--json` document.
    pub fn to_json(&self) -> String {
        let w = self.window.as_ref();
        json::to_string(&ModeDocument {
            mode: "bench",
            service: self.mode.name(),
            target: &self.target,
            address: self.address,
            connections: self.connections,
            size: self.size,
            depth: (self.mode == ServiceMode::Framed).then_some(self.depth),
            warmup_s: round(self.warmup.as_secs_f64()),
            ended_in_warmup: w.is_none(),
            elapsed_s: w.map_or(0.0, |w| round(w.elapsed.as_secs_f64())),
            bytes_up: w.map_or(0, |w| w.up),
            bytes_down: w.map_or(0, |w| w.down),
            total_bytes_up: self.total_up,
            total_bytes_down: self.total_down,
            mb_per_s: round(self.mb_per_s().unwrap_or(0.0)),
            frames: (self.mode == ServiceMode::Framed).then(|| w.map_or(0, |w| w.replies)),
            frames_per_s: (self.mode == ServiceMode::Framed)
                .then(|| round(w.map_or(0.0, |w| Self::per_s(w.replies, w)))),
            interval_s: (self.intervals.as_ref()).map(|(period, _, _)| period.as_secs_f64()),
            intervals: (self.intervals.as_ref()).map_or(&[][..], |(_, kept, _)| kept),
            intervals_omitted: (self.intervals.as_ref()).map_or(0, |(_, _, omitted)| *omitted),
            latency_us: self.latency.map(|l| l.rounded()),
            mismatches: u64::from(matches!(self.error, Some(ClientError::Reply(_)))),
            interrupted: self.interrupted,
            error_kind: self.error.as_ref().map(ClientError::kind),
            error: self.error.as_ref(),
            server: w.and_then(|w| w.server).map(|s| ServerJson {
                pid: s.pid,
                cpu_s: round(s.cpu.as_secs_f64()),
                cpu_us_per_mb: self.cpu_us_per_mb().map(round),
                rss_kib: s.rss_kib,
                peak_rss_kib: s.peak_rss_kib,
            }),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[derive(Serialize)]
struct ModeDocument<'a> {
    mode: &'static str,
    service: &'static str,
    target: &'a str,
    address: SocketAddr,
    connections: usize,
    size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    depth: Option<usize>,
    warmup_s: f64,
    ended_in_warmup: bool,
    elapsed_s: f64,
    bytes_up: u64,
    bytes_down: u64,
    total_bytes_up: u64,
    total_bytes_down: u64,
    mb_per_s: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frames_per_s: Option<f64>,
    interval_s: Option<f64>,
    intervals: &'a [IntervalFigures],
    intervals_omitted: u64,
    latency_us: Option<Latency>,
    mismatches: u64,
    interrupted: bool,
    error_kind: Option<&'static str>,
    error: Option<&'a ClientError>,
    server: Option<ServerJson>,
}

#[derive(Serialize)]
struct ServerJson {
    pid: u32,
    cpu_s: f64,
    cpu_us_per_mb: Option<f64>,
    rss_kib: u64,
    peak_rss_kib: u64,
}

impl fmt::Display for ModeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.mode {
            ServiceMode::Discard => "upload (client to server)",
            ServiceMode::Chargen => "download (server to client, RFC 864 pattern checked)",
            _ => "frames (each reply checked)",
        };
        writeln!(
            f,
            "Mode bench: {} --mode {}, {} connection{}, {}",
            self.target,
            self.mode,
            self.connections,
            if self.connections == 1 { "" } else { "s" },
            direction
        )?;
        let Some(w) = &self.window else {
            return writeln!(f, "Ended during the warm-up: nothing measured");
        };
        writeln!(
            f,
            "Measured:    {:.3} s, {} bytes up, {} bytes down",
            w.elapsed.as_secs_f64(),
            w.up,
            w.down
        )?;
        if self.mode == ServiceMode::Framed {
            writeln!(
                f,
                "Frames:      {} ({:.0} frames/s), {}-byte payloads, depth {}",
                w.replies,
                Self::per_s(w.replies, w),
                self.size,
                self.depth
            )?;
            if let Some(l) = &self.latency {
                writeln!(
                    f,
                    "Latency µs:  min {:.1}  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})",
                    l.min, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
                )?;
            }
        }
        writeln!(f, "Throughput:  {:.2} MB/s", self.mb_per_s().unwrap_or(0.0))?;
        if let Some(s) = w.server {
            writeln!(
                f,
                "Server:      pid {}, CPU {:.3} s{}, RSS {} KiB (peak {} KiB)",
                s.pid,
                s.cpu.as_secs_f64(),
                self.cpu_us_per_mb()
                    .map(|c| format!(" ({c:.0} µs per MB)"))
                    .unwrap_or_default(),
                s.rss_kib,
                s.peak_rss_kib
            )?;
        }
        match &self.error {
            Some(e) => writeln!(f, "Result:      FAILED: {e}"),
            None if self.interrupted => writeln!(f, "Result:      interrupted by Ctrl+C"),
            None => writeln!(f, "Result:      OK"),
        }
    }
}
