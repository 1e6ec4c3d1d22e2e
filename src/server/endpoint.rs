//! The metrics endpoint: its listener, its clients in their own slab, their
//! turns and timeouts, on the echo loop's thread. The request handling
//! itself is pure code in [`crate::logic::http`]; the pages are built in
//! [`super::pages`].

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::endpoint_client::{live_http, EndpointClient};
use super::pages::{Figures, Source};
use super::resume::ResumeQueue;
use super::token::{self, METRICS};
use super::{cancel_timer, Server};
use crate::logic::http::conn::{HttpClose, HttpConn, HttpNext, RESPONSES_PER_TURN};
use crate::logic::http::{AllowedHosts, Response, Status};
use crate::logic::metrics::EndpointCounters;
use crate::logic::timer::{Expiry, TimerWheel};

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
/// Endpoint answers per pass of the loop, over all HTTP clients: each may
/// be a large page, and the echo clients wait while it is built and
/// copied. Clients over budget get their turn in the next pass.
pub const RESPONSES_PER_PASS: usize = 16;

/// The metrics endpoint's state, beside the echo side's in [`Server`].
#[derive(Debug)]
pub(super) struct Endpoint {
    /// `None` once stopping.
    listener: Option<TcpListener>,
    /// Its clients: same loop and timer wheel as the echo connections, but
    /// their own slab, and not counted as echo connections.
    clients: Slab<EndpointClient>,
    /// Of those, the ones over the limit, refused with a `503`.
    refusing: usize,
    /// Answers still allowed in this pass of the loop.
    budget: usize,
    /// What the pages report, and the pages built.
    figures: Figures,
}

impl Server {
    /// Serves the dashboard and metrics on `listener` from this loop;
    /// returns the address actually bound.
    pub fn serve_metrics(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let addr = listener.local_addr()?;
        self.poll
            .registry()
            .register(&mut listener, METRICS, Interest::READABLE)?;
        self.endpoint = Some(Endpoint {
            listener: Some(listener),
            clients: Slab::new(),
            refusing: 0,
            budget: RESPONSES_PER_PASS,
            figures: Figures::default(),
        });
        Ok(addr)
    }

