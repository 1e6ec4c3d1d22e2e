//! The event loop: one `Poll` on one thread owns the listener, every
//! connection, the signal pipes and the idle-timer wheel.
//!
//! The flow of one byte: a readable edge for a connection's token →
//! [`Server::service`] finds the connection (checking the token's
//! generation) → [`Connection::pump`] reads it and writes it straight back →
//! what happens next is decided from the connection's state (wait for an
//! edge, resume after others had a turn, or close).
//!
//! Error boundary: an error of one connection closes that connection and is
//! logged in its DISCONNECT line; it never reaches the loop. Only a failure
//! of `poll` itself ends [`Server::run`] with an error.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use rustix::io::Errno;
use slab::Slab;

use crate::config::Config;
use crate::logic::busy_poll::BusyPoll;
use crate::logic::echo::{CloseReason, Next};
use crate::logic::http::conn::HttpConnection;
use crate::logic::metrics::{EndpointCounters, Process};
use crate::logic::stats::Totals;
use crate::logic::timer::{Expiry, TickClock, TimerWheel};
use crate::os::signal::{self, Signal, StopSignals};
use crate::os::tcp_info;
use connection::Connection;
use token::{LISTENER, LOG_DRAINED, METRICS, SIGNALS};

pub mod connection;
mod endpoint;
pub mod logging;
pub mod token;
mod wait;

use endpoint::{live_http, sample_tcp};
pub use endpoint::{HTTP_TIMEOUT, MAX_HTTP_CONNECTIONS};

/// Resolution of the idle timers: a connection closes at most this much
/// after its timeout.
pub const TICK: Duration = Duration::from_millis(100);
/// 512 slots of 100 ms: one revolution is 51.2 s, so the default 300 s
/// timeout goes round about six times before firing, which costs a glance
/// per revolution.
const WHEEL_SLOT_BITS: u32 = 9;
/// How long to wait before retrying `accept` after it failed for lack of
/// descriptors or memory: short enough to pick up a freed descriptor
/// promptly, long enough that a full process does not spin.
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// At most one REJECT line per this interval; the rest are counted.
const REJECT_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Readiness events taken from the kernel per `poll`.
const EVENTS_PER_POLL: usize = 1024;
/// A stop signal this soon after the first is a copy of it, not the user
/// asking again: faster than anyone presses Ctrl+C twice.
const SAME_SIGNAL_WINDOW: Duration = Duration::from_millis(200);

/// How [`Server::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A stop signal arrived and every connection was flushed and closed,
    /// or the shutdown timeout closed the rest.
    Clean,
    /// A second stop signal arrived before that: connections were dropped.
    Abandoned(Signal),
}

/// The echo server: listener, connections, timers and counters.
#[derive(Debug)]
pub struct Server {
    config: Config,
    poll: Poll,
    /// `None` once stopping: dropping it makes new connects fail at once.
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    signals: StopSignals,
    connections: Slab<Connection>,
    /// Bumped for every accepted connection; part of its token.
    generation: u32,
    /// Connections whose turn ended with data possibly still waiting. No
    /// edge will come for that data, so the loop resumes them itself.
    resume: VecDeque<Token>,
    clock: TickClock,
    /// When the current loop turn's poll returned. It stamps the activity
    /// of every connection served in the turn and is the time idle timers
    /// are judged by: one clock read per turn rather than one per message.
    turn_started: Instant,
    /// Idle timers, keyed by connection token.
    wheel: TimerWheel<Token>,
    /// How long the next wait for events may poll before it sleeps.
    busy_poll: BusyPoll,
    /// Reused buffer for timers fired by one advance.
    fired: Vec<Token>,
    /// The one read buffer all connections share: echoes that the socket
    /// takes at once never touch per-connection memory.
    scratch: Box<[u8]>,
    /// Zero-copy pipes that may still be opened (see `limits::pipe_budget`).
    pipes_left: usize,
    stats: Totals,
    /// Set while accepting is paused after a failure; the loop retries then.
    accept_retry_at: Option<Instant>,
    /// Start of the current episode of failing accepts, logged once.
    accept_failing_since: Option<Instant>,
    last_reject_report: Option<Instant>,
    rejects_unreported: u64,
    next_stats: Option<Instant>,
    /// Set once stopping: when to give up flushing.
    stop_deadline: Option<Instant>,
    /// The metrics endpoint's listener, when `--metrics` is on.
    metrics_listener: Option<TcpListener>,
    /// HTTP connections of the endpoint: same loop and wheel, own slab, not
    /// counted as echo connections.
    http: Slab<HttpConnection>,
    /// Of those, the ones over the limit, refused with a `503`.
    http_refusing: usize,
    /// Endpoint answers still allowed in this pass of the loop.
    http_budget: usize,
    /// The endpoint's pages rendered in this pass of the loop.
    pages: endpoint::Pages,
    /// Counters only the endpoint reports.
    observed: EndpointCounters,
    /// When TCP_INFO was last read for every connection.
    tcp_sampled_at: Option<Instant>,
    /// The process figures (read from /proc) and when, reused for a second
    /// so that a hammered endpoint does not spend the loop in /proc.
    process: Option<(Instant, Option<Process>)>,
}

