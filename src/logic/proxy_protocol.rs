//! The PROXY protocol a load balancer sends before the client's bytes
//! (HAProxy's specification, versions 1 and 2), as an incremental parser:
//! fed whatever each read returned, it answers the same as if it had been
//! fed the whole header at once.
//!
//! Memory is fixed (108 bytes) whatever the header claims: version 1 is at
//! most 107 bytes, and of version 2 only the 16 fixed bytes and an IP
//! address block (at most 36) are kept; TLVs and UNIX addresses are
//! skipped as they pass, their lengths checked against the header's own.
//! A v2 length that promises more than is sent leaves the parser wanting
//! more; the caller's deadline ends that wait.
//!
//! The parser never consumes past the header: of all the bytes fed, the
//! first `header_len` are the header and are never to be echoed; the rest
//! are the client's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest version 1 header, CRLF included.
pub const V1_MAX_LEN: usize = 107;

/// Version 2's 12-byte signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

const V1_PREFIX: &[u8] = b"PROXY ";
const V2_FIXED: usize = 16;
/// Of the address blocks, the largest kept: two IPv6 addresses and ports.
const V2_INET6_LEN: usize = 36;
const V2_INET_LEN: usize = 12;
const V2_UNIX_LEN: usize = 216;
const TLV_HEAD: usize = 3;

/// What the bytes fed so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// No decision yet: the header is not complete.
    NeedMore,
    /// A proxied connection from `source` to `dest`.
    Done {
        /// The client, as the load balancer saw it.
        source: SocketAddr,
        /// The address the client connected to.
        dest: SocketAddr,
        /// Bytes of the stream that were the header.
        header_len: usize,
    },
    /// Serve the connection as coming from its direct peer: a v2 `LOCAL`
    /// command (a load balancer's health check), v1 `UNKNOWN`, or a v2
    /// header whose family carries no IP address (`AF_UNSPEC`, `AF_UNIX`).
    Local {
        /// Bytes of the stream that were the header.
        header_len: usize,
    },
    /// Not a valid header; the connection should be closed, with this reason.
    Invalid(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first bytes, until they are one signature or neither.
    Detect,
    /// A version 1 line, up to its CRLF.
    V1,
    /// Version 2's fixed 16 bytes.
    V2Fixed,
    /// An IPv4 or IPv6 address block, kept in `head`.
    V2Addr,
    /// A TLV's type and length.
    TlvHead,
    /// Bytes passed over; then TLVs, or the end of the header.
    Skip { left: usize, then_tlvs: bool },
}

/// One connection's header parser.
#[derive(Debug, Clone)]
pub struct ProxyParser {
    head: [u8; V1_MAX_LEN + 1],
    /// Bytes of `head` in use (in `TlvHead`, the TLV head's bytes so far).
    kept: usize,
    /// Header bytes consumed.
    fed: usize,
    /// A v2 header's length, fixed part included.
    total: usize,
    state: State,
    /// What a complete v2 header means, known once its family is read.
    on_end: Option<Parsed>,
    tlv: [u8; TLV_HEAD],
    result: Option<Parsed>,
}

impl Default for ProxyParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyParser {
    /// A parser at the start of a connection.
    pub fn new() -> Self {
        Self {
            head: [0; V1_MAX_LEN + 1],
            kept: 0,
            fed: 0,
            total: 0,
            state: State::Detect,
            on_end: None,
            tlv: [0; TLV_HEAD],
            result: None,
        }
    }

    /// Feeds the next bytes read. Once the answer is not
    /// [`Parsed::NeedMore`] it is final, and later calls repeat it without
    /// looking at their input.
    pub fn feed(&mut self, input: &[u8]) -> Parsed {
        let mut rest = input;
        while self.result.is_none() && !rest.is_empty() {
            if let State::Skip { left, then_tlvs } = self.state {
                let n = left.min(rest.len());
                rest = &rest[n..];
                self.fed += n;
                self.state = State::Skip {
                    left: left - n,
                    then_tlvs,
                };
                if left == n {
                    self.after_skip(then_tlvs);
                }
                continue;
            }
            let byte = rest[0];
            rest = &rest[1..];
            self.fed += 1;
            self.step(byte);
        }
        self.result.clone().unwrap_or(Parsed::NeedMore)
    }

