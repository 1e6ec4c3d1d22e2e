//! The endpoint's answers, built from the loop's state: the dashboard, the
//! health check, and the figure pages rendered by [`crate::logic::metrics`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::Token;
use slab::Slab;

use super::connection::Connection;
use crate::logic::http::{Response, Route, Status};
use crate::logic::metrics::{self, ConnView, EndpointCounters, History, Process, Snapshot};
use crate::logic::stats::Totals;

/// TCP_INFO of every connection, and the process figures from /proc, are
/// read at most this often for endpoint requests, however hard the
/// endpoint is hammered.
const TCP_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Most connections listed in `/stats.json` (the totals count them all).
const MAX_LISTED: usize = 1000;
/// How often the totals are sampled for the dashboard's history.
const HISTORY_STEP: Duration = Duration::from_secs(1);

/// The dashboard page, embedded so it works offline.
const DASHBOARD: &str = include_str!("dashboard.html");
/// The icon browsers fetch on their own: answered, so that it is not
/// counted as a `404`.
const FAVICON: &[u8] = include_bytes!("favicon.ico");

/// The loop's state a page is built from.
pub(super) struct Source<'a> {
    /// The echo connections (their TCP_INFO is refreshed when stale).
    pub connections: &'a mut Slab<Connection>,
    /// The echo side's counters.
    pub stats: &'a Totals,
    /// When the current pass of the loop began.
    pub pass: Instant,
    /// Endpoint clients being served.
    pub http_active: usize,
    /// The server's `--mode`.
    pub mode: &'static str,
    /// Connections turned away, by reason (`/metrics` labels).
    pub rejected_by: Vec<(&'static str, u64)>,
    /// Connections served per local port (several listeners only).
    pub ports_accepted: Vec<(u16, u64)>,
}

/// What the endpoint reports beside the loop's state, and what it keeps
/// so as not to build or read the same thing twice.
#[derive(Debug, Default)]
pub(super) struct Figures {
    /// Counters only the endpoint reports.
    pub observed: EndpointCounters,
    /// The figure pages built in the current pass.
    built: Built,
    /// When TCP_INFO was last read for every connection.
    tcp_sampled_at: Option<Instant>,
    /// The process figures (read from /proc) and when, reused for a second
    /// so that a hammered endpoint does not spend the loop in /proc.
    process: Option<(Instant, Option<Process>)>,
    /// The totals of the last minutes, for the dashboard's charts.
    history: History,
    /// When the next history sample is due.
    history_due: Option<Instant>,
    /// The listed connections' byte counts at the last history sample,
    /// and their rates over the step before it.
    marks: HashMap<Token, Mark>,
}

/// A connection's byte counts at one history sample.
#[derive(Debug, Clone, Copy)]
struct Mark {
    at: Instant,
    bytes_in: u64,
    bytes_out: u64,
    /// Bytes per second in and out since the sample before, if it was seen.
    rates: Option<(f64, f64)>,
}

/// The figure pages built in the current pass of the loop. Every request
/// answered in the same pass gets the same figures anyway, and building
/// `/stats.json` for many connections is costly enough that pipelining
/// scrapers would otherwise hold the echo clients up.
#[derive(Debug, Default)]
struct Built {
    /// The pass the pages below belong to (its start).
    pass: Option<Instant>,
    metrics: Option<Arc<[u8]>>,
    stats_json: Option<Arc<[u8]>>,
}

impl Built {
    /// Where the page for `route` built in the pass that started at `pass`
    /// is kept (empty until built); `None` for pages not worth keeping.
    fn slot(&mut self, pass: Instant, route: Route) -> Option<&mut Option<Arc<[u8]>>> {
        if self.pass != Some(pass) {
            *self = Built {
                pass: Some(pass),
                ..Built::default()
            };
        }
        match route {
            Route::Metrics => Some(&mut self.metrics),
            Route::StatsJson => Some(&mut self.stats_json),
            Route::Health | Route::Dashboard | Route::Favicon => None,
        }
    }
}

impl Figures {
    /// The answer to a request for `outcome` (a route, or the error status
    /// of a bad request), counted by its status.
    pub(super) fn answer(
        &mut self,
        outcome: Result<Route, Status>,
        source: &mut Source<'_>,
    ) -> Response {
        let response = match outcome {
            Ok(route) => {
                if let Some(Some(body)) = self.built.slot(source.pass, route) {
                    Response::shared(content_type(route), body.clone())
                } else {
                    let response = self.render(route, source);
                    if let Some(slot) = self.built.slot(source.pass, route) {
                        *slot = Some(response.body.clone());
                    }
                    response
                }
            }
            Err(status) => Response::error(status),
        };
        self.observed.http.count(response.status);
        response
    }

