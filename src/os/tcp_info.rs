//! What the kernel knows about one TCP path: `getsockopt(TCP_INFO)`.
//!
//! The kernel's `struct tcp_info` has grown over the years, and it fills in
//! only as many bytes as it has; [`TcpInfo::decode`] reads each field at its
//! fixed offset (from `include/uapi/linux/tcp.h`) when the returned length
//! covers it, so an older kernel simply gives fewer figures. The decoding is
//! pure and tested; [`sample`] is the one system call.
//!
//! The echo path never calls it: the server samples at the stats interval,
//! when `/`, `/metrics` or `/stats.json` is requested, and at close.

use std::io;
use std::os::fd::AsRawFd;

/// Size of the buffer handed to the kernel: the whole structure as of
/// Linux 6.x is 232 bytes; a newer kernel truncates to what we ask for.
const BUFFER: usize = 256;

/// The figures of one `TCP_INFO` reading that the server reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u32,
    /// Round-trip time variance (mean deviation), microseconds.
    pub rttvar_us: u32,
    /// Lowest RTT seen on the path, microseconds (Linux 4.6+).
    pub min_rtt_us: Option<u32>,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Segments currently considered lost.
    pub lost: u32,
    /// Congestion window, in segments.
    pub snd_cwnd: u32,
    /// Sender maximum segment size, bytes.
    pub snd_mss: u32,
    /// Estimated delivery rate, bytes per second (Linux 4.9+).
    pub delivery_rate: Option<u64>,
}

fn u32_at(buf: &[u8], offset: usize) -> Option<u32> {
    let bytes = buf.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u64_at(buf: &[u8], offset: usize) -> Option<u64> {
    let bytes = buf.get(offset..offset + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

impl TcpInfo {
    /// Decodes the first `buf.len()` bytes the kernel wrote; `None` if they
    /// do not even reach the RTT fields (104 bytes, Linux 2.6).
    ///
    /// ```
    /// let mut raw = [0u8; 232];
    /// raw[68..72].copy_from_slice(&1500u32.to_ne_bytes()); // tcpi_rtt
    /// raw[100..104].copy_from_slice(&3u32.to_ne_bytes()); // tcpi_total_retrans
    /// let info = echo_server::os::tcp_info::TcpInfo::decode(&raw).unwrap();
    /// assert_eq!((info.rtt_us, info.total_retrans), (1500, 3));
    /// assert!(echo_server::os::tcp_info::TcpInfo::decode(&raw[..100]).is_none());
    /// ```
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(Self {
            snd_mss: u32_at(buf, 16)?,
            lost: u32_at(buf, 32)?,
            rtt_us: u32_at(buf, 68)?,
            rttvar_us: u32_at(buf, 72)?,
            snd_cwnd: u32_at(buf, 80)?,
            total_retrans: u32_at(buf, 100)?,
            min_rtt_us: u32_at(buf, 148),
            delivery_rate: u64_at(buf, 160),
        })
    }

    /// Smoothed RTT in milliseconds.
    pub fn srtt_ms(&self) -> f64 {
        ms(self.rtt_us)
    }

    /// RTT variation in milliseconds.
    pub fn rttvar_ms(&self) -> f64 {
        ms(self.rttvar_us)
    }
}

/// Microseconds, as the kernel reports RTTs, in milliseconds.
pub fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

/// Reads `TCP_INFO` of a connected TCP socket.
pub fn sample(socket: &impl AsRawFd) -> io::Result<TcpInfo> {
    let mut buf = [0u8; BUFFER];
    let mut len = BUFFER as libc::socklen_t;
    // SAFETY: `buf` is a live, writable buffer of `len` bytes for the whole
    // call and `len` points to its size; the kernel writes at most `len`
    // bytes and stores the count written back in `len`. An invalid or
    // non-TCP descriptor makes the call fail with an errno, not misbehave.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let written = (len as usize).min(BUFFER);
    TcpInfo::decode(&buf[..written])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "TCP_INFO too short"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // A live loopback connection has an RTT and a congestion window.
    #[test]
    fn loopback_connection_has_figures() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).unwrap();
        server.write_all(b"pong").unwrap();
        client.read_exact(&mut got).unwrap();
        let info = sample(&server).expect("TCP_INFO on a TCP socket");
        assert!(info.snd_cwnd > 0, "{info:?}");
        assert!(info.snd_mss > 0, "{info:?}");
        assert!(info.min_rtt_us.is_some() && info.delivery_rate.is_some());
    }

    // A descriptor that is not a TCP socket is an error, not garbage.
    #[test]
    fn non_socket_is_an_error() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(sample(&file).is_err());
    }

    // Fields past the end of what the kernel wrote are absent, not zero.
    #[test]
    fn short_structures_lose_only_the_newer_fields() {
        let raw = [1u8; 152];
        let info = TcpInfo::decode(&raw).unwrap();
        assert_eq!(info.delivery_rate, None);
        assert_eq!(info.min_rtt_us, Some(0x0101_0101));
    }
}