    fn fail(&mut self, reason: &'static str) {
        self.result = Some(Parsed::Invalid(reason));
    }

    fn step(&mut self, byte: u8) {
        match self.state {
            State::Detect => self.detect(byte),
            State::V1 => self.v1(byte),
            State::V2Fixed => self.v2_fixed(byte),
            State::V2Addr => {
                self.head[self.kept] = byte;
                self.kept += 1;
                if self.kept == V2_FIXED + self.address_len() {
                    self.on_end = Some(self.addresses());
                    self.tlvs_or_end();
                }
            }
            State::TlvHead => {
                self.tlv[self.kept] = byte;
                self.kept += 1;
                if self.kept == TLV_HEAD {
                    let len = usize::from(u16::from_be_bytes([self.tlv[1], self.tlv[2]]));
                    if self.fed + len > self.total {
                        return self.fail("a v2 TLV runs past the header's length");
                    }
                    self.state = State::Skip {
                        left: len,
                        then_tlvs: true,
                    };
                    if len == 0 {
                        self.after_skip(true);
                    }
                }
            }
            State::Skip { .. } => unreachable!("skipped in bulk by feed"),
        }
    }

    fn detect(&mut self, byte: u8) {
        self.head[self.kept] = byte;
        self.kept += 1;
        let seen = &self.head[..self.kept];
        if V1_PREFIX.starts_with(seen) {
            if self.kept == V1_PREFIX.len() {
                self.state = State::V1;
            }
        } else if V2_SIGNATURE.starts_with(seen) {
            if self.kept == V2_SIGNATURE.len() {
                self.state = State::V2Fixed;
            }
        } else {
            self.fail("the connection did not start with a PROXY protocol header");
        }
    }

    fn v1(&mut self, byte: u8) {
        let after_cr = self.head[self.kept - 1] == b'\r';
        self.head[self.kept] = byte;
        self.kept += 1;
        match byte {
            b'\n' if after_cr => {
                let line = &self.head[V1_PREFIX.len()..self.kept - 2];
                let parsed = parse_v1(line, self.kept);
                self.result = Some(parsed);
            }
            _ if after_cr => self.fail("a v1 header has a CR not followed by LF"),
            b'\n' => self.fail("a v1 header line ends in LF without CR"),
            b'\r' | b' '..=b'~' if self.kept < V1_MAX_LEN => {}
            b'\r' | b' '..=b'~' => self.fail("a v1 header is longer than 107 bytes"),
            _ => self.fail("a v1 header holds a byte that is not printable ASCII"),
        }
    }

    fn v2_fixed(&mut self, byte: u8) {
        self.head[self.kept] = byte;
        self.kept += 1;
        match self.kept {
            13 if byte >> 4 != 2 => self.fail("unsupported PROXY protocol version (v2 expected)"),
            13 if byte & 0x0f > 1 => self.fail("unknown v2 command (LOCAL or PROXY expected)"),
            14 if self.is_proxy() && byte >> 4 > 3 => self.fail("unknown v2 address family"),
            14 if self.is_proxy() && byte & 0x0f > 2 => self.fail("unknown v2 transport protocol"),
            V2_FIXED => {
                let len = usize::from(u16::from_be_bytes([self.head[14], self.head[15]]));
                self.total = V2_FIXED + len;
                self.begin_v2_body(len);
            }
            _ => {}
        }
    }

    fn is_proxy(&self) -> bool {
        self.head[12] & 0x0f == 1
    }

    fn family(&self) -> u8 {
        self.head[13] >> 4
    }