impl Server {
    /// Takes over a bound listener and the installed stop signals.
    pub fn new(
        listener: std::net::TcpListener,
        config: Config,
        mut signals: StopSignals,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let local_addr = listener.local_addr()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        signals.register(poll.registry(), SIGNALS)?;
        let now = Instant::now();
        Ok(Self {
            poll,
            listener: Some(listener),
            local_addr,
            signals,
            connections: Slab::new(),
            generation: 0,
            resume: VecDeque::new(),
            clock: TickClock::new(now, TICK),
            turn_started: now,
            wheel: TimerWheel::new(WHEEL_SLOT_BITS),
            busy_poll: BusyPoll::new(config.busy_poll),
            fired: Vec::new(),
            scratch: vec![0; config.buffer_size].into_boxed_slice(),
            pipes_left: crate::os::limits::pipe_budget(config.max_connections),
            stats: Totals::default(),
            accept_retry_at: None,
            accept_failing_since: None,
            last_reject_report: None,
            rejects_unreported: 0,
            next_stats: config.stats_interval.map(|every| now + every),
            stop_deadline: None,
            metrics_listener: None,
            http: Slab::new(),
            http_refusing: 0,
            http_budget: endpoint::RESPONSES_PER_PASS,
            pages: endpoint::Pages::default(),
            observed: EndpointCounters::default(),
            tcp_sampled_at: None,
            process: None,
            config,
        })
    }

