//! The metrics endpoint's side of the loop: accepting HTTP clients into
//! their own slab, giving them turns, their timeouts, and rendering the
//! answers from the loop's state. The request handling itself is pure code
//! in [`crate::logic::http`]; the figures are rendered by [`crate::logic::metrics`].

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;
use mio::{Interest, Token};
use slab::Slab;

use super::{died_in_queue, Server, ACCEPT_RETRY};
use crate::logic::http::conn::{HttpConn, HttpConnection, HttpNext, RESPONSES_PER_TURN};
use crate::logic::http::{AllowedHosts, Response, Route, Status};
use crate::logic::metrics::{self, ConnView, EndpointCounters, Process, Snapshot};
use crate::logic::stats::Totals;
use crate::logic::timer::Expiry;
use crate::os::tcp_info;
use crate::server::connection::Connection;
use crate::server::token;

/// An HTTP client must send a whole request within this long of connecting
/// or of its previous response, or it is closed (slowloris, idle
/// keep-alive).
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP connections served at once; more are answered `503` and closed.
pub const MAX_HTTP_CONNECTIONS: usize = 512;
/// Connections over the limit kept while their `503` goes out and their
/// client closes; beyond these, a refusal is written and the socket closed
/// at once, which may reset it if the client sends more.
pub const MAX_HTTP_REFUSING: usize = 64;
/// How long a refused client may take to close after its `503`.
pub const REFUSAL_LINGER: Duration = Duration::from_secs(1);
/// TCP_INFO of every connection, and the process figures from /proc, are
/// read at most this often for endpoint requests, however hard the
/// endpoint is hammered.
const TCP_SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Most connections listed in `/stats.json` (the totals count them all).
const MAX_LISTED: usize = 1000;
/// Endpoint answers per pass of the loop, over all HTTP clients: each may
/// be a page of 260 KB, and the echo clients wait while they are built
/// and copied. Clients over budget get their turn in the next pass.
pub const RESPONSES_PER_PASS: usize = 16;

/// The figure pages built in the current pass of the loop. Every request
/// answered in the same pass gets the same figures anyway; building
/// `/stats.json` for 1,000 connections takes over a millisecond, and a few
/// pipelining scrapers used to have it built dozens of times per pass,
/// holding the echo clients up for most of a second.
#[derive(Debug, Default)]
pub struct Pages {
    /// The pass the pages below belong to (its start).
    pass: Option<Instant>,
    metrics: Option<Arc<[u8]>>,
    stats_json: Option<Arc<[u8]>>,
}

impl Pages {
    /// Where the page for `route` built in the pass that started at `pass`
    /// is kept (empty until built); `None` for pages not worth keeping.
    fn slot(&mut self, pass: Instant, route: Route) -> Option<&mut Option<Arc<[u8]>>> {
        if self.pass != Some(pass) {
            *self = Pages {
                pass: Some(pass),
                ..Pages::default()
            };
        }
        match route {
            Route::Metrics => Some(&mut self.metrics),
            Route::StatsJson => Some(&mut self.stats_json),
            Route::Health | Route::Dashboard => None,
        }
    }
}

/// The dashboard page, embedded so it works offline.
const DASHBOARD: &str = include_str!("dashboard.html");

