//! How much of what a TCP socket sent the peer has not acknowledged yet
//! (`ioctl(SIOCOUTQ)`): zero means every byte written has arrived.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Bytes in the socket's send queue, sent or not, that the peer has not
/// acknowledged. Counts a FIN already sent as one.
pub fn unacknowledged(socket: BorrowedFd<'_>) -> io::Result<usize> {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ's number) writes one int through the
    // pointer, which points to a live, writable c_int for the whole call;
    // a descriptor that is not a TCP socket fails with an errno. rustix
    // has no wrapper for this request.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(queued).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    // Bytes the peer has read (and so acknowledged) leave the queue;
    // bytes it has not stay in it.
    #[test]
    fn acknowledged_bytes_leave_the_queue() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        client.read_exact(&mut got).unwrap();
        // Loopback acknowledges at once, but not within the same call.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while unacknowledged(server.as_fd()).unwrap() != 0 {
            assert!(std::time::Instant::now() < deadline, "never acknowledged");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // A peer that does not read leaves them queued.
        server.set_nonblocking(true).unwrap();
        while server.write(&[7; 65536]).is_ok() {}
        assert!(unacknowledged(server.as_fd()).unwrap() > 0);
        let file = std::fs::File::open("/proc/self/status").unwrap();
        assert!(unacknowledged(file.as_fd()).is_err());
    }
}
