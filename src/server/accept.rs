//! Accepting: one loop for every listener, what a failing `accept` means,
//! and taking an echo client into service or turning it away.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use rustix::io::Errno;

use super::admission::Refusal;
use super::connection::Connection;
use super::{token, Server};
use crate::logic::service::{Mode, Service};

/// How long to wait before retrying `accept` after it failed for lack of
/// descriptors or memory: short enough to pick up a freed descriptor
/// promptly, long enough that a full process does not spin.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one REJECT line per this interval; the rest are counted.
pub(super) const REJECT_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// The listeners the loop accepts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Listener {
    /// An echo port: its index in the listener table.
    Echo(usize),
    /// The metrics endpoint's port (`--metrics`).
    Metrics,
}

impl Server {
    /// Accepts from `from` until its queue is empty (listeners are
    /// edge-triggered) or accepting fails.
    pub(super) fn accept(&mut self, from: Listener) {
        // Paused after a failure: the retry timer (or a close) resumes it.
        if matches!(from, Listener::Echo(_)) && self.accept_retry_at.is_some() {
            return;
        }
        loop {
            let listener = match from {
                Listener::Echo(index) => self.listeners.socket(index),
                Listener::Metrics => self.endpoint.as_ref().and_then(|e| e.listener()),
            };
            let Some(listener) = listener else {
                return;
            };
            match accept_one(listener) {
                Ok(Some((stream, peer))) => match from {
                    Listener::Echo(index) => self.admit(stream, peer, index),
                    Listener::Metrics => self.admit_http(stream, peer),
                },
                Ok(None) => {
                    if matches!(from, Listener::Echo(_)) {
                        // Everyone who queued during a failure episode is in.
                        self.end_accept_failures();
                    }
                    return;
                }
                Err(e) => {
                    self.accept_failed(from, &e);
                    return;
                }
            }
        }
    }

    /// After `accept` failed (typically EMFILE): the connection stays in the
    /// kernel's queue and no new edge will come for it, so retrying at once
    /// would spin. Serve the existing connections and retry on a timer, or
    /// as soon as one closes. An echo failure starts an episode, logged
    /// once; the endpoint's is logged at debug and shares the echo retry.
    fn accept_failed(&mut self, from: Listener, e: &io::Error) {
        let now = Instant::now();
        match from {
            Listener::Echo(_) => self.accept_retry_at = Some(now + ACCEPT_RETRY),
            Listener::Metrics => {
                debug!(target: "ERROR", "metrics accept failed: {e}");
                if self.accept_retry_at.is_none() {
                    self.accept_retry_at = Some(now + ACCEPT_RETRY);
                }
                return;
            }
        }
        if self.accept_failing_since.is_some() {
            return;
        }
        self.accept_failing_since = Some(now);
        let retry_ms = ACCEPT_RETRY.as_millis();
        let errno = Errno::from_io_error(e);
        if errno == Some(Errno::MFILE) || errno == Some(Errno::NFILE) {
            error!(
                target: "ERROR",
                "accept failed: {e}; out of file descriptors, serving existing connections \
                 and retrying every {retry_ms} ms"
            );
        } else {
            error!(
                target: "ERROR",
                "accept failed: {e}; serving existing connections and retrying every {retry_ms} ms"
            );
        }
    }

    fn end_accept_failures(&mut self) {
        if let Some(since) = self.accept_failing_since.take() {
            info!(
                target: "ACCEPT",
                "accepting connections again after {} ms; every queued connection is accepted",
                since.elapsed().as_millis()
            );
        }
    }

    /// After a failure, accepting resumes on every listener: each may have
    /// connections queued that no new edge will announce.
    pub(super) fn accept_every_listener(&mut self) {
        for index in 0..self.listeners.len() {
            if self.accept_retry_at.is_some() {
                // Failed again: the next retry starts over.
                return;
            }
            self.accept(Listener::Echo(index));
        }
    }

