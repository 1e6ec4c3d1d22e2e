//! Opening the listening socket, and saying clearly why it failed.

use std::fmt;
use std::io::{self, ErrorKind};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// An address a TCP server can listen on, as `--bind` and `--metrics`
/// take it: an IP address, with the interface for a link-local IPv6 one
/// (`fe80::1%eth0` or `fe80::1%2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenIp {
    /// The address.
    pub ip: IpAddr,
    /// The interface index of a link-local IPv6 address (`sin6_scope_id`);
    /// 0 for every other address.
    pub scope_id: u32,
}

impl ListenIp {
    /// The socket address to bind, scope included.
    pub fn with_port(self, port: u16) -> SocketAddr {
        match self.ip {
            IpAddr::V6(ip) => SocketAddr::V6(SocketAddrV6::new(ip, port, 0, self.scope_id)),
            IpAddr::V4(_) => SocketAddr::new(self.ip, port),
        }
    }
}

/// What to suggest instead of an address nothing can connect to.
const USE_INSTEAD: &str =
    "use 0.0.0.0 (all interfaces), 127.0.0.1, or an address of this host listed by `ip addr`";

/// Parses `IP` or `IPv6%INTERFACE` (a name, or an index as in `fe80::1%2`),
/// refusing what TCP cannot listen on: a multicast address, the broadcast
/// address (a connection always has one peer), a link-local IPv6 address
/// without its interface (the kernel refuses it) and an interface on any
/// other address. The interface name is looked up in this host's network
/// namespace; an unknown one is an error here, before anything starts.
pub fn parse_listen_ip(text: &str) -> Result<ListenIp, String> {
    let text = text.trim();
    let (ip_text, zone) = match text.split_once('%') {
        Some((ip, zone)) => (ip, Some(zone)),
        None => (text, None),
    };
    let ip: IpAddr = ip_text
        .parse()
        .map_err(|_| "expected an IP address such as 0.0.0.0, 127.0.0.1, :: or ::1".to_string())?;
    check_listenable(ip)?;
    let link_local = matches!(ip, IpAddr::V6(v6) if is_link_local(v6));
    let scope_id = match zone {
        None if link_local => {
            return Err(format!(
                "{ip} is a link-local address: name its interface too, as in {ip}%eth0"
            ))
        }
        None => 0,
        Some(zone) if link_local => interface_index(zone)?,
        Some(_) => {
            return Err(format!(
                "an interface (%…) goes only with a link-local IPv6 address (fe80::/10), not {ip}"
            ))
        }
    };
    Ok(ListenIp { ip, scope_id })
}

/// Refuses the addresses no client can connect to over TCP, whatever the
/// host: multicast (224.0.0.0/4, ff00::/8, and IPv4 ones mapped into IPv6)
/// and the limited broadcast 255.255.255.255. (A subnet's directed
/// broadcast depends on the interface's netmask, which a command line does
/// not know.)
pub fn check_listenable(ip: IpAddr) -> Result<(), String> {
    let canonical = ip.to_canonical();
    if canonical.is_multicast() {
        return Err(format!(
            "{ip} is a multicast address, which TCP cannot listen on; {USE_INSTEAD}"
        ));
    }
    if matches!(canonical, IpAddr::V4(v4) if v4.is_broadcast()) {
        return Err(format!(
            "{ip} is the broadcast address, which TCP cannot listen on; {USE_INSTEAD}"
        ));
    }
    Ok(())
}

/// fe80::/10 (`Ipv6Addr::is_unicast_link_local` needs Rust 1.84).
fn is_link_local(ip: Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// The index of the interface named (or numbered) `zone`, which must exist.
fn interface_index(zone: &str) -> Result<u32, String> {
    use rustix::net::{netdevice, socket_with, AddressFamily, SocketFlags, SocketType};

    let unknown =
        |what: String| format!("no network interface {what} on this host (see `ip link`)");
    if zone.is_empty() {
        return Err(
            "empty interface after '%'; expected a name or index, as in fe80::1%eth0".into(),
        );
    }
    // The lookups are ioctls on a socket; any socket will do.
    let socket = socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| format!("cannot look up interface '{zone}': {e}"))?;
    if zone.bytes().all(|b| b.is_ascii_digit()) {
        let index = zone
            .parse::<u32>()
            .ok()
            .filter(|&index| index != 0)
            .ok_or_else(|| unknown(format!("with index {zone}")))?;
        netdevice::index_to_name_inlined(&socket, index)
            .map_err(|_| unknown(format!("with index {index}")))?;
        Ok(index)
    } else {
        netdevice::name_to_index(&socket, zone).map_err(|_| unknown(format!("named '{zone}'")))
    }
}

/// Why the server could not start listening, with advice for the user.
#[derive(Debug)]
pub struct BindError {
    addr: SocketAddr,
    error: io::Error,
    /// The option the advice tells the user to change.
    option: &'static str,
}

impl BindError {
    /// Names `option` (say `--metrics`) in the advice instead of `--port`.
    pub fn for_option(mut self, option: &'static str) -> Self {
        self.option = option;
        self
    }