    /// The kept address block's length: IPv4 or IPv6, else none.
    fn address_len(&self) -> usize {
        match self.family() {
            1 => V2_INET_LEN,
            2 => V2_INET6_LEN,
            _ => 0,
        }
    }

    fn begin_v2_body(&mut self, len: usize) {
        let local = Parsed::Local {
            header_len: self.total,
        };
        // LOCAL, and PROXY over AF_UNSPEC: the address block is ignored
        // whatever it holds (the specification's rule), TLVs included.
        if !self.is_proxy() || self.family() == 0 {
            self.on_end = Some(local);
            self.state = State::Skip {
                left: len,
                then_tlvs: false,
            };
            if len == 0 {
                self.after_skip(false);
            }
            return;
        }
        let block = match self.family() {
            3 => V2_UNIX_LEN,
            _ => self.address_len(),
        };
        if len < block {
            return self.fail("a v2 header's length is shorter than its address block");
        }
        if self.family() == 3 {
            self.on_end = Some(local);
            self.state = State::Skip {
                left: block,
                then_tlvs: true,
            };
        } else {
            self.state = State::V2Addr;
        }
    }

    fn after_skip(&mut self, then_tlvs: bool) {
        if then_tlvs {
            self.tlvs_or_end();
        } else {
            self.result = self.on_end.take();
        }
    }

    fn tlvs_or_end(&mut self) {
        let left = self.total - self.fed;
        if left == 0 {
            self.result = self.on_end.take();
        } else if left < TLV_HEAD {
            self.fail("a v2 TLV runs past the header's length");
        } else {
            self.kept = 0;
            self.state = State::TlvHead;
        }
    }

    /// The kept address block as source and destination.
    fn addresses(&self) -> Parsed {
        let block = &self.head[V2_FIXED..];
        let port = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
        let (source, dest): (IpAddr, IpAddr) = if self.family() == 1 {
            let ip = |at: usize| {
                let b: [u8; 4] = block[at..at + 4].try_into().unwrap_or([0; 4]);
                IpAddr::V4(Ipv4Addr::from(b))
            };
            (ip(0), ip(4))
        } else {
            let ip = |at: usize| {
                let b: [u8; 16] = block[at..at + 16].try_into().unwrap_or([0; 16]);
                IpAddr::V6(Ipv6Addr::from(b))
            };
            (ip(0), ip(16))
        };
        let ports = if self.family() == 1 { 8 } else { 32 };
        Parsed::Done {
            source: SocketAddr::new(source, port(ports)),
            dest: SocketAddr::new(dest, port(ports + 2)),
            header_len: self.total,
        }
    }
}

/// A v1 line after `PROXY ` and before its CRLF.
fn parse_v1(line: &[u8], header_len: usize) -> Parsed {
    // Printable ASCII only reaches here.
    let line = std::str::from_utf8(line).unwrap_or("");
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Parsed::Local { header_len };
    }
    let fields: Vec<&str> = line.split(' ').collect();
    let [proto, src, dst, sport, dport] = fields[..] else {
        return Parsed::Invalid(
            "a v1 header needs TCP4|TCP6, two addresses and two ports, single-spaced",
        );
    };
    let (source, dest) = match proto {
        "TCP4" => match (src.parse::<Ipv4Addr>(), dst.parse::<Ipv4Addr>()) {
            (Ok(s), Ok(d)) => (IpAddr::V4(s), IpAddr::V4(d)),
            _ => return Parsed::Invalid("a v1 TCP4 header has an address that is not IPv4"),
        },
        "TCP6" => match (src.parse::<Ipv6Addr>(), dst.parse::<Ipv6Addr>()) {
            (Ok(s), Ok(d)) => (IpAddr::V6(s), IpAddr::V6(d)),
            _ => return Parsed::Invalid("a v1 TCP6 header has an address that is not IPv6"),
        },
        _ => return Parsed::Invalid("a v1 header names a protocol other than TCP4, TCP6, UNKNOWN"),
    };
    match (v1_port(sport), v1_port(dport)) {
        (Some(sport), Some(dport)) => Parsed::Done {
            source: SocketAddr::new(source, sport),
            dest: SocketAddr::new(dest, dport),
            header_len,
        },
        _ => Parsed::Invalid("a v1 header has a port that is not 0-65535 without leading zeros"),
    }
}

