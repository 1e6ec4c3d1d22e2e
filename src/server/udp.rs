//! UDP echo (RFC 862, `--udp`): a socket per port in the loop's `Poll`,
//! each datagram sent back to its source unchanged, within the per-source
//! limits and the allow-list.
//!
//! - **No amplification**: a reply is the request's own bytes, never more.
//! - **No unbounded memory**: a reply the socket cannot take at once (its
//!   send buffer full) is dropped and counted, not queued; the only
//!   buffer is the one datagram being echoed.
//! - **Fair to TCP**: a socket's turn echoes at most [`UDP_TURN`]
//!   datagrams; one with more waiting (edge-triggered: no new edge will
//!   come) is owed a turn and gets it after every socket with events had
//!   theirs, and `poll` does not sleep meanwhile.
//! - **Not a reflector**: a token bucket per source address
//!   (`--udp-rate`, `--udp-bytes`; `logic::token_bucket`) cuts a flood,
//!   spoofed or not; the table of sources is bounded.

use std::collections::VecDeque;
use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::debug;
use mio::net::UdpSocket;
use mio::{Interest, Registry};

use super::{token, Server};
use crate::config::{Config, UdpSettings};
use crate::logic::cidr::AllowList;
use crate::logic::service::Mode;
use crate::logic::token_bucket::{Limits, SourceLimiter};
use crate::logic::udp::{HeldDrops, UdpCounts, UdpDrop};
use crate::os::{listener, udp as os_udp};

/// Datagrams one socket echoes per turn before others get theirs.
pub(super) const UDP_TURN: usize = 64;
/// Sources whose buckets are kept; beyond it the oldest is forgotten.
const MAX_SOURCES: usize = 16_384;
/// Receives any datagram whole: the largest UDP payload over IPv6 without
/// jumbograms is 65,527 bytes, so none is ever cut (and echoed cut).
const DATAGRAM_BUFFER: usize = 1 << 16;
/// At most one log line of drops per this long (`-v`).
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// With `--port 0`, how often to try another port when the one the kernel
/// gave TCP is taken for UDP.
const PORT_ZERO_TRIES: usize = 8;

/// The UDP side of the server.
#[derive(Debug)]
pub(super) struct UdpEcho {
    /// Empty once stopping.
    sockets: Vec<UdpSocket>,
    addrs: Vec<SocketAddr>,
    settings: UdpSettings,
    limiter: SourceLimiter,
    buffer: Box<[u8]>,
    /// Sockets whose turn ran out with datagrams possibly waiting.
    owed: VecDeque<usize>,
    is_owed: Vec<bool>,
    held: HeldDrops,
    last_held_from: Option<SocketAddr>,
    last_report: Option<Instant>,
}

impl UdpEcho {
    /// Takes over bound sockets and registers them (tokens `token::udp(i)`).
    fn new(
        sockets: Vec<std::net::UdpSocket>,
        settings: UdpSettings,
        registry: &Registry,
    ) -> io::Result<Self> {
        if sockets.len() > token::MAX_UDP_SOCKETS {
            return Err(io::Error::new(
                ErrorKind::InvalidInput,
                format!(
                    "--udp: at most {} ports, not {}",
                    token::MAX_UDP_SOCKETS,
                    sockets.len()
                ),
            ));
        }
        let mut registered = Vec::with_capacity(sockets.len());
        let mut addrs = Vec::with_capacity(sockets.len());
        for (index, socket) in sockets.into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            let mut socket = UdpSocket::from_std(socket);
            addrs.push(socket.local_addr()?);
            registry.register(&mut socket, token::udp(index), Interest::READABLE)?;
            registered.push(socket);
        }
        let limits = Limits {
            datagrams_per_sec: settings.rate as f64,
            bytes_per_sec: settings.bytes as f64,
        };
        Ok(Self {
            is_owed: vec![false; registered.len()],
            sockets: registered,
            addrs,
            settings,
            limiter: SourceLimiter::new(limits, MAX_SOURCES),
            buffer: vec![0; DATAGRAM_BUFFER].into_boxed_slice(),
            owed: VecDeque::new(),
            held: HeldDrops::default(),
            last_held_from: None,
            last_report: None,
        })
    }

    /// The banner's line: where, and within which limits.
    pub(super) fn banner(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(SocketAddr::to_string).collect();
        format!(
            "UDP echo on {} (per source: {} datagrams/s, {} bytes/s)",
            addrs.join(", "),
            self.settings.rate,
            self.settings.bytes
        )
    }

    /// True while a socket is owed a turn: `poll` must not sleep.
    pub(super) fn has_owed(&self) -> bool {
        !self.owed.is_empty()
    }

    /// When held drops are next due in the log, if any are held.
    pub(super) fn report_due(&self) -> Option<Instant> {
        if self.held.is_empty() {
            return None;
        }
        Some(
            self.last_report
                .map_or_else(Instant::now, |at| at + DROP_REPORT_INTERVAL),
        )
    }

    /// Stops serving: the sockets close, so datagrams meet a closed port.
    pub(super) fn stop(&mut self, registry: &Registry) {
        for socket in &mut self.sockets {
            let _ = registry.deregister(socket);
        }
        self.sockets.clear();
        self.owed.clear();
    }

    /// One turn of socket `index`: echoes up to [`UDP_TURN`] datagrams;
    /// true if the budget ran out before the socket's queue did.
    fn turn(
        &mut self,
        index: usize,
        counts: &mut UdpCounts,
        allow: Option<&AllowList>,
        now: Instant,
    ) -> bool {
        let Some(socket) = self.sockets.get(index) else {
            return false;
        };
        for _ in 0..UDP_TURN {
            let (len, from) = match socket.recv_from(&mut self.buffer) {
                Ok(received) => received,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                // A pending error (an ICMP report) is cleared by reading it;
                // the queue behind it is still there.
                Err(_) => continue,
            };
            counts.received(len);
            let verdict = if allow.is_some_and(|list| !list.allows(from.ip())) {
                Err(UdpDrop::NotAllowed)
            } else if !self.limiter.admit(from.ip(), len, now) {
                Err(UdpDrop::RateLimit)
            } else {
                match socket.send_to(&self.buffer[..len], from) {
                    Ok(sent) => Ok(sent),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => Err(UdpDrop::SendBlocked),
                    Err(_) => Err(UdpDrop::SendFailed),
                }
            };
            match verdict {
                Ok(sent) => counts.sent(sent),
                Err(why) => {
                    counts.drop(why);
                    self.held.0[why.index()] += 1;
                    self.last_held_from = Some(from);
                }
            }
            counts.sources = self.limiter.sources();
            counts.sources_evicted = self.limiter.evicted();
        }
        true
    }

    fn owe(&mut self, index: usize) {
        if let Some(flag) = self.is_owed.get_mut(index) {
            if !*flag {
                *flag = true;
                self.owed.push_back(index);
            }
        }
    }
}