    /// Takes a freshly accepted echo client of listener `listener` into
    /// service, or turns it away; with `--proxy-protocol`, its header
    /// comes first.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, listener: usize) {
        // Clients of a `::` listener show as ::ffff:a.b.c.d; log them as IPv4.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if self.connections.len() + self.pending.len() >= self.config.max_connections {
            self.reject(peer, Refusal::ConnectionLimit(self.config.max_connections));
            return;
        }
        if let Some(timeout) = self.config.proxy_protocol {
            self.await_header(stream, peer, listener, timeout);
            return;
        }
        self.admit_from(stream, peer, listener, None);
    }

    /// Serves a client at `peer` (for a proxied connection, the client the
    /// header named, reached `via` the proxy) if the admission checks let it.
    pub(super) fn admit_from(
        &mut self,
        mut stream: TcpStream,
        peer: SocketAddr,
        listener: usize,
        via: Option<SocketAddr>,
    ) {
        if let Some(refusal) = self.admission.check(peer.ip(), &self.config) {
            self.reject(peer, refusal);
            return;
        }
        // Without it, small echoes wait for delayed ACKs and RTTs show 40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            debug!(target: "ERROR", "{peer}: cannot set TCP_NODELAY: {e}");
        }
        // Urgent data (telnet sends it on an interrupt) stays in the byte
        // stream, so it is echoed in place like every other byte instead
        // of being cut out of it.
        if let Err(e) = socket2::SockRef::from(&stream).set_out_of_band_inline(true) {
            debug!(target: "ERROR", "{peer}: cannot set SO_OOBINLINE: {e}");
        }
        let tls = self.listeners.is_tls(listener);
        let session = if tls { self.tls_session() } else { None };
        let first_timer = self.first_timer(tls);
        self.generation = self.generation.wrapping_add(1);
        let entry = self.connections.vacant_entry();
        let token = token::connection(entry.key(), self.generation);
        // PRIORITY: urgent data stops reads short at its mark with more
        // queued behind it, so the connection must know it came.
        let interest = Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY;
        if let Err(e) = self.poll.registry().register(&mut stream, token, interest) {
            error!(target: "ERROR", "{peer}: cannot watch the connection, closing it: {e}");
            return;
        }
        let now = Instant::now();
        let mode_of = self.listeners.mode(listener).unwrap_or(self.config.mode);
        let service = Service::new(mode_of, self.config.max_line, self.config.buffer_size);
        let mut conn = Connection::new(
            stream,
            peer,
            token,
            (self.config.buffer_size, service),
            self.config.splice.then_some(self.config.splice_backlog),
            now,
        );
        conn.tls = session;
        // The idle timeout, or a TLS handshake's if that comes first.
        if let Some(first) = first_timer {
            let deadline = self.clock.deadline(now, first);
            self.wheel.insert(deadline, token);
            conn.timer = Some(deadline);
        }
        entry.insert(conn);
        self.stats.opened();
        self.admission.opened(peer.ip(), &self.config);
        self.listeners.note_accepted(listener);
        // Its first message may well follow at once.
        self.busy_poll.note_served(false);
        // The default mode leaves the line as it always was, for the
        // scripts that read it; another one says which it is.
        let mode = mode_of.name();
        if self.listeners.len() > 1 || via.is_some() || tls {
            self.log_connect(peer, mode_of, listener, via);
        } else if mode_of == Mode::Echo {
            info!(target: "CONNECT", peer:% = peer, mode = mode; "{peer}");
        } else {
            info!(target: "CONNECT", peer:% = peer, mode = mode; "{peer} (mode {mode})");
        }
    }

    /// Counts a connection turned away (already closed by the caller
    /// dropping it) and logs at most one line per second about such.
    pub(super) fn reject(&mut self, peer: SocketAddr, refusal: Refusal) {
        self.stats.rejected += 1;
        let now = Instant::now();
        let held = self
            .last_reject_report
            .is_some_and(|last| now.duration_since(last) < REJECT_REPORT_INTERVAL);
        self.admission.refused(&refusal, held);
        if held {
            self.rejects_unreported += 1;
            return;
        }
        let max = self.config.max_connections;
        let unreported = std::mem::take(&mut self.rejects_unreported);
        // This line accounts for them.
        self.admission.unreported = Default::default();
        if !matches!(refusal, Refusal::ConnectionLimit(_)) {
            self.log_refusal(peer, &refusal, unreported);
        } else if unreported > 0 {
            warn!(
                target: "REJECT",
                peer:% = peer;
                "{peer} over the connection limit of {max} \
                 ({unreported} more rejected since the last report)"
            );
        } else {
            warn!(target: "REJECT", peer:% = peer; "{peer} over the connection limit of {max}");
        }
        self.last_reject_report = Some(now);
    }

    /// Logs the rejections held back by [`REJECT_REPORT_INTERVAL`] once it
    /// has passed (or at once when `now` is `None`, at the end), so the log
    /// accounts for every one even when no further rejection comes.
    pub(super) fn report_held_rejects(&mut self, now: Option<Instant>) {
        if self.rejects_unreported == 0 {
            return;
        }
        if let (Some(now), Some(last)) = (now, self.last_reject_report) {
            if now.duration_since(last) < REJECT_REPORT_INTERVAL {
                return;
            }
        }
        let unreported = std::mem::take(&mut self.rejects_unreported);
        if self.admission.only_limit_unreported() {
            self.admission.unreported = Default::default();
            warn!(
                target: "REJECT",
                "{unreported} more connection(s) rejected over the connection limit of {} \
                 since the last report",
                self.config.max_connections
            );
        } else {
            let reasons = self
                .admission
                .take_unreported(&self.config)
                .unwrap_or_default();
            warn!(
                target: "REJECT",
                "{unreported} more connection(s) rejected since the last report ({reasons})"
            );
        }
        self.last_reject_report = now.or(self.last_reject_report);
    }
}

/// Takes the next connection off `listener`'s queue; `None` once the queue
/// is empty. Interrupted calls and connections that died while queued are
/// stepped over; an error is a failure of accepting itself, which leaves
/// the queue as it was.
fn accept_one(listener: &TcpListener) -> io::Result<Option<(TcpStream, SocketAddr)>> {
    loop {
        match listener.accept() {
            Ok(accepted) => return Ok(Some(accepted)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted || died_in_queue(&e) => {}
            Err(e) => return Err(e),
        }
    }
}

/// An accept error that concerns only the one connection that gave up
/// while queued (aborted or reset before we took it); the others still wait.
fn died_in_queue(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}