fn v1_port(text: &str) -> Option<u16> {
    let canonical = !text.is_empty()
        && text.len() <= 5
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Parsed {
        ProxyParser::new().feed(bytes)
    }

    fn bytewise(bytes: &[u8]) -> Parsed {
        let mut p = ProxyParser::new();
        let mut last = Parsed::NeedMore;
        for b in bytes {
            last = p.feed(std::slice::from_ref(b));
        }
        last
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn inet_block() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 1, 198, 51, 100, 7];
        b.extend_from_slice(&51234u16.to_be_bytes());
        b.extend_from_slice(&7u16.to_be_bytes());
        b
    }

    fn done(src: &str, dst: &str, header_len: usize) -> Parsed {
        Parsed::Done {
            source: src.parse().unwrap(),
            dest: dst.parse().unwrap(),
            header_len,
        }
    }

    #[test]
    fn v1_tcp4_and_tcp6_with_data_after() {
        let header = b"PROXY TCP4 192.0.2.1 198.51.100.7 51234 7\r\n";
        let mut stream = header.to_vec();
        stream.extend_from_slice(b"hello");
        let want = done("192.0.2.1:51234", "198.51.100.7:7", header.len());
        assert_eq!(whole(&stream), want);
        assert_eq!(bytewise(&stream), want);
        // A header with no data after it is complete on its own.
        assert_eq!(whole(header), want);
        let six = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
        assert_eq!(
            whole(six),
            done("[2001:db8::1]:65535", "[::1]:0", six.len())
        );
        assert_eq!(
            whole(b"PROXY UNKNOWN\r\n"),
            Parsed::Local { header_len: 15 }
        );
        let unknown = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nxyz";
        assert_eq!(whole(unknown), Parsed::Local { header_len: 35 });
    }

    #[test]
    fn v1_incomplete_waits() {
        for cut in [0, 1, 5, 6, 20] {
            let header = b"PROXY TCP4 192.0.2.1 198.51.100.7 51234 7\r\n";
            assert_eq!(whole(&header[..cut]), Parsed::NeedMore, "{cut}");
        }
        assert_eq!(whole(b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), Parsed::NeedMore);
    }

    #[test]
    fn v1_bad_headers_say_why() {
        let longest = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 16));
        assert_eq!(longest.len(), V1_MAX_LEN);
        assert_eq!(whole(longest.as_bytes()), Parsed::Local { header_len: 107 });
        let over = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX_LEN - 15));
        for (bytes, needle) in [
            (over.as_bytes(), "longer than 107"),
            (b"GET / HTTP/1.1\r\n", "did not start"),
            (b"PROXY\r\n", "did not start"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rx", "CR not followed"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "two ports"),
            (b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", "single-spaced"),
            (b"PROXY TCP4 ::1 5.6.7.8 1 2\r\n", "not IPv4"),
            (b"PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "not IPv6"),
            (b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", "other than TCP4"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "port"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "leading zeros"),
            (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\x00\r\n", "printable"),
        ] {
            match whole(bytes) {
                Parsed::Invalid(reason) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("{}: {other:?}", String::from_utf8_lossy(bytes)),
            }
            assert_eq!(bytewise(bytes), whole(bytes));
        }
    }

    #[test]
    fn v2_inet_inet6_with_tlvs_and_data() {
        let mut h = v2(1, 0x11, &inet_block());
        let want = done("192.0.2.1:51234", "198.51.100.7:7", 28);
        assert_eq!(whole(&h), want);
        h.extend_from_slice(b"\r\n\r\nclient bytes");
        assert_eq!(whole(&h), want);
        assert_eq!(bytewise(&h), want);

        let mut body = inet_block();
        body.extend_from_slice(&[0x04, 0, 0]); // NOOP, empty
        body.extend_from_slice(&[0x01, 0, 2, b'h', b'2']); // ALPN
        let h = v2(1, 0x12, &body);
        assert_eq!(whole(&h), done("192.0.2.1:51234", "198.51.100.7:7", 36));

        let mut six = Vec::new();
        six.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        six.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        six.extend_from_slice(&[0, 80, 0, 7]);
        let h = v2(1, 0x21, &six);
        assert_eq!(whole(&h), done("[2001:db8::1]:80", "[::1]:7", 52));
    }

    #[test]
    fn v2_local_unspec_and_unix_use_the_direct_peer() {
        // A health check: LOCAL, whatever its family says.
        assert_eq!(whole(&v2(0, 0x00, &[])), Parsed::Local { header_len: 16 });
        assert_eq!(
            whole(&v2(0, 0xff, &[1, 2, 3])),
            Parsed::Local { header_len: 19 }
        );
        assert_eq!(
            whole(&v2(1, 0x00, &[9; 5])),
            Parsed::Local { header_len: 21 }
        );
        let h = v2(1, 0x31, &[0; V2_UNIX_LEN]);
        assert_eq!(whole(&h), Parsed::Local { header_len: 232 });
        assert_eq!(bytewise(&h), Parsed::Local { header_len: 232 });
    }

    #[test]
    fn v2_lengths_that_lie_and_unknown_fields() {
        // Longer than sent: waits for the rest (the caller's deadline ends it).
        let mut h = v2(1, 0x11, &inet_block());
        h[15] += 10;
        assert_eq!(whole(&h), Parsed::NeedMore);
        // The largest length a v2 header can claim, with one TLV filling it.
        let mut body = inet_block();
        let value = 65535 - body.len() - 3;
        body.extend_from_slice(&[0xe0]);
        body.extend_from_slice(&(value as u16).to_be_bytes());
        body.resize(65535, 0xaa);
        assert_eq!(
            whole(&v2(1, 0x11, &body)),
            done("192.0.2.1:51234", "198.51.100.7:7", 16 + 65535)
        );
        let mut over = inet_block();
        over.extend_from_slice(&[0x01, 0, 9, b'x']);
        let mut short_tlv = inet_block();
        short_tlv.extend_from_slice(&[0x01, 0]);
        let mut bad_version = v2(1, 0x11, &inet_block());
        bad_version[12] = 0x11;
        for (bytes, needle) in [
            (
                v2(1, 0x11, &inet_block()[..11]),
                "shorter than its address block",
            ),
            (v2(1, 0x21, &inet_block()), "shorter than its address block"),
            (v2(1, 0x31, &[0; 100]), "shorter than its address block"),
            (v2(1, 0x11, &over), "TLV runs past"),
            (v2(1, 0x11, &short_tlv), "TLV runs past"),
            (v2(1, 0x41, &inet_block()), "unknown v2 address family"),
            (v2(1, 0x13, &inet_block()), "unknown v2 transport"),
            (v2(2, 0x11, &inet_block()), "unknown v2 command"),
            (bad_version, "version"),
            (b"\r\n\r\n\0\r\nQUIX\n".to_vec(), "did not start"),
        ] {
            match whole(&bytes) {
                Parsed::Invalid(reason) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("{bytes:?}: {other:?}"),
            }
            assert_eq!(bytewise(&bytes), whole(&bytes));
        }
    }

    #[test]
    fn the_answer_is_final() {
        let mut p = ProxyParser::new();
        let want = p.feed(b"PROXY UNKNOWN\r\nPROXY TCP4");
        assert_eq!(want, Parsed::Local { header_len: 15 });
        assert_eq!(p.feed(b"garbage"), want);
        let mut p = ProxyParser::new();
        assert!(matches!(p.feed(b"X"), Parsed::Invalid(_)));
        assert!(matches!(p.feed(b"PROXY UNKNOWN\r\n"), Parsed::Invalid(_)));
    }
}
