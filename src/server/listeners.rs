//! The listening sockets: which ones `--port`, `--bind` and `--listen`
//! ask for, opening them all or none, and the table the loop accepts from
//! (one token per listener, each with its service mode).

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use mio::net::TcpListener;
use mio::{Interest, Registry};

use super::token;
use crate::config::Config;
use crate::logic::port_list::format_port_list;
use crate::logic::service::Mode;
use crate::os::listener::{self, BindError};

/// One listening socket to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Where.
    pub addr: SocketAddr,
    /// What its connections do with their bytes.
    pub mode: Mode,
}

/// The listeners a configuration asks for, in the order the banner shows
/// them; and why the default `::` became `0.0.0.0`, if it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Every socket to open.
    pub listeners: Vec<Planned>,
    /// Set when the default address fell back to IPv4 only.
    pub ipv4_only_because: Option<&'static str>,
}

/// The listeners for `config`; `dual_stack` says whether this host can
/// listen on `::` for both families (see
/// [`listener::dual_stack_available`]).
pub fn plan(config: &Config, dual_stack: bool) -> Plan {
    let mut base = config.listen;
    let mut ipv4_only_because = None;
    if config.dual_stack_default && !dual_stack {
        base = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), base.port());
        ipv4_only_because = Some("this host has no IPv6");
    }
    // set_port keeps a link-local --bind's scope.
    let mut listeners: Vec<Planned> = config
        .ports
        .iter()
        .map(|&port| {
            let mut addr = base;
            addr.set_port(port);
            Planned {
                addr,
                mode: config.mode,
            }
        })
        .collect();
    for group in &config.listen_more {
        let mode = group.mode.unwrap_or(config.mode);
        for &port in &group.ports {
            listeners.push(Planned {
                addr: SocketAddr::new(group.ip, port),
                mode,
            });
        }
    }
    Plan {
        listeners,
        ipv4_only_because,
    }
}

/// Opens every planned listener, or none: the first that fails is the
/// error (naming its address), and those already open are closed.
pub fn open_all(
    plan: &Plan,
    backlog: u32,
) -> Result<Vec<(std::net::TcpListener, Mode)>, BindError> {
    plan.listeners
        .iter()
        .map(|planned| listener::bind(planned.addr, backlog).map(|socket| (socket, planned.mode)))
        .collect()
}

/// One listener of the table.
#[derive(Debug)]
struct Entry {
    /// `None` once stopping.
    socket: Option<TcpListener>,
    /// The address bound (the real port when 0 was asked).
    addr: SocketAddr,
    mode: Mode,
    /// Connections it accepted that were served.
    accepted: u64,
    /// Its clients speak TLS.
    tls: bool,
    /// The `--tls-port` listener: its own banner line says where it is.
    beside: bool,
}

/// The listeners the loop accepts echo clients from.
#[derive(Debug)]
pub struct Listeners {
    entries: Vec<Entry>,
}

impl Listeners {
    /// Takes over the bound sockets and registers each under its token.
    pub fn register(
        bound: Vec<(std::net::TcpListener, Mode)>,
        registry: &Registry,
    ) -> io::Result<Self> {
        let mut entries = Vec::with_capacity(bound.len());
        for (index, (socket, mode)) in bound.into_iter().enumerate() {
            socket.set_nonblocking(true)?;
            let mut socket = TcpListener::from_std(socket);
            let addr = socket.local_addr()?;
            registry.register(&mut socket, token::listener(index), Interest::READABLE)?;
            entries.push(Entry {
                socket: Some(socket),
                addr,
                mode,
                accepted: 0,
                tls: false,
                beside: false,
            });
        }
        Ok(Self { entries })
    }