/// The TCP listeners bound at start, each with its mode.
type Bound = Vec<(std::net::TcpListener, Mode)>;

/// Binds UDP on the address and port of every TCP listener in `bound`,
/// so both protocols answer on the same numbers. With `--port 0` (one
/// listener) the kernel chose TCP's port without asking UDP: if UDP's is
/// taken, TCP moves to another port and both try again, a few times.
pub(super) fn bind_beside(
    bound: Bound,
    config: &Config,
) -> io::Result<(Bound, Option<Vec<std::net::UdpSocket>>)> {
    if config.udp.is_none() {
        return Ok((bound, None));
    }
    let mut bound = bound;
    let mut tries = 1;
    loop {
        let addrs = bound
            .iter()
            .map(|(listener, _)| listener.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        match os_udp::bind_all(&addrs) {
            Ok(sockets) => return Ok((bound, Some(sockets))),
            Err(e)
                if e.kind() == ErrorKind::AddrInUse
                    && config.ports == [0]
                    && bound.len() == 1
                    && tries < PORT_ZERO_TRIES =>
            {
                tries += 1;
                let mut any_port = addrs[0];
                any_port.set_port(0);
                let mode = bound[0].1;
                bound = vec![(
                    listener::bind(any_port, config.backlog)
                        .map_err(|e| io::Error::new(e.kind(), e.to_string()))?,
                    mode,
                )];
            }
            Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
}

impl Server {
    /// Registers the UDP sockets [`bind_beside`] opened.
    pub(super) fn serve_udp_on(&mut self, sockets: Vec<std::net::UdpSocket>) -> io::Result<()> {
        let Some(settings) = self.config.udp else {
            return Ok(());
        };
        self.udp = Some(UdpEcho::new(sockets, settings, self.poll.registry())?);
        self.stats.udp = Some(UdpCounts::default());
        Ok(())
    }

    /// The banner's UDP line, when `--udp` is on.
    pub fn udp_banner(&self) -> Option<String> {
        self.udp.as_ref().map(UdpEcho::banner)
    }

    /// A readable edge on UDP socket `index`: its turn.
    pub(super) fn service_udp(&mut self, index: usize) {
        let (Some(udp), Some(counts)) = (&mut self.udp, &mut self.stats.udp) else {
            return;
        };
        if udp.is_owed.get(index).copied().unwrap_or(false) {
            // Already queued: its turn comes with the owed ones.
            return;
        }
        let echoed = counts.datagrams_out;
        if udp.turn(index, counts, self.config.allow.as_ref(), self.turn_started) {
            udp.owe(index);
        }
        if counts.datagrams_out > echoed {
            // A peer waiting for its echo, as a ping-pong connection is:
            // the next wait may spin for its next datagram.
            self.busy_poll.note_served(false);
        }
    }

    /// Gives each socket owed a turn before this call one more.
    pub(super) fn resume_udp(&mut self) {
        let (Some(udp), Some(counts)) = (&mut self.udp, &mut self.stats.udp) else {
            return;
        };
        let echoed = counts.datagrams_out;
        for _ in 0..udp.owed.len() {
            let Some(index) = udp.owed.pop_front() else {
                break;
            };
            udp.is_owed[index] = false;
            if udp.turn(index, counts, self.config.allow.as_ref(), self.turn_started) {
                udp.owe(index);
            }
        }
        if counts.datagrams_out > echoed {
            self.busy_poll.note_served(false);
        }
    }

    /// Logs the drops held since the last report (`-v`), at most once per
    /// [`DROP_REPORT_INTERVAL`], or at once when `now` is `None` (the end).
    pub(super) fn report_udp_drops(&mut self, now: Option<Instant>) {
        let Some(udp) = &mut self.udp else {
            return;
        };
        if udp.held.is_empty() {
            return;
        }
        if let (Some(now), Some(last)) = (now, udp.last_report) {
            if now.duration_since(last) < DROP_REPORT_INTERVAL {
                return;
            }
        }
        let held = std::mem::take(&mut udp.held);
        let total: u64 = held.0.iter().sum();
        let last = udp
            .last_held_from
            .map_or_else(String::new, |from| format!("; the last from {from}"));
        debug!(
            target: "UDP",
            dropped = total;
            "{total} datagram(s) dropped since the last report: {}{last}",
            held.describe()
        );
        udp.last_report = now.or(udp.last_report);
    }
}