    /// Takes a freshly accepted endpoint client into service, or refuses it
    /// with a `503` when the endpoint has too many.
    pub(super) fn admit_http(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let Some(endpoint) = &mut self.endpoint else {
            return;
        };
        let refusal = endpoint.serving() >= MAX_HTTP_CONNECTIONS;
        if refusal {
            debug!(target: "REJECT", "{peer}: over {MAX_HTTP_CONNECTIONS} metrics connections");
            endpoint.figures.observed.http_rejected += 1;
            if endpoint.refusing >= MAX_HTTP_REFUSING {
                refuse_at_once(&mut stream);
                return;
            }
        }
        let _ = stream.set_nodelay(true);
        self.generation = self.generation.wrapping_add(1);
        let entry = endpoint.clients.vacant_entry();
        let token = token::http(entry.key(), self.generation);
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            debug!(target: "ERROR", "{peer}: cannot watch the metrics connection: {e}");
            return;
        }
        let now = Instant::now();
        let (http, timeout) = if refusal {
            endpoint.refusing += 1;
            (HttpConn::refusing(), REFUSAL_LINGER)
        } else {
            (HttpConn::new(), HTTP_TIMEOUT)
        };
        let deadline = self.clock.deadline(now, timeout);
        self.wheel.insert(deadline, token);
        entry.insert(EndpointClient {
            stream,
            peer,
            token,
            http,
            since: now,
            timer: Some(deadline),
            queued: false,
        });
        if !refusal {
            endpoint.figures.observed.http_accepted += 1;
        }
    }

    /// Gives an endpoint client its turn: answer what it asked, then wait,
    /// queue or close.
    pub(super) fn service_http(&mut self, token: Token) {
        let Some(endpoint) = &mut self.endpoint else {
            return;
        };
        let source = Source {
            connections: &mut self.connections,
            stats: &self.stats,
            pass: self.turn_started,
            http_active: endpoint.serving(),
            mode: self.config.mode.name(),
            rejected_by: self.admission.refused_by_label(),
            ports_accepted: self.listeners.accepted_by_port(),
        };
        let hosts = AllowedHosts::new(&self.config.metrics_allow_hosts);
        if let Some((peer, reason)) = endpoint.serve(token, hosts, source, &mut self.resume) {
            debug!(target: "HTTP", "metrics client {peer} closed: {reason}");
            self.close_http(token::key(token));
        }
    }

    /// An HTTP connection's timer fired: close it if it has not completed
    /// a request within [`HTTP_TIMEOUT`] (a refused one: if its client has
    /// not closed within [`REFUSAL_LINGER`]), else re-arm.
    pub(super) fn expire_http(&mut self, token: Token, tick: u64) {
        let Some(conn) = self.endpoint.as_mut().and_then(|e| e.client(token)) else {
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

    /// Ends an endpoint client: cancels its timer and closes the socket.
    pub(super) fn close_http(&mut self, key: usize) {
        if let Some(endpoint) = &mut self.endpoint {
            let client = endpoint.clients.remove(key);
            if client.http.is_refusal() {
                endpoint.refusing -= 1;
            }
            cancel_timer(&mut self.wheel, client.timer, client.token);
        }
    }

    /// True when the endpoint has no clients (or there is no endpoint).
    pub(super) fn no_http_clients(&self) -> bool {
        self.endpoint
            .as_ref()
            .map_or(true, |e| e.clients.is_empty())
    }
}

impl Endpoint {
    /// The listener, until the endpoint stops.
    pub(super) fn listener(&self) -> Option<&TcpListener> {
        self.listener.as_ref()
    }

    /// The endpoint client an event's token refers to, if still that one.
    pub(super) fn client(&mut self, token: Token) -> Option<&mut EndpointClient> {
        live_http(&mut self.clients, token)
    }

    /// The counters only the endpoint reports.
    pub(super) fn observed(&mut self) -> &mut EndpointCounters {
        &mut self.figures.observed
    }

    /// What the pages are built from beside the loop's state.
    pub(super) fn figures(&mut self) -> &mut Figures {
        &mut self.figures
    }

    /// Samples the totals for the dashboard's history while listening.
    pub(super) fn record_history(
        &mut self,
        stats: &crate::logic::stats::Totals,
        connections: &Slab<super::connection::Connection>,
        now: Instant,
    ) {
        if self.listener.is_some() {
            self.figures.record_history(stats, connections, now);
        }
    }

    /// When the next history sample is due, while listening.
    pub(super) fn history_due(&self) -> Option<Instant> {
        self.listener.as_ref()?;
        Some(self.figures.history_due())
    }

    /// A new pass of the loop: the answer budget is full again.
    pub(super) fn new_pass(&mut self) {
        self.budget = RESPONSES_PER_PASS;
    }

    /// Clients being served, not counting those being refused.
    fn serving(&self) -> usize {
        self.clients.len() - self.refusing
    }

    /// Gives the client with `token` its turn: answers from `source`'s
    /// figures within this pass's budget, queues it in `resume` when its
    /// turn ran out. Returns who it was and why it ended when it must now
    /// be closed.
    fn serve(
        &mut self,
        token: Token,
        hosts: AllowedHosts<'_>,
        mut source: Source<'_>,
        resume: &mut ResumeQueue,
    ) -> Option<(SocketAddr, HttpClose)> {
        let client = live_http(&mut self.clients, token)?;
        if self.budget == 0 {
            // The echo clients come first: this one's turn is next pass.
            resume.push(token, &mut client.queued);
            return None;
        }
        let figures = &mut self.figures;
        let mut respond = |outcome| figures.answer(outcome, &mut source);
        let allowed = self.budget.min(RESPONSES_PER_TURN);
        let turn = client
            .http
            .pump(&mut client.stream, hosts, &mut respond, allowed);
        self.budget = self.budget.saturating_sub(turn.responses);
        if turn.responses > 0 {
            client.since = Instant::now();
        }
        match turn.next {
            HttpNext::Wait => None,
            HttpNext::Resume => {
                resume.push(token, &mut client.queued);
                None
            }
            HttpNext::Close(reason) => Some((client.peer, reason)),
        }
    }

    /// Stops listening and closes every client.
    pub(super) fn stop(&mut self, registry: &Registry, wheel: &mut TimerWheel<Token>) {
        if let Some(mut listener) = self.listener.take() {
            let _ = registry.deregister(&mut listener);
        }
        for client in self.clients.drain() {
            cancel_timer(wheel, client.timer, client.token);
        }
        self.refusing = 0;
    }
}

/// Refuses a client over the limit when no room is left to linger: the
/// `503` goes into the empty send buffer, FIN follows it, and what the
/// client already sent is read so that the close does not reset the
/// connection. A request arriving later still meets a reset.
fn refuse_at_once(stream: &mut TcpStream) {
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
