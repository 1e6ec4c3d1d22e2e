//! The kernel's software receive timestamps (`SO_TIMESTAMPING`): when the
//! network stack took a segment in, not when this thread woke to read it.
//! `echo-client ping` times an echo's arrival with them, so a wake-up
//! delay (tens of µs on a VM) is not charged to the path.
//!
//! std and rustix offer neither the option's flags nor the control
//! messages of `recvmsg`; these are the libc calls, with their SAFETY notes.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// Asks the kernel to stamp received data in software and to report it.
pub fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    let flags: libc::c_uint = libc::SOF_TIMESTAMPING_RX_SOFTWARE | libc::SOF_TIMESTAMPING_SOFTWARE;
    // SAFETY: `flags` is a live c_uint and the length passed is its size;
    // the kernel only reads it. A bad descriptor fails with an errno.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPING,
            (&flags as *const libc::c_uint).cast(),
            mem::size_of::<libc::c_uint>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Room for one `SCM_TIMESTAMPING` message (three timespecs) and a spare.
const CONTROL: usize = 256;

/// Reads like `read(2)` (non-blocking sockets give `WouldBlock`), and also
/// returns the software receive timestamp of the last segment read, as
/// time since the Unix epoch (CLOCK_REALTIME), when the kernel gave one.
pub fn recv(socket: &impl AsRawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    recv_fd(socket.as_raw_fd(), buf)
}

fn recv_fd(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<Duration>)> {
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; CONTROL / 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CONTROL as _;
    // SAFETY: `msg` points to `iov` (describing `buf`, writable for its
    // length) and to `control` (writable for CONTROL bytes), all live for
    // the call; the kernel writes within those lengths and updates
    // msg_controllen to what it wrote.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stamp = None;
    // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR walk the headers within
    // msg_controllen bytes of `control`, which the kernel just filled;
    // each header's data is read only when its length covers the
    // three-timespec payload, with read_unaligned.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let needed = libc::CMSG_LEN(mem::size_of::<[libc::timespec; 3]>() as u32) as usize;
            if header.cmsg_level == libc::SOL_SOCKET
                && header.cmsg_type == libc::SCM_TIMESTAMPING
                && header.cmsg_len as usize >= needed
            {
                let stamps: [libc::timespec; 3] =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                stamp = to_duration(stamps[0]);
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((n as usize, stamp))
}

/// The software stamp is the first of the three; zero means none.
fn to_duration(ts: libc::timespec) -> Option<Duration> {
    if ts.tv_sec <= 0 && ts.tv_nsec <= 0 {
        return None;
    }
    let nanos = u32::try_from(ts.tv_nsec)
        .ok()
        .filter(|&n| n < 1_000_000_000)?;
    Some(Duration::new(u64::try_from(ts.tv_sec).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::{SystemTime, UNIX_EPOCH};

    // Loopback data comes with a stamp between the write and the read.
    // The kernel switches stamping on for the whole stack through deferred
    // work, so the first exchanges may come unstamped: up to 50 tries.
    #[test]
    fn received_data_is_stamped_between_send_and_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        enable(&client).unwrap();
        for _ in 0..50 {
            let sent = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            client.write_all(b"ping").unwrap();
            let mut got = [0u8; 4];
            server.read_exact(&mut got).unwrap();
            server.write_all(b"pong").unwrap();
            let (n, stamp) = recv(&client, &mut got).unwrap();
            let read = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
            assert_eq!(&got[..n], &b"pong"[..n]);
            if let Some(stamp) = stamp {
                assert!(
                    sent <= stamp && stamp <= read,
                    "{sent:?} {stamp:?} {read:?}"
                );
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no software receive timestamp in 50 exchanges");
    }

    // Without the option, no stamp: the caller falls back to its clock.
    #[test]
    fn no_stamp_unless_enabled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"x").unwrap();
        let mut got = [0u8; 1];
        assert_eq!(recv(&client, &mut got).unwrap(), (1, None));
    }
}
