//! The kernel's software receive timestamps (`SO_TIMESTAMPING`): when the
//! network stack took a segment in, not when this thread woke to read it.
//! `echo-client ping` and `bench` time an echo's arrival with them, so a
//! wake-up delay (tens of µs on a VM) is not charged to the path.
//!
//! For TCP the stamp a read returns is that of the last segment it took
//! bytes from (segments merged in the receive queue carry the latest
//! one's): a message completed by that segment is timed to its arrival,
//! one completed by an earlier segment of the same read to the same,
//! later, stamp.
//!
//! std and rustix offer neither the option's flags nor the control
//! messages of `recvmsg`; these are the libc calls, with their SAFETY notes.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// Time since the Unix epoch (CLOCK_REALTIME), the clock of the kernel's
/// receive timestamps.
pub fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Places the kernel's stamps (CLOCK_REALTIME) on the monotonic clock the
/// sends were timed with. The two clocks run at the same rate (the
/// kernel slews both alike) and differ only by steps of the wall clock, so
/// one reading of both serves for [`StampClock::REFRESH`]: reading two
/// clocks costs more than the receive itself on a VM, and a reading per
/// read would slow the client that measures. A step of the wall clock
/// mis-places the stamps of at most that long: those it would place well
/// after `now` are refused here, and the caller drops those that land
/// before their send.
#[derive(Debug, Default)]
pub struct StampClock {
    /// Both clocks, read together.
    reading: Option<(Instant, Duration)>,
}

impl StampClock {
    /// How long one reading of both clocks is used.
    pub const REFRESH: Duration = Duration::from_millis(100);

    /// When `stamp` happened, on the monotonic clock; `now` is the time
    /// just before the read that returned it, to know when to read the
    /// clocks again. `None` for a stamp more than [`StampClock::REFRESH`]
    /// after `now`: no segment read just after `now` arrived that late,
    /// so the wall clock stepped.
    pub fn instant_of(&mut self, stamp: Duration, now: Instant) -> Option<Instant> {
        let (mono, wall) = match self.reading {
            Some(reading) if now.saturating_duration_since(reading.0) < Self::REFRESH => reading,
            _ => *self.reading.insert(read_both(Instant::now, wall_clock)),
        };
        // A stamp after the reading is a segment that arrived since.
        let at = match stamp.checked_sub(wall) {
            Some(after) => mono.checked_add(after),
            None => mono.checked_sub(wall - stamp),
        }?;
        (at <= now + Self::REFRESH).then_some(at)
    }
}

/// The wall clock and the monotonic instant it was read at. The thread
/// may be preempted between two reads, which would shift every stamp
/// placed with them by as long: the wall clock is read between two
/// monotonic reads, and of a few tries the tightest pair is kept.
fn read_both(
    mut mono: impl FnMut() -> Instant,
    mut wall: impl FnMut() -> Duration,
) -> (Instant, Duration) {
    const TIGHT: Duration = Duration::from_micros(1);
    let mut best: Option<(Duration, Instant, Duration)> = None;
    for _ in 0..4 {
        let before = mono();
        let at = wall();
        let spread = mono().saturating_duration_since(before);
        if best.map_or(true, |(tightest, _, _)| spread < tightest) {
            best = Some((spread, before + spread / 2, at));
        }
        if spread <= TIGHT {
            break;
        }
    }
    best.map_or_else(|| (mono(), wall()), |(_, now, at)| (now, at))
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

    // A stamp lands on the monotonic clock as long before or after the
    // reading as it was on the wall clock; the reading serves for
    // REFRESH, then the clocks are read again.
    #[test]
    fn stamps_are_placed_on_the_monotonic_clock() {
        let mut clock = StampClock::default();
        let before = Instant::now();
        let ago = wall_clock() - Duration::from_millis(30);
        let at = clock.instant_of(ago, before).unwrap();
        let after = Instant::now();
        assert!(at <= after - Duration::from_millis(30), "{at:?} {after:?}");
        assert!(
            at + Duration::from_millis(30) >= before,
            "{at:?} {before:?}"
        );
        let first = clock.reading.unwrap();
        // Later than the reading, within REFRESH: the same reading.
        std::thread::sleep(Duration::from_millis(2));
        let later = wall_clock();
        let at_later = clock.instant_of(later, Instant::now()).unwrap();
        assert_eq!(clock.reading, Some(first));
        assert!(at_later > first.0 && at_later <= Instant::now());
        // Past REFRESH: the clocks are read again.
        let due = first.0 + StampClock::REFRESH;
        let again = clock.instant_of(wall_clock(), due).unwrap();
        assert!(clock.reading.unwrap().0 > first.0);
        assert!(again <= Instant::now());
        // Ahead of the reading by less than REFRESH: placed as far ahead;
        // by an hour, as a step forward of the wall clock leaves a stamp:
        // none.
        let reading = clock.reading.unwrap();
        let soon = reading.1 + Duration::from_millis(5);
        let at_soon = clock.instant_of(soon, reading.0).unwrap();
        assert_eq!(at_soon, reading.0 + Duration::from_millis(5));
        let step = reading.1 + Duration::from_secs(3600);
        assert_eq!(clock.instant_of(step, reading.0), None);
    }

    // A reading the thread was preempted in the middle of is tried again:
    // the tightest pair is kept, so stamps are not shifted by the pause.
    #[test]
    fn a_preempted_reading_of_both_clocks_is_retried() {
        let start = Instant::now();
        let wall_start = Duration::from_secs(1_000_000);
        // Monotonic reads: the first pair 5 ms apart (preempted between
        // them), the second 100 ns apart.
        let monos = [0, 5_000_000, 6_000_000, 6_000_100].map(|ns| start + Duration::from_nanos(ns));
        let walls = [4_000_000, 6_000_050].map(|ns| wall_start + Duration::from_nanos(ns));
        let (mut m, mut w) = (monos.into_iter(), walls.into_iter());
        let (now, wall) = read_both(|| m.next().unwrap(), || w.next().unwrap());
        assert_eq!(now, start + Duration::from_nanos(6_000_050));
        assert_eq!(wall, walls[1]);
        // Every try preempted: the tightest of the four.
        let spreads = [900_000u64, 300_000, 700_000, 500_000];
        let mut t = 0;
        let mut monos = Vec::new();
        for spread in spreads {
            monos.push(t);
            monos.push(t + spread);
            t += 2_000_000;
        }
        let mut m = monos.into_iter().map(|ns| start + Duration::from_nanos(ns));
        let mut calls = 0u64;
        let (now, wall) = read_both(
            || m.next().unwrap(),
            || {
                calls += 1;
                wall_start + Duration::from_nanos(calls)
            },
        );
        assert_eq!(calls, 4);
        assert_eq!(wall, wall_start + Duration::from_nanos(2));
        assert_eq!(now, start + Duration::from_nanos(2_000_000 + 150_000));
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