impl Server {
    /// Accepts every waiting endpoint client (edge-triggered listener).
    pub(super) fn accept_http(&mut self) {
        loop {
            let Some(listener) = &self.metrics_listener else {
                return;
            };
            let (mut stream, peer) = match listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if died_in_queue(&e) => continue,
                Err(e) => {
                    // Out of descriptors: the client stays queued and no new
                    // edge will come for it, so retry with the echo side's
                    // accept retry.
                    debug!(target: "ERROR", "metrics accept failed: {e}");
                    if self.accept_retry_at.is_none() {
                        self.accept_retry_at = Some(Instant::now() + ACCEPT_RETRY);
                    }
                    return;
                }
            };
            let serving = self.http.len() - self.http_refusing;
            let refusal = serving >= MAX_HTTP_CONNECTIONS;
            if refusal {
                debug!(target: "REJECT", "{peer}: over {MAX_HTTP_CONNECTIONS} metrics connections");
                self.observed.http_rejected += 1;
                if self.http_refusing >= MAX_HTTP_REFUSING {
                    refuse_at_once(&mut stream);
                    continue;
                }
            }
            let _ = stream.set_nodelay(true);
            self.generation = self.generation.wrapping_add(1);
            let entry = self.http.vacant_entry();
            let token = token::http(entry.key(), self.generation);
            let interest = Interest::READABLE | Interest::WRITABLE;
            if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
                debug!(target: "ERROR", "{peer}: cannot watch the metrics connection: {e}");
                continue;
            }
            let now = Instant::now();
            let (http, timeout) = if refusal {
                self.http_refusing += 1;
                (HttpConn::refusing(), REFUSAL_LINGER)
            } else {
                (HttpConn::new(), HTTP_TIMEOUT)
            };
            let deadline = self.clock.ceil(now + timeout);
            self.wheel.insert(deadline, token);
            entry.insert(HttpConnection {
                stream,
                peer,
                token,
                http,
                since: now,
                timer: Some(deadline),
                queued: false,
            });
            if refusal {
                continue;
            }
            self.observed.http_accepted += 1;
        }
    }

    /// Gives an HTTP connection its turn: answer what it asked, then wait,
    /// queue or close.
    pub(super) fn service_http(&mut self, token: Token) {
        let http_active = self.http.len() - self.http_refusing;
        let pass = self.turn_started;
        let Server {
            config,
            http,
            connections,
            stats,
            observed,
            tcp_sampled_at,
            resume,
            process,
            http_budget,
            pages,
            ..
        } = self;
        let Some(conn) = live_http(http, token) else {
            return;
        };
        if *http_budget == 0 {
            // The echo clients come first: this one's turn is next pass.
            if !conn.queued {
                conn.queued = true;
                resume.push_back(token);
            }
            return;
        }
        let mut respond = |outcome: Result<Route, Status>| {
            let response = match outcome {
                Ok(route) => {
                    let cached = Cached {
                        tcp_sampled_at: &mut *tcp_sampled_at,
                        process: &mut *process,
                    };
                    match pages.slot(pass, route) {
                        Some(Some(body)) => Response::shared(content_type(route), body.clone()),
                        Some(slot) => {
                            let response =
                                render(route, connections, stats, observed, cached, http_active);
                            *slot = Some(response.body.clone());
                            response
                        }
                        None => render(route, connections, stats, observed, cached, http_active),
                    }
                }
                Err(status) => Response::error(status),
            };
            observed.http.count(response.status);
            response
        };
        let allowed = (*http_budget).min(RESPONSES_PER_TURN);
        let hosts = AllowedHosts::new(&config.metrics_allow_hosts);
        let turn = conn
            .http
            .pump_at_most(&mut conn.stream, hosts, &mut respond, allowed);
        *http_budget = http_budget.saturating_sub(turn.responses);
        if turn.responses > 0 {
            conn.since = Instant::now();
        }
        match turn.next {
            HttpNext::Wait => {}
            HttpNext::Resume => {
                if !conn.queued {
                    conn.queued = true;
                    resume.push_back(token);
                }
            }
            HttpNext::Close(_) => self.close_http(token::key(token)),
        }
    }

    /// An HTTP connection's timer fired: close it if it has not completed
    /// a request within [`HTTP_TIMEOUT`] (a refused one: if its client has
    /// not closed within [`REFUSAL_LINGER`]), else re-arm.
    pub(super) fn expire_http(&mut self, token: Token, tick: u64) {
        let Some(conn) = live_http(&mut self.http, token) else {
            return;
        };
        conn.timer = None;
        let timeout = if conn.http.is_refusal() {
            REFUSAL_LINGER
        } else {
            HTTP_TIMEOUT
        };
        match self.clock.expiry(conn.since, timeout, tick) {
            Expiry::Close => {
                debug!(
                    target: "TIMEOUT",
                    "metrics client {} sent no complete request for {:.1}s",
                    conn.peer,
                    HTTP_TIMEOUT.as_secs_f64()
                );
                self.close_http(token::key(token));
            }
            Expiry::Rearm(due) => {
                self.wheel.insert(due, token);
                conn.timer = Some(due);
            }
        }
    }

    pub(super) fn close_http(&mut self, key: usize) {
        let conn = self.http.remove(key);
        if conn.http.is_refusal() {
            self.http_refusing -= 1;
        }
        if let Some(deadline) = conn.timer {
            self.wheel.remove(deadline, |token| *token == conn.token);
        }
    }
}

