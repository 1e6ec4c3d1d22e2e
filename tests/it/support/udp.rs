//! A UDP echo peer on 127.0.0.1 for the client's `--udp` modes: echoes
//! every datagram to its sender, or drops every other one.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A thread answering datagrams until dropped.
pub struct UdpEcho {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl UdpEcho {
    /// Echoes every datagram (`drop_every_other`: only the 2nd, 4th, …).
    pub fn start(drop_every_other: bool) -> UdpEcho {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (stop2, received2) = (stop.clone(), received.clone());
        let thread = thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            // Bounded: the owner sets `stop` on drop; each wait is 20 ms.
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let seen = received2.fetch_add(1, Ordering::Relaxed);
                if drop_every_other && seen % 2 == 0 {
                    continue;
                }
                let _ = socket.send_to(&buf[..n], from);
            }
        });
        UdpEcho {
            addr,
            stop,
            received,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Datagrams received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for UdpEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP port on 127.0.0.1 where nothing listens (bound, then closed): the
/// kernel answers datagrams to it with ICMP port unreachable.
pub fn closed_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    s.local_addr().expect("addr").port()
}
