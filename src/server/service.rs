//! The echo connections' turns, timeouts and ends: [`Server::service`]
//! moves a connection's bytes and acts on what its state machine says
//! next; [`Server::close`] ends one with its DISCONNECT line.

use std::time::Instant;

use log::{debug, info};
use mio::Token;

use super::token::WORKERS;
use super::{cancel_timer, live, token, Server};
use crate::logic::echo::{CloseReason, Next};
use crate::logic::timer::Expiry;

impl Server {
    /// Gives a connection its turn: move bytes, then wait, queue or close.
    pub(super) fn service(&mut self, token: Token, hangup: bool, urgent: bool) {
        let key = token::key(token);
        let Some(conn) = live(&mut self.connections, token) else {
            // The workers' waker: its token's key is beyond any slab key,
            // so it is looked for only here, off the path of every event.
            if token == WORKERS {
                self.deliver_checks();
            }
            // Else spurious, or for a connection already closed (its key
            // maybe reused): nothing to do.
            return;
        };
        if hangup {
            conn.echo.note_peer_hangup();
        }
        if urgent {
            conn.echo.note_urgent();
        }
        let progress = conn.pump(
            &mut self.scratch,
            &mut self.pipes_left,
            self.workers.as_ref(),
        );
        // A TLS turn may close it: found again then, and only then.
        let conn = if conn.tls.is_some() {
            self.after_tls_turn(token, &progress);
            let Some(conn) = live(&mut self.connections, token) else {
                return;
            };
            conn
        } else {
            conn
        };
        if progress.began_splicing {
            self.stats.spliced += 1;
            debug!(
                target: "DATA",
                "{} streams: echoing through a kernel pipe from now on (zero-copy)", conn.peer
            );
        }
        if progress.moved_bytes() {
            conn.last_active = self.turn_started;
            self.stats.bytes_in += progress.received as u64;
            self.stats.bytes_out += progress.echoed as u64;
            debug!(
                target: "DATA",
                peer:% = conn.peer,
                bytes_in = progress.received,
                bytes_out = progress.echoed;
                "{} RX: {} bytes, TX: {} bytes",
                conn.peer, progress.received, progress.echoed
            );
        }
        // The next wait may spin for this peer: for a stream, only where
        // the probe finds that spinning moves more bytes.
        let streams = conn.stream_memory.note_turn(
            progress.received,
            progress.streamed,
            self.config.buffer_size,
            &self.turn_started,
        );
        if streams {
            self.busy_poll
                .stream_moved(progress.received as u64, self.turn_started);
        }
        if !matches!(progress.next, Next::Close(_)) {
            self.busy_poll.note_served(streams);
        }
        match progress.next {
            Next::Wait => {}
            Next::Resume => self.resume.push(token, &mut conn.queued),
            Next::Close(reason) => self.close(key, reason),
        }
    }

    /// Hands the workers' answers to their connections, each followed by a
    /// turn to send it; an answer for a connection that closed meanwhile
    /// (its token no longer live) is dropped.
    pub(super) fn deliver_checks(&mut self) {
        let Some(workers) = &self.workers else {
            return;
        };
        let mut done = std::mem::take(&mut self.done);
        workers.take_done(&mut done);
        for answer in done.drain(..) {
            let Some(conn) = live(&mut self.connections, answer.token) else {
                continue;
            };
            conn.echo.deliver(answer.prime);
            self.service(answer.token, false, false);
        }
        self.done = done;
    }

    /// Fires due idle timers: a timer whose connection moved bytes since it
    /// was armed is re-armed from the last activity instead.
    pub(super) fn expire_idle(&mut self, now: Instant) {
        if self.config.idle_timeout.is_none()
            && self.no_http_clients()
            && self.pending.is_empty()
            && self.tls.is_none()
        {
            return;
        }
        let tick = self.clock.floor(now);
        let mut fired = std::mem::take(&mut self.fired);
        self.wheel.advance(tick, &mut fired);
        for token in fired.drain(..) {
            if token::is_http(token) {
                self.expire_http(token, tick);
                continue;
            }
            if token::is_proxy(token) {
                self.expire_header(token);
                continue;
            }
            if let Some(conn) = live(&mut self.connections, token) {
                conn.timer = None;
            }
            if self.tls_timer_fired(token, now, tick) {
                continue;
            }
            let Some(idle) = self.config.idle_timeout else {
                continue;
            };
            let Some(conn) = live(&mut self.connections, token) else {
                continue;
            };
            conn.timer = None;
            match self.clock.expiry(conn.last_active, idle, tick) {
                Expiry::Close => {
                    info!(
                        target: "TIMEOUT",
                        peer:% = conn.peer;
                        "{} idle for {:.1}s",
                        conn.peer,
                        now.duration_since(conn.last_active).as_secs_f64()
                    );
                    self.close(token::key(token), CloseReason::IdleTimeout);
                }
                Expiry::Rearm(due) => {
                    self.wheel.insert(due, token);
                    conn.timer = Some(due);
                }
            }
        }
        self.fired = fired;
    }

    /// Ends a connection: cancels its timer, counts and logs it, and closes
    /// the socket (which also removes it from the poll).
    pub(super) fn close(&mut self, key: usize, reason: CloseReason) {
        let mut conn = self.connections.remove(key);
        conn.cancel_checks();
        if conn.pipe.is_some() {
            self.pipes_left += 1;
        }
        cancel_timer(&mut self.wheel, conn.timer, conn.token);
        self.stats.closed();
        self.admission.closed(conn.peer.ip());
        if reason == CloseReason::IdleTimeout {
            self.stats.timed_out += 1;
        }
        // One TCP_INFO read per connection's life at close: its final RTT
        // and retransmits (the last reading if this one fails).
        let retransmits = conn.sample_tcp();
        let tcp = conn.tcp;
        let duration = conn.connected_at.elapsed();
        if let Some(endpoint) = &mut self.endpoint {
            let observed = endpoint.observed();
            observed.retransmits += retransmits;
            observed.closed(&reason, duration, conn.echo.received(), tcp.as_ref());
        }
        let discarded = conn.echo.discarded();
        let late = if discarded > 0 {
            format!(", {discarded} bytes after shutdown dropped")
        } else {
            String::new()
        };
        // The TCP figures follow the parenthesis, so the fields before it
        // read as they always did.
        let path = tcp.map_or_else(String::new, |t| {
            format!(
                " srtt: {:.3} ms, rttvar: {:.3} ms, retransmits: {}",
                t.srtt_ms(),
                t.rttvar_ms(),
                t.total_retrans
            )
        });
        info!(
            target: "DISCONNECT",
            peer:% = conn.peer,
            bytes_in = conn.echo.received(),
            bytes_out = conn.echo.echoed(),
            duration_s = (duration.as_secs_f64() * 1e3).round() / 1e3,
            reason:% = reason,
            srtt_ms = tcp.map(|t| t.srtt_ms()),
            retransmits = tcp.map(|t| t.total_retrans);
            "{} ({:.3}s connected, RX: {} bytes, TX: {} bytes, reason: {reason}{late}){path}",
            conn.peer,
            duration.as_secs_f64(),
            conn.echo.received(),
            conn.echo.echoed()
        );
        // A descriptor just came free: if accepting is paused, retry now.
        if self.accept_retry_at.is_some() {
            self.accept_retry_at = Some(Instant::now());
        }
    }
}