    /// What the system said.
    pub fn kind(&self) -> ErrorKind {
        self.error.kind()
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr;
        let ip = addr.ip();
        write!(f, "cannot listen on {addr}: ")?;
        match self.error.kind() {
            ErrorKind::AddrInUse => write!(
                f,
                "address already in use; another program listens on port {} \
                 (find it with `ss -ltnp`), or choose another port with {}",
                addr.port(),
                self.option
            ),
            ErrorKind::PermissionDenied => write!(
                f,
                "permission denied; ports below 1024 need root or CAP_NET_BIND_SERVICE, \
                 choose a port of 1024 or above with {}",
                self.option
            ),
            ErrorKind::AddrNotAvailable => write!(
                f,
                "address not available; {ip} is not an address of this host, \
                 use 0.0.0.0 (all interfaces) or one listed by `ip addr`"
            ),
            _ => write!(f, "{}", self.error),
        }
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Binds a non-blocking listener on `addr` with a listen queue of `backlog`.
///
/// SO_REUSEADDR lets a restarted server bind while old connections sit in
/// TIME_WAIT. An IPv6 wildcard (`::`) also accepts IPv4 clients, whatever
/// the system default for IPV6_V6ONLY is, so `--bind ::` means "everything".
pub fn bind(addr: SocketAddr, backlog: u32) -> Result<TcpListener, BindError> {
    open(addr, backlog).map_err(|error| BindError {
        addr,
        error,
        option: "--port",
    })
}

/// Whether this host can open an IPv6 socket that also takes IPv4
/// clients (no IPv6 at all: a kernel without it, or one booted with
/// `ipv6.disable=1`).
pub fn dual_stack_available() -> bool {
    Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))
        .and_then(|socket| socket.set_only_v6(false))
        .is_ok()
}

fn open(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // The CLI caps the backlog at 65535, so it always fits an i32.
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each common failure gets its own advice, naming the address.
    #[test]
    fn errors_explain_what_to_do() {
        let addr: SocketAddr = "192.0.2.1:7878".parse().unwrap();
        let text = |kind: ErrorKind| {
            BindError {
                addr,
                error: kind.into(),
                option: "--port",
            }
            .to_string()
        };
        assert!(text(ErrorKind::AddrInUse).contains("address already in use"));
        assert!(text(ErrorKind::AddrInUse).contains("--port"));
        assert!(text(ErrorKind::PermissionDenied).contains("below 1024"));
        assert!(
            text(ErrorKind::AddrNotAvailable).contains("192.0.2.1 is not an address of this host")
        );
        assert!(text(ErrorKind::Other).starts_with("cannot listen on 192.0.2.1:7878: "));
    }

    // Multicast and broadcast addresses are refused with the reason, in
    // every spelling; ordinary addresses pass.
    #[test]
    fn multicast_and_broadcast_are_refused() {
        for (text, why) in [
            ("224.0.0.1", "multicast"),
            ("239.255.255.250", "multicast"),
            ("ff02::1", "multicast"),
            ("ff05::1%1", "multicast"),
            ("::ffff:224.0.0.1", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("::ffff:255.255.255.255", "broadcast"),
        ] {
            let error = parse_listen_ip(text).unwrap_err();
            assert!(error.contains(why), "{text}: {error}");
            assert!(error.contains("0.0.0.0"), "{text}: {error}");
        }
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "::",
            "::1",
            "192.0.2.255",
            "223.255.255.255",
        ] {
            let listen = parse_listen_ip(text).unwrap();
            assert_eq!((listen.ip, listen.scope_id), (text.parse().unwrap(), 0));
        }
    }

    // A link-local address takes its interface by name or index (loopback
    // exists in every network namespace, as index 1 in a fresh one), and
    // the scope reaches the socket address; the mistakes are explained.
    #[test]
    fn link_local_needs_an_existing_interface() {
        let lo = parse_listen_ip("fe80::1%lo").unwrap();
        assert_ne!(lo.scope_id, 0);
        assert_eq!(parse_listen_ip(&format!("fe80::1%{}", lo.scope_id)), Ok(lo));
        assert_eq!(
            lo.with_port(80),
            SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                80,
                0,
                lo.scope_id
            ))
        );
        let error = |text: &str| parse_listen_ip(text).unwrap_err();
        assert!(error("fe80::1%no-such-if0").contains("no network interface named 'no-such-if0'"));
        assert!(error("fe80::1%4000000000").contains("no network interface with index 4000000000"));
        assert!(error("fe80::1%0").contains("index 0"));
        assert!(error("fe80::1%99999999999").contains("no network interface"));
        assert!(error("fe80::1%").contains("empty interface"));
        assert!(error("fe80::1").contains("fe80::1%eth0"));
        assert!(error("::1%lo").contains("only with a link-local"));
        assert!(error("127.0.0.1%lo").contains("only with a link-local"));
        assert!(error("localhost").contains("expected an IP address"));
        assert!(error("fe80::1%aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
            .contains("no network interface"));
    }

    // Port 0 binds an ephemeral port on loopback, and a second bind of the
    // same port fails as "in use".
    #[test]
    fn binds_and_detects_port_in_use() {
        let first = bind("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let addr = first.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let error = bind(addr, 16).unwrap_err();
        assert_eq!(error.error.kind(), ErrorKind::AddrInUse);
    }
}