    /// Reads TCP_INFO of every echo connection and adds new retransmits to
    /// the server-wide counter.
    pub(super) fn sample_tcp(&mut self, connections: &mut Slab<Connection>, now: Instant) {
        for (_, conn) in connections.iter_mut() {
            self.observed.retransmits += conn.sample_tcp();
        }
        self.tcp_sampled_at = Some(now);
    }

    /// Samples the totals for the history, and each listed connection's
    /// byte counts for its rate, when a sample is due.
    pub(super) fn record_history(
        &mut self,
        stats: &Totals,
        connections: &Slab<Connection>,
        now: Instant,
    ) {
        if self.history_due.is_some_and(|due| now < due) {
            return;
        }
        let mut marks = HashMap::with_capacity(connections.len().min(MAX_LISTED));
        for (_, c) in connections.iter().take(MAX_LISTED) {
            let (bytes_in, bytes_out) = (c.echo.received(), c.echo.echoed());
            let rates = self.marks.get(&c.token).and_then(|m| {
                let span = now.saturating_duration_since(m.at).as_secs_f64();
                (span > 0.0).then(|| {
                    let per_s = |now: u64, then: u64| now.saturating_sub(then) as f64 / span;
                    (per_s(bytes_in, m.bytes_in), per_s(bytes_out, m.bytes_out))
                })
            });
            let mark = Mark {
                at: now,
                bytes_in,
                bytes_out,
                rates,
            };
            marks.insert(c.token, mark);
        }
        self.marks = marks;
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.history.record(unix, stats);
        self.history_due = Some(now + HISTORY_STEP);
    }

    /// When the loop must wake for the next history sample (at once
    /// before the first).
    pub(super) fn history_due(&self) -> Instant {
        self.history_due.unwrap_or_else(Instant::now)
    }

    /// The response for `route`, from the loop's current state.
    fn render(&mut self, route: Route, source: &mut Source<'_>) -> Response {
        match route {
            Route::Health => return Response::ok("text/plain; charset=utf-8", "ok\n"),
            Route::Dashboard => return Response::ok("text/html; charset=utf-8", DASHBOARD),
            Route::Favicon => return Response::ok("image/x-icon", FAVICON),
            Route::Metrics | Route::StatsJson => {}
        }
        let now = Instant::now();
        if !matches!(self.tcp_sampled_at, Some(at) if now.duration_since(at) < TCP_SAMPLE_EVERY) {
            self.sample_tcp(source.connections, now);
        }
        let connections = &*source.connections;
        let buffered = connections
            .iter()
            .map(|(_, c)| c.echo.pending() as u64)
            .sum();
        let listed = if route == Route::StatsJson {
            connections
                .iter()
                .take(MAX_LISTED)
                .map(|(_, c)| ConnView {
                    peer: c.peer,
                    age: now.saturating_duration_since(c.connected_at),
                    idle: now.saturating_duration_since(c.last_active),
                    bytes_in: c.echo.received(),
                    bytes_out: c.echo.echoed(),
                    buffered: c.echo.pending(),
                    state: c.echo.phase(),
                    zero_copy: c.echo.is_splicing(),
                    tcp: c.tcp,
                    rates: self.marks.get(&c.token).and_then(|m| m.rates),
                    tls: c.tls.as_deref().map(super::tls::view),
                })
                .collect()
        } else {
            Vec::new()
        };
        let process = match self.process {
            Some((at, figures)) if now.duration_since(at) < TCP_SAMPLE_EVERY => figures,
            _ => {
                let figures = read_process();
                self.process = Some((now, figures));
                figures
            }
        };
        let snap = Snapshot {
            stats: source.stats,
            observed: &self.observed,
            buffered,
            http_active: source.http_active,
            mode: source.mode,
            rejected_by: std::mem::take(&mut source.rejected_by),
            ports_accepted: std::mem::take(&mut source.ports_accepted),
            connections: listed,
            log_lines_dropped: crate::os::log_writer::dropped(),
            process,
            history: &self.history,
        };
        let body = match route {
            Route::StatsJson => metrics::render_json(&snap),
            _ => metrics::render_prometheus(&snap),
        };
        Response::ok(content_type(route), body)
    }
}

/// The `Content-Type` of a figures page.
fn content_type(route: Route) -> &'static str {
    match route {
        Route::StatsJson => "application/json",
        _ => metrics::PROMETHEUS_CONTENT_TYPE,
    }
}

/// This process's figures from `/proc`; `None` off Linux.
fn read_process() -> Option<Process> {
    let sample = crate::os::procstat::sample(std::process::id()).ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(Process {
        resident_bytes: sample.rss_kib * 1024,
        open_fds,
        cpu_seconds: sample.cpu.as_secs_f64(),
        max_fds: max_open_files(),
    })
}

/// The soft open-files limit, from `/proc/self/limits` ("unlimited" is
/// reported as unknown).
fn max_open_files() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
