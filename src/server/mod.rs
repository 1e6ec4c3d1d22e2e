//! The event loop: one `Poll` on one thread owns the listeners, every
//! connection, the signal pipes and the idle-timer wheel. This file runs
//! the loop and routes its events; each job has its own file:
//! - `listeners`: the sockets `--port`/`--listen` ask for, bound all or none;
//! - `accept`: one accept loop for every listener;
//! - `admission`: `--allow`, `--max-per-source`, and why a client is refused;
//! - `proxy_header`: `--proxy-protocol`'s header, read before admission;
//! - `service`: an echo connection's turn, its idle timeout and its close;
//! - `connection`: an echo connection and its socket;
//! - `resume`: connections owed another turn;
//! - `shutdown`: signals, draining, and the log's last lines;
//! - `wait`: waiting for readiness (busy-poll, then sleep);
//! - `workers`: the prime checks of `--mode framed`, on their own threads;
//! - `endpoint`, `endpoint_client`, `pages`: the metrics endpoint;
//! - `token`: which socket an event is for;
//! - `udp`: UDP echo (`--udp`), its sockets and per-source limits.
//!
//! The flow of one byte: `wait` returns a readable edge for a connection's
//! token → `dispatch` (here) → `Server::service` finds the connection
//! (checking the token's generation) → `Connection::pump` lends its socket
//! to [`Echo::pump`](crate::logic::echo::Echo::pump), which reads the byte
//! and writes it straight back through that socket → what happens next is
//! decided from the connection's state (wait for an edge, resume after
//! others had a turn, or close).
//!
//! Error boundary: an error of one connection closes that connection and is
//! logged in its DISCONNECT line; it never reaches the loop. Only a failure
//! of `poll` itself ends [`Server::run`] with an error.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Events, Poll, Token};
use slab::Slab;

use crate::config::Config;
use crate::logic::busy_poll::BusyPoll;
use crate::logic::service::Mode;
use crate::logic::stats::Totals;
use crate::logic::timer::{TickClock, TimerWheel};
use crate::os::limits;
use crate::os::signal::{Signal, StopSignals};
use accept::{Listener, REJECT_REPORT_INTERVAL};
use admission::Admission;
use connection::Connection;
use endpoint::{Endpoint, MAX_HTTP_REFUSING};
use listeners::Listeners;
use proxy_header::PendingHeaders;
use resume::ResumeQueue;
use token::{METRICS, SIGNALS, WORKERS};
use workers::{Done, Workers};

mod accept;
mod admission;
mod connection;
mod endpoint;
mod endpoint_client;
pub mod listeners;
pub mod logging;
mod pages;
mod proxy_header;
mod resume;
mod service;
mod shutdown;
mod stats_line;
pub mod tls;
mod token;
mod udp;
mod wait;
mod workers;

pub use endpoint::MAX_HTTP_CONNECTIONS;

/// Resolution of the idle timers: a connection closes at most this much
/// after its timeout.
pub(crate) const TICK: Duration = Duration::from_millis(100);
/// 512 slots of 100 ms: one revolution is 51.2 s, so the default 300 s
/// timeout goes round about six times before firing, which costs a glance
/// per revolution.
const WHEEL_SLOT_BITS: u32 = 9;
/// Readiness events taken from the kernel per `poll`.
const EVENTS_PER_POLL: usize = 1024;

/// How [`Server::run`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// A stop signal arrived and every connection was flushed and closed,
    /// or the shutdown timeout closed the rest.
    Clean,
    /// A second stop signal arrived before that: connections were dropped.
    Abandoned(Signal),
}

/// The echo server: listeners, connections, timers and counters.
#[derive(Debug)]
pub struct Server {
    config: Config,
    poll: Poll,
    /// The echo listeners; closed once stopping, so that new connects
    /// fail at once.
    listeners: Listeners,
    /// Who may connect, and the refusals by reason.
    admission: Admission,
    /// Connections still sending their PROXY header.
    pending: PendingHeaders,
    signals: StopSignals,
    connections: Slab<Connection>,
    /// Bumped for every accepted connection (echo or endpoint); part of its
    /// token.
    generation: u32,
    /// Connections whose turn ended with data possibly still waiting.
    resume: ResumeQueue,
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
    /// The metrics endpoint, when `--metrics` is on.
    endpoint: Option<Endpoint>,
    /// The prime-check workers, in `--mode framed`.
    workers: Option<Workers>,
    /// Reused list of the workers' answers.
    done: Vec<Done>,
    /// UDP echo, when `--udp` is on.
    udp: Option<udp::UdpEcho>,
    /// TLS, when served (`--tls-cert`, `--tls-self-signed`).
    tls: Option<tls::TlsServing>,
}

impl Server {
    /// Takes over the bound listeners (each with its mode) and the
    /// installed stop signals.
    pub fn new(
        listeners: Vec<(std::net::TcpListener, Mode)>,
        config: Config,
        mut signals: StopSignals,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let (listeners, udp_sockets) = udp::bind_beside(listeners, &config)?;
        let listeners = Listeners::register(listeners, poll.registry())?;
        signals.register(poll.registry(), SIGNALS)?;
        let workers = match listeners.serve(Mode::Framed) {
            true => {
                let cpus = std::thread::available_parallelism().map_or(1, usize::from);
                let threads = config.workers.resolve(cpus);
                Some(Workers::start(
                    threads,
                    config.prime_test,
                    poll.registry(),
                    WORKERS,
                )?)
            }
            _ => None,
        };
        let now = Instant::now();
        let mut server = Self {
            poll,
            listeners,
            admission: Admission::default(),
            pending: PendingHeaders::default(),
            signals,
            connections: Slab::new(),
            generation: 0,
            resume: ResumeQueue::default(),
            clock: TickClock::new(now, TICK),
            turn_started: now,
            wheel: TimerWheel::new(WHEEL_SLOT_BITS),
            busy_poll: BusyPoll::new(config.busy_poll.window()),
            fired: Vec::new(),
            scratch: vec![0; config.buffer_size].into_boxed_slice(),
            pipes_left: limits::pipe_budget(config.max_connections, reserved_fds(&config)),
            stats: Totals::default(),
            accept_retry_at: None,
            accept_failing_since: None,
            last_reject_report: None,
            rejects_unreported: 0,
            next_stats: config.stats_interval.map(|every| now + every),
            stop_deadline: None,
            endpoint: None,
            workers,
            done: Vec::new(),
            udp: None,
            tls: None,
            config,
        };
        if let Some(sockets) = udp_sockets {
            server.serve_udp_on(sockets)?;
        }
        Ok(server)
    }