    /// Serves the dashboard and metrics on `listener` from this loop;
    /// returns the address actually bound.
    pub fn serve_metrics(&mut self, listener: std::net::TcpListener) -> io::Result<SocketAddr> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let addr = listener.local_addr()?;
        self.poll
            .registry()
            .register(&mut listener, METRICS, Interest::READABLE)?;
        self.metrics_listener = Some(listener);
        Ok(addr)
    }

    /// The address actually bound (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// When a stop's drain must end: `None` until a stop signal came.
    pub fn stop_deadline(&self) -> Option<Instant> {
        self.stop_deadline
    }

    /// Counters so far; after [`run`](Self::run), the final ones.
    pub fn stats(&self) -> &Totals {
        &self.stats
    }

    /// Serves until a stop signal; see [`Stop`].
    pub fn run(&mut self) -> io::Result<Stop> {
        let stop = self.serve();
        // Splicing left SIGPIPE blocked: give the thread its mask back.
        crate::os::sigpipe::release();
        stop
    }

    /// After [`run`](Self::run): waits until the log's writer has written
    /// everything queued, or `deadline`, or a stop signal, whichever comes
    /// first; a stop signal is returned. The loop's own thread never
    /// writes the log, so only here does it wait for it.
    pub fn wait_for_log(&mut self, deadline: Instant) -> io::Result<Option<Signal>> {
        crate::os::log_writer::wake_when_drained(mio::Waker::new(
            self.poll.registry(),
            LOG_DRAINED,
        )?);
        let mut events = Events::with_capacity(8);
        while !crate::os::log_writer::is_drained() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.poll.poll(&mut events, Some(deadline - now)) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => other?,
            }
            for event in events.iter() {
                if let Some((signal, count)) = self.signals.take(SIGNALS, event.token()) {
                    if count > 0 && matches!(signal, signal::INT | signal::TERM) {
                        return Ok(Some(signal));
                    }
                }
            }
        }
        Ok(None)
    }

    fn serve(&mut self) -> io::Result<Stop> {
        let stop = self.serve_until_stopped();
        self.report_held_rejects(None);
        stop
    }

    fn serve_until_stopped(&mut self) -> io::Result<Stop> {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        loop {
            let began = Instant::now();
            let timeout = self.poll_timeout(began);
            self.turn_started = wait::wait_for_events(
                &mut self.poll,
                &mut events,
                timeout,
                &mut self.busy_poll,
                began,
            )?;
            self.http_budget = endpoint::RESPONSES_PER_PASS;
            for event in events.iter() {
                if let Some(stop) = self.dispatch(event) {
                    return Ok(stop);
                }
            }
            self.resume_queued();

            // The turn's start, not a fresh reading: activity was stamped
            // with it, so an idle connection is judged by one clock only.
            let now = self.turn_started;
            self.expire_idle(now);
            if self.accept_retry_at.is_some_and(|at| at <= now) {
                self.accept_retry_at = None;
                self.accept_connections();
                self.accept_http();
            }
            self.report_stats(now);
            self.report_held_rejects(Some(now));
            if let Some(deadline) = self.stop_deadline {
                if self.connections.is_empty() {
                    return Ok(Stop::Clean);
                }
                if now >= deadline {
                    self.close_all_at_deadline();
                    return Ok(Stop::Clean);
                }
            }
        }
    }

    /// How long `poll` may sleep: until the earliest thing the loop itself
    /// must do, or not at all while connections wait to be resumed.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.resume.is_empty() {
            return Some(Duration::ZERO);
        }
        let idle = self
            .wheel
            .next_wakeup()
            .map(|tick| self.clock.instant_of(tick));
        let held_rejects = (self.rejects_unreported > 0)
            .then(|| {
                self.last_reject_report
                    .map(|at| at + REJECT_REPORT_INTERVAL)
            })
            .flatten();
        [
            idle,
            self.accept_retry_at,
            self.next_stats,
            self.stop_deadline,
            held_rejects,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(now))
    }

    /// Routes one readiness event; returns a stop if it was a signal that
    /// ends the loop at once.
    fn dispatch(&mut self, event: &Event) -> Option<Stop> {
        let token = event.token();
        if token == LISTENER {
            self.accept_connections();
            return None;
        }
        if token == METRICS {
            self.accept_http();
            return None;
        }
        if token::is_http(token) {
            self.service_http(token);
            return None;
        }
        if let Some((signal, count)) = self.signals.take(SIGNALS, token) {
            return self.on_signal(signal, count);
        }
        // EPOLLRDHUP or an error: the peer's EOF raises no further edge,
        // so this turn must read until it sees it.
        let hangup = event.is_read_closed() || event.is_error();
        self.service(token, hangup, event.is_priority());
        None
    }

    /// Gives a connection its turn: move bytes, then wait, queue or close.
    fn service(&mut self, token: Token, hangup: bool, urgent: bool) {
        let key = token::key(token);
        let Some(conn) = live(&mut self.connections, token) else {
            // Spurious, or for a connection already closed (its key maybe
            // reused): nothing to do.
            return;
        };
        if hangup {
            conn.echo.note_peer_hangup();
        }
        if urgent {
            conn.echo.note_urgent();
        }
        let progress = conn.pump(&mut self.scratch, &mut self.pipes_left);
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
        match progress.next {
            Next::Wait => {}
            Next::Resume => {
                if !conn.queued {
                    conn.queued = true;
                    self.resume.push_back(token);
                }
            }
            Next::Close(reason) => self.close(key, reason),
        }
    }

    /// Gives every connection queued before this call one more turn; those
    /// that queue themselves again wait for the next loop iteration, after
    /// fresh events.
    fn resume_queued(&mut self) {
        for _ in 0..self.resume.len() {
            let Some(token) = self.resume.pop_front() else {
                break;
            };
            if token::is_http(token) {
                if let Some(conn) = live_http(&mut self.http, token) {
                    conn.queued = false;
                    self.service_http(token);
                }
                continue;
            }
            if let Some(conn) = live(&mut self.connections, token) {
                conn.queued = false;
                self.service(token, false, false);
            }
        }
    }

    /// Accepts until the queue is empty (the listener is edge-triggered),
    /// unless accepting is paused after a failure.
    fn accept_connections(&mut self) {
        if self.accept_retry_at.is_some() {
            return;
        }
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    // Everyone who queued during a failure episode is in.
                    self.end_accept_failures();
                    return;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if died_in_queue(&e) => continue,
                Err(e) => {
                    self.pause_accepting(&e);
                    return;
                }
            }
        }
    }

    /// After `accept` failed (typically EMFILE): the connection stays in the
    /// kernel's queue, so retrying at once would spin. Serve the existing
    /// connections and retry on a timer, or as soon as one closes.
    fn pause_accepting(&mut self, e: &io::Error) {
        let now = Instant::now();
        self.accept_retry_at = Some(now + ACCEPT_RETRY);
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

    /// Takes a freshly accepted socket into service, or turns it away.
    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        // Clients of a `::` listener show as ::ffff:a.b.c.d; log them as IPv4.
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        if self.connections.len() >= self.config.max_connections {
            self.reject(peer);
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
        let mut conn = Connection::new(
            stream,
            peer,
            token,
            self.config.buffer_size,
            self.config.splice.then_some(self.config.splice_backlog),
            now,
        );
        if let Some(idle) = self.config.idle_timeout {
            let deadline = self.clock.ceil(now + idle);
            self.wheel.insert(deadline, token);
            conn.timer = Some(deadline);
        }
        entry.insert(conn);
        self.stats.opened();
        info!(target: "CONNECT", peer:% = peer; "{peer}");
    }

    /// Counts a connection over the limit (already closed by the caller
    /// dropping it) and logs at most one line per second about such.
    fn reject(&mut self, peer: SocketAddr) {
        self.stats.rejected += 1;
        let now = Instant::now();
        if self
            .last_reject_report
            .is_some_and(|last| now.duration_since(last) < REJECT_REPORT_INTERVAL)
        {
            self.rejects_unreported += 1;
            return;
        }
        let max = self.config.max_connections;
        let unreported = std::mem::take(&mut self.rejects_unreported);
        if unreported > 0 {
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
    fn report_held_rejects(&mut self, now: Option<Instant>) {
        if self.rejects_unreported == 0 {
            return;
        }
        if let (Some(now), Some(last)) = (now, self.last_reject_report) {
            if now.duration_since(last) < REJECT_REPORT_INTERVAL {
                return;
            }
        }
        let unreported = std::mem::take(&mut self.rejects_unreported);
        warn!(
            target: "REJECT",
            "{unreported} more connection(s) rejected over the connection limit of {} \
             since the last report",
            self.config.max_connections
        );
        self.last_reject_report = now.or(self.last_reject_report);
    }

    /// Fires due idle timers: a timer whose connection moved bytes since it
    /// was armed is re-armed from the last activity instead.
    fn expire_idle(&mut self, now: Instant) {
        if self.config.idle_timeout.is_none() && self.http.is_empty() {
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

    fn report_stats(&mut self, now: Instant) {
        let (Some(at), Some(every)) = (self.next_stats, self.config.stats_interval) else {
            return;
        };
        if now >= at {
            self.log_stats(now);
            self.next_stats = Some(now + every);
        }
    }

    fn log_stats(&mut self, now: Instant) {
        if self.metrics_listener.is_some() {
            sample_tcp(&mut self.connections, &mut self.observed);
            self.tcp_sampled_at = Some(now);
        }
        let s = &self.stats;
        info!(
            target: "STATS",
            connections_total = s.served,
            connections_active = s.active,
            connections_peak = s.peak,
            bytes_in = s.bytes_in,
            bytes_out = s.bytes_out,
            rejected = s.rejected,
            timed_out = s.timed_out;
            "{}",
            s.report()
        );
    }

    /// SIGUSR1 reports, SIGHUP reloads; a stop signal stops (see
    /// [`Self::on_stop_signal`]). None of them kills the server outright.
    fn on_signal(&mut self, signal: Signal, count: usize) -> Option<Stop> {
        if count == 0 {
            return None;
        }
        match signal {
            signal::USR1 => {
                self.log_stats(Instant::now());
                None
            }
            signal::HUP => {
                // Reserved for reloading files (TLS certificates); today the
                // server reads none after start.
                info!(target: "RELOAD", "SIGHUP received: nothing to reload");
                None
            }
            _ => self.on_stop_signal(signal),
        }
    }

    /// First signal: stop accepting and drain. Again: stop at once.
    fn on_stop_signal(&mut self, signal: Signal) -> Option<Stop> {
        let name = signal.name;
        let now = Instant::now();
        // The first signal set the deadline this long after it came.
        let began = self
            .stop_deadline
            .map(|deadline| deadline - self.config.shutdown_timeout);
        match began {
            None => {
                self.begin_stop(name);
                return None;
            }
            // One Ctrl+C can arrive twice: the terminal signals the whole
            // process group, and `timeout(1)` or a shell wrapper in it
            // forwards its copy. That is still one request to stop.
            Some(began) if now.duration_since(began) < SAME_SIGNAL_WINDOW => {
                debug!(target: "SHUTDOWN", "{name} received again at once: taken as the same request");
                return None;
            }
            Some(_) => {}
        }
        let owed: usize = self.connections.iter().map(|(_, c)| c.echo.pending()).sum();
        warn!(
            target: "SHUTDOWN",
            "{name} received again: exiting now, dropping {} connection(s) with {owed} bytes not echoed",
            self.connections.len()
        );
        // Each still gets its DISCONNECT line, with what it sent and got.
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown);
        }
        Some(Stop::Abandoned(signal))
    }

    fn begin_stop(&mut self, name: &str) {
        if let Some(mut listener) = self.listener.take() {
            // Closing it (on drop) makes new connects fail at once.
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // The endpoint stops too; the loop ends when the echo side is done.
        if let Some(mut listener) = self.metrics_listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        let keys: Vec<usize> = self.http.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close_http(key);
        }
        self.accept_retry_at = None;
        let timeout = self.config.shutdown_timeout;
        self.stop_deadline = Some(Instant::now() + timeout);
        info!(
            target: "SHUTDOWN",
            "{name} received: no longer accepting; flushing {} connection(s) for up to {:.1}s \
             (send it again to exit at once)",
            self.connections.len(),
            timeout.as_secs_f64()
        );
        // No event will announce the new phase: queue everyone for a turn.
        for (_, conn) in self.connections.iter_mut() {
            conn.echo.begin_shutdown();
            if !conn.queued {
                conn.queued = true;
                self.resume.push_back(conn.token);
            }
        }
    }

    fn close_all_at_deadline(&mut self) {
        let owed: usize = self.connections.iter().map(|(_, c)| c.echo.pending()).sum();
        warn!(
            target: "SHUTDOWN",
            "shutdown timeout reached: closing {} connection(s) with {owed} bytes not echoed",
            self.connections.len()
        );
        let keys: Vec<usize> = self.connections.iter().map(|(key, _)| key).collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown);
        }
    }

    /// Ends a connection: cancels its timer, counts and logs it, and closes
    /// the socket (which also removes it from the poll).
    fn close(&mut self, key: usize, reason: CloseReason) {
        let conn = self.connections.remove(key);
        if conn.pipe.is_some() {
            self.pipes_left += 1;
        }
        if let Some(deadline) = conn.timer {
            self.wheel.remove(deadline, |token| *token == conn.token);
        }
        self.stats.closed();
        if reason == CloseReason::IdleTimeout {
            self.stats.timed_out += 1;
        }
        // One TCP_INFO read per connection's life at close: its final RTT
        // and retransmits.
        let tcp = tcp_info::sample(&conn.stream).ok().or(conn.tcp);
        if let Some(info) = &tcp {
            self.observed.retransmits +=
                u64::from(info.total_retrans.saturating_sub(conn.retrans_counted));
        }
        let duration = conn.connected_at.elapsed();
        self.observed
            .closed(&reason, duration, conn.echo.received(), tcp.as_ref());
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
                f64::from(t.rttvar_us) / 1000.0,
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

/// The connection an event's token refers to, if it is still that one.
/// An accept error that concerns only the one connection that gave up
/// while queued (aborted or reset before we took it); the others still wait.
fn died_in_queue(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    )
}

fn live(connections: &mut Slab<Connection>, token: Token) -> Option<&mut Connection> {
    connections
        .get_mut(token::key(token))
        .filter(|conn| conn.token == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback_stream() -> (TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .expect("connect loopback");
        let (accepted, _) = listener.accept().expect("accept loopback");
        (TcpStream::from_std(accepted), client)
    }

    // An event for a closed connection whose slab key was reused by a new
    // one finds nothing: the generation in its token no longer matches.
    #[test]
    fn stale_token_misses_reused_key() {
        let mut slab = Slab::new();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let now = Instant::now();

        let (old_stream, _old_client) = loopback_stream();
        let key = slab.vacant_entry().key();
        let old = token::connection(key, 1);
        slab.insert(Connection::new(old_stream, peer, old, 64, None, now));
        slab.remove(key);

        let (new_stream, _new_client) = loopback_stream();
        let reused = slab.vacant_entry().key();
        assert_eq!(reused, key, "slab reuses the freed key first");
        let new = token::connection(reused, 2);
        slab.insert(Connection::new(new_stream, peer, new, 64, None, now));

        assert!(
            live(&mut slab, old).is_none(),
            "stale event reached the new connection"
        );
        assert_eq!(live(&mut slab, new).map(|c| c.token), Some(new));
    }
}