/// Refuses a client over the limit when no room is left to linger: the
/// `503` goes into the empty send buffer, FIN follows it, and what the
/// client already sent is read so that the close does not reset the
/// connection. A request arriving later still meets a reset.
fn refuse_at_once(stream: &mut mio::net::TcpStream) {
    let mut answer = Vec::new();
    Response::error(Status::Unavailable).write_to(&mut answer, false, false);
    let _ = stream.write(&answer);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut chunk = [0u8; 4096];
    // Bounded: at most the request-size limit, never waiting.
    for _ in 0..crate::logic::http::MAX_REQUEST / chunk.len() {
        match stream.read(&mut chunk) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Reads TCP_INFO of every echo connection and adds new retransmits to the
/// server-wide counter.
pub(super) fn sample_tcp(connections: &mut Slab<Connection>, observed: &mut EndpointCounters) {
    for (_, conn) in connections.iter_mut() {
        if let Ok(info) = tcp_info::sample(&conn.stream) {
            observed.retransmits +=
                u64::from(info.total_retrans.saturating_sub(conn.retrans_counted));
            conn.retrans_counted = conn.retrans_counted.max(info.total_retrans);
            conn.tcp = Some(info);
        }
    }
}

/// What the endpoint reads from the kernel at most once a second, however
/// often it is asked.
struct Cached<'a> {
    tcp_sampled_at: &'a mut Option<Instant>,
    process: &'a mut Option<(Instant, Option<Process>)>,
}

/// The response for an endpoint route, from the loop's current state.
fn render(
    route: Route,
    connections: &mut Slab<Connection>,
    stats: &Totals,
    observed: &mut EndpointCounters,
    cached: Cached<'_>,
    http_active: usize,
) -> Response {
    let Cached {
        tcp_sampled_at,
        process,
    } = cached;
    match route {
        Route::Health => return Response::ok("text/plain; charset=utf-8", "ok\n"),
        Route::Dashboard => return Response::ok("text/html; charset=utf-8", DASHBOARD),
        Route::Metrics | Route::StatsJson => {}
    }
    let now = Instant::now();
    if !matches!(*tcp_sampled_at, Some(at) if now.duration_since(at) < TCP_SAMPLE_EVERY) {
        sample_tcp(connections, observed);
        *tcp_sampled_at = Some(now);
    }
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
            })
            .collect()
    } else {
        Vec::new()
    };
    let snap = Snapshot {
        stats,
        observed,
        buffered,
        http_active,
        connections: listed,
        log_lines_dropped: crate::os::log_writer::dropped(),
        process: match *process {
            Some((at, figures)) if now.duration_since(at) < TCP_SAMPLE_EVERY => figures,
            _ => {
                let figures = Process::read();
                *process = Some((now, figures));
                figures
            }
        },
    };
    let body = match route {
        Route::StatsJson => metrics::render_json(&snap),
        _ => metrics::render_prometheus(&snap),
    };
    Response::ok(content_type(route), body)
}

/// The `Content-Type` of a figures page.
fn content_type(route: Route) -> &'static str {
    match route {
        Route::StatsJson => "application/json",
        _ => metrics::PROMETHEUS_CONTENT_TYPE,
    }
}

/// The HTTP connection an event's token refers to, if it is still that one.
pub(super) fn live_http(
    http: &mut Slab<HttpConnection>,
    token: Token,
) -> Option<&mut HttpConnection> {
    http.get_mut(token::key(token))
        .filter(|conn| conn.token == token)
}
