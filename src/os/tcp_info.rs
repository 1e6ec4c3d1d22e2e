//! What the kernel knows about one TCP path: `getsockopt(TCP_INFO)`, the
//! one system call; the decoding is pure (`logic/tcp_info.rs`).
//!
//! The echo path never calls it: the server samples at the stats interval,
//! when `/`, `/metrics` or `/stats.json` is requested, and at close.

use std::io;
use std::os::fd::AsRawFd;

use crate::logic::tcp_info::TcpInfo;

/// Size of the buffer handed to the kernel: the whole structure as of
/// Linux 6.x is 232 bytes; a newer kernel truncates to what we ask for.
const BUFFER: usize = 256;

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
}