    /// The settings it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many threads run prime checks (framed), if any.
    pub fn prime_workers(&self) -> Option<usize> {
        self.workers.as_ref().map(Workers::threads)
    }

    /// The address actually bound (with the real port when 0 was asked);
    /// with several listeners, the first one's.
    pub fn local_addr(&self) -> SocketAddr {
        self.listeners
            .addr(0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The listeners, as the banner lists them.
    pub fn listening_on(&self) -> String {
        self.listeners.banner(self.config.mode)
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

    fn serve(&mut self) -> io::Result<Stop> {
        let stop = self.serve_until_stopped();
        self.report_held_rejects(None);
        self.report_udp_drops(None);
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
            if let Some(endpoint) = &mut self.endpoint {
                endpoint.new_pass();
            }
            for event in events.iter() {
                if let Some(stop) = self.dispatch(event) {
                    return Ok(stop);
                }
            }
            self.resume_queued();
            self.resume_udp();

            // The turn's start, not a fresh reading: activity was stamped
            // with it, so an idle connection is judged by one clock only.
            let now = self.turn_started;
            self.expire_idle(now);
            if self.accept_retry_at.is_some_and(|at| at <= now) {
                self.accept_retry_at = None;
                self.accept_every_listener();
                self.accept(Listener::Metrics);
            }
            self.report_stats(now);
            if let Some(endpoint) = &mut self.endpoint {
                endpoint.record_history(&self.stats, &self.connections, now);
            }
            self.report_held_rejects(Some(now));
            self.report_udp_drops(Some(now));
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
        if !self.resume.is_empty() || self.udp.as_ref().is_some_and(udp::UdpEcho::has_owed) {
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
            self.endpoint.as_ref().and_then(Endpoint::history_due),
            self.udp.as_ref().and_then(udp::UdpEcho::report_due),
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
        // Echo connections first, with one test: every other token has a
        // flag bit in its key half (the reserved ones at the top of the
        // range too), and the echo path pays for none of their checks.
        if token::is_connection(token) {
            // EPOLLRDHUP or an error: the peer's EOF raises no further
            // edge, so this turn must read until it sees it.
            let hangup = event.is_read_closed() || event.is_error();
            self.service(token, hangup, event.is_priority());
            return None;
        }
        if token == WORKERS {
            self.deliver_checks();
            return None;
        }
        if let Some(index) = token::listener_index(token) {
            self.accept(Listener::Echo(index));
            return None;
        }
        if token == METRICS {
            self.accept(Listener::Metrics);
            return None;
        }
        if token::is_http(token) {
            match token::udp_index(token) {
                Some(index) => self.service_udp(index),
                None => self.service_http(token),
            }
            return None;
        }
        if token::is_proxy(token) {
            self.read_header(token);
            return None;
        }
        if let Some((signal, count)) = self.signals.take(SIGNALS, token) {
            return self.on_signal(signal, count);
        }
        None
    }
}

/// Descriptors a server with `config` holds besides its echo connections
/// and their pipes: the endpoint's clients, when it has an endpoint, are
/// among them.
pub fn reserved_fds(config: &Config) -> u64 {
    let endpoint_clients = MAX_HTTP_CONNECTIONS + MAX_HTTP_REFUSING;
    // `limits` counts one echo listener.
    let more_listeners = (config.ports.len()
        + config
            .listen_more
            .iter()
            .map(|g| g.ports.len())
            .sum::<usize>())
    .saturating_sub(1) as u64;
    limits::reserved_fds(config.metrics.map(|_| endpoint_clients)) + more_listeners
}

/// The connection an event's token refers to, if it is still that one.
fn live(connections: &mut Slab<Connection>, token: Token) -> Option<&mut Connection> {
    connections
        .get_mut(token::key(token))
        .filter(|conn| conn.token == token)
}

/// Removes the idle timer armed at tick `timer` (if any) for `token`.
fn cancel_timer(wheel: &mut TimerWheel<Token>, timer: Option<u64>, token: Token) {
    if let Some(deadline) = timer {
        wheel.remove(deadline, |armed| *armed == token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::service::Service;
    use mio::net::TcpStream;

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
        slab.insert(Connection::new(
            old_stream,
            peer,
            old,
            (64, Service::Echo),
            None,
            now,
        ));
        slab.remove(key);

        let (new_stream, _new_client) = loopback_stream();
        let reused = slab.vacant_entry().key();
        assert_eq!(reused, key, "slab reuses the freed key first");
        let new = token::connection(reused, 2);
        slab.insert(Connection::new(
            new_stream,
            peer,
            new,
            (64, Service::Echo),
            None,
            now,
        ));

        assert!(
            live(&mut slab, old).is_none(),
            "stale event reached the new connection"
        );
        assert_eq!(live(&mut slab, new).map(|c| c.token), Some(new));
    }
}