    /// Adds a TLS listener beside the others (`--tls-port`), under the
    /// next token; returns its address.
    pub fn add_tls(
        &mut self,
        socket: std::net::TcpListener,
        mode: Mode,
        registry: &Registry,
    ) -> io::Result<SocketAddr> {
        socket.set_nonblocking(true)?;
        let mut socket = TcpListener::from_std(socket);
        let addr = socket.local_addr()?;
        let index = self.entries.len();
        registry.register(&mut socket, token::listener(index), Interest::READABLE)?;
        self.entries.push(Entry {
            socket: Some(socket),
            addr,
            mode,
            accepted: 0,
            tls: true,
            beside: true,
        });
        Ok(addr)
    }

    /// Makes every listener a TLS one (TLS without `--tls-port`).
    pub fn all_tls(&mut self) {
        for entry in &mut self.entries {
            entry.tls = true;
        }
    }

    /// Whether the clients of listener `index` speak TLS.
    pub fn is_tls(&self, index: usize) -> bool {
        self.entries.get(index).is_some_and(|e| e.tls)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none (never, once the server runs).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The socket of listener `index`, while not stopping.
    pub fn socket(&self, index: usize) -> Option<&TcpListener> {
        self.entries.get(index).and_then(|e| e.socket.as_ref())
    }

    /// The address listener `index` is bound to.
    pub fn addr(&self, index: usize) -> Option<SocketAddr> {
        self.entries.get(index).map(|e| e.addr)
    }

    /// The mode of listener `index`'s connections.
    pub fn mode(&self, index: usize) -> Option<Mode> {
        self.entries.get(index).map(|e| e.mode)
    }

    /// Whether any listener serves `mode`.
    pub fn serve(&self, mode: Mode) -> bool {
        self.entries.iter().any(|e| e.mode == mode)
    }

    /// Counts a connection listener `index` accepted and served.
    pub fn note_accepted(&mut self, index: usize) {
        if let Some(entry) = self.entries.get_mut(index) {
            entry.accepted += 1;
        }
    }

    /// Connections served per local port, when there is more than one
    /// listener (one port: the server-wide counter says it). At most one
    /// figure per listener, so the label's values are bounded by the
    /// listener bound; the same port on two addresses is one figure.
    pub fn accepted_by_port(&self) -> Vec<(u16, u64)> {
        if self.entries.len() < 2 {
            return Vec::new();
        }
        let mut ports: Vec<(u16, u64)> = self
            .entries
            .iter()
            .map(|e| (e.addr.port(), e.accepted))
            .collect();
        ports.sort_unstable_by_key(|&(port, _)| port);
        ports.dedup_by(|later, first| {
            let same = later.0 == first.0;
            if same {
                first.1 += later.1;
            }
            same
        });
        ports
    }

    /// Closes every listener: new connects fail at once.
    pub fn close_all(&mut self, registry: &Registry) {
        for entry in &mut self.entries {
            if let Some(mut socket) = entry.socket.take() {
                let _ = registry.deregister(&mut socket);
            }
        }
    }

    /// What the banner says after `Listening on `: the one address as it
    /// always was (with its mode if it is not `--mode`'s, `default`), or
    /// each address with its ports and mode (`0.0.0.0:7000-7010,8443
    /// (echo), 127.0.0.1:9 (discard)`). An IPv6 wildcard says that it
    /// takes IPv4 clients too.
    pub fn banner(&self, default: Mode) -> String {
        let both = |addr: &SocketAddr| addr.is_ipv6() && addr.ip().is_unspecified();
        let entries: Vec<&Entry> = self.entries.iter().filter(|e| !e.beside).collect();
        if let [only] = &entries[..] {
            let mut notes = Vec::new();
            if only.mode != default {
                notes.push(only.mode.name());
            }
            if both(&only.addr) {
                notes.push("IPv6 and IPv4");
            }
            if notes.is_empty() {
                return only.addr.to_string();
            }
            return format!("{} ({})", only.addr, notes.join(", "));
        }
        // Consecutive listeners on one address with one mode are one group.
        let mut groups: Vec<(SocketAddr, Mode, Vec<u16>)> = Vec::new();
        for entry in entries {
            match groups.last_mut() {
                Some((addr, mode, ports))
                    if addr.ip() == entry.addr.ip() && *mode == entry.mode =>
                {
                    ports.push(entry.addr.port());
                }
                _ => groups.push((entry.addr, entry.mode, vec![entry.addr.port()])),
            }
        }
        let shown: Vec<String> = groups
            .into_iter()
            .map(|(addr, mode, mut ports)| {
                ports.sort_unstable();
                let host = addr.to_string();
                let host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
                let extra = if both(&addr) { ", IPv6 and IPv4" } else { "" };
                format!(
                    "{host}:{} ({}{extra})",
                    format_port_list(&ports),
                    mode.name()
                )
            })
            .collect();
        shown.join(", ")
    }
}

impl super::Server {
    /// The CONNECT line of a server with several listeners (it names the
    /// local port) or behind a proxy (it names the proxy).
    pub(super) fn log_connect(
        &self,
        peer: SocketAddr,
        mode: Mode,
        listener: usize,
        via: Option<SocketAddr>,
    ) {
        let tls = self.listeners.is_tls(listener);
        let mut parts = Vec::with_capacity(4);
        if tls {
            parts.push("TLS".to_string());
        }
        if let Some(via) = via {
            parts.push(format!("via {via}"));
        }
        let port = self.listeners.addr(listener).map(|a| a.port());
        if let (true, Some(port)) = (self.listeners.len() > 1, port) {
            parts.push(format!("port {port}"));
        }
        if mode != Mode::Echo || self.listeners.len() > 1 || tls {
            parts.push(format!("mode {}", mode.name()));
        }
        log::info!(
            target: "CONNECT",
            peer:% = peer,
            mode = mode.name(),
            port = port,
            tls = tls,
            via = via.map(|v| v.to_string());
            "{peer} ({})",
            parts.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        Config::from_args(args)
    }

    // The default address is :: where the host has IPv6 and 0.0.0.0, with
    // the reason, where it has not; an address given is kept either way.
    #[test]
    fn default_address_falls_back_to_ipv4_only() {
        let dual = plan(&config(&["-p", "7"]), true);
        assert_eq!(dual.listeners[0].addr, "[::]:7".parse().unwrap());
        assert_eq!(dual.ipv4_only_because, None);
        let v4 = plan(&config(&["-p", "7"]), false);
        assert_eq!(v4.listeners[0].addr, "0.0.0.0:7".parse().unwrap());
        assert!(v4.ipv4_only_because.is_some());
        let given = plan(&config(&["-p", "7", "--bind", "::"]), false);
        assert_eq!(given.listeners[0].addr, "[::]:7".parse().unwrap());
        assert_eq!(given.ipv4_only_because, None);
    }

    // --port's ports come first with --mode's mode, then each --listen's
    // with its own; a link-local --bind keeps its scope on every port.
    #[test]
    fn plan_lists_every_port_with_its_mode() {
        let p = plan(
            &config(&[
                "--bind",
                "127.0.0.1",
                "-p",
                "8,7",
                "--mode",
                "upper",
                "--listen",
                "[::1]:9/discard",
                "--listen",
                "127.0.0.2:10",
            ]),
            true,
        );
        let got: Vec<(String, Mode)> = p
            .listeners
            .iter()
            .map(|l| (l.addr.to_string(), l.mode))
            .collect();
        assert_eq!(
            got,
            [
                ("127.0.0.1:7".to_string(), Mode::Upper),
                ("127.0.0.1:8".to_string(), Mode::Upper),
                ("[::1]:9".to_string(), Mode::Discard),
                ("127.0.0.2:10".to_string(), Mode::Upper),
            ]
        );
        let scoped = plan(&config(&["--bind", "fe80::1%lo", "-p", "7,8"]), true);
        for l in &scoped.listeners {
            let SocketAddr::V6(v6) = l.addr else { panic!() };
            assert_ne!(v6.scope_id(), 0, "{}", l.addr);
        }
    }
}
