//! Fake service peers for the client's `--mode` checks: small
//! thread-per-connection servers that answer as `upper`, `framed` and
//! `chargen` do (or, on purpose, get one byte wrong), and xinetd's own
//! discard and chargen on a private config and port.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{wait_until, KillOnDrop};

/// What a [`Peer`] does with each connection.
#[derive(Debug, Clone, Copy)]
pub enum Service {
    /// ASCII letters uppercased; with `Some(n)`, the byte at offset `n` of
    /// its replies has its 0x20 bit flipped (a letter in the wrong case).
    Upper(Option<u64>),
    /// `*`, then `^…$` frames answered +1 and `\n` or `prime`/`composite`;
    /// with `Some(n)`, the byte at offset `n` of its output is one too high.
    Framed(Option<u64>),
    /// RFC 864 with the 95-character ring from its first line; with
    /// `Some(n)`, the byte at offset `n` is flipped.
    Chargen(Option<u64>),
}

/// A fake peer on 127.0.0.1, stopped on drop.
pub struct Peer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Peer {
    pub fn start(service: Service) -> Peer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = thread::spawn(move || {
            // Bounded: the owner sets `stop` on drop; each poll sleeps 5 ms.
            while !stop2.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stop3 = stop2.clone();
                        thread::spawn(move || serve(stream, service, &stop3));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Peer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends `out`, spoiling the byte at stream offset `wrong` (if it falls in
/// this chunk) with `spoil`; `sent` counts the stream's bytes.
fn send(
    stream: &mut TcpStream,
    mut out: Vec<u8>,
    sent: &mut u64,
    wrong: Option<u64>,
    spoil: fn(u8) -> u8,
) -> bool {
    if let Some(at) = wrong {
        if at >= *sent && at < *sent + out.len() as u64 {
            let i = (at - *sent) as usize;
            out[i] = spoil(out[i]);
        }
    }
    *sent += out.len() as u64;
    stream.write_all(&out).is_ok()
}

fn serve(mut stream: TcpStream, service: Service, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("timeout");
    let mut sent = 0u64;
    if let Service::Chargen(wrong) = service {
        let cycle: Vec<u8> = (0..95)
            .flat_map(|line| {
                (0..72)
                    .map(move |i| b' ' + ((line + i) % 95) as u8)
                    .chain(*b"\r\n")
            })
            .collect();
        let block: Vec<u8> = cycle
            .iter()
            .cycle()
            .take(cycle.len() * 8)
            .copied()
            .collect();
        while !stop.load(Ordering::Relaxed) {
            if !send(&mut stream, block.clone(), &mut sent, wrong, |b| b ^ 1) {
                return;
            }
        }
        return;
    }
    if let Service::Framed(wrong) = service {
        if !send(&mut stream, b"*".to_vec(), &mut sent, wrong, |b| b + 1) {
            return;
        }
    }
    let mut frame: Option<Vec<u8>> = None;
    let mut buf = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => return,
        };
        let out = match service {
            Service::Upper(wrong) => {
                let out = buf[..n].to_ascii_uppercase();
                send(&mut stream, out, &mut sent, wrong, |b| b ^ 0x20)
            }
            Service::Framed(wrong) => {
                let mut out = Vec::new();
                for &b in &buf[..n] {
                    match (&mut frame, b) {
                        (None, b'^') => frame = Some(Vec::new()),
                        (None, _) => {}
                        (Some(f), b'$') => {
                            out.extend(framed_reply(f));
                            frame = None;
                        }
                        (Some(f), _) => f.push(b),
                    }
                }
                send(&mut stream, out, &mut sent, wrong, |b| b.wrapping_add(1))
            }
            Service::Chargen(_) => unreachable!("served above"),
        };
        if !out {
            return;
        }
    }
}

fn framed_reply(payload: &[u8]) -> Vec<u8> {
    if let Some(digits) = payload.strip_prefix(b"P") {
        if let Some(n) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
        {
            let prime = n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0);
            return if prime {
                b"prime\n".to_vec()
            } else {
                b"composite\n".to_vec()
            };
        }
    }
    let mut out: Vec<u8> = payload.iter().map(|b| b.wrapping_add(1)).collect();
    out.push(b'\n');
    out
}

/// xinetd running its built-in discard and chargen (TCP) on two free
/// loopback ports, from a private config, in the foreground; killed (by
/// PID) on drop.
pub struct Xinetd {
    pub discard: String,
    pub chargen: String,
    _child: KillOnDrop,
    dir: std::path::PathBuf,
}

impl Xinetd {
    pub fn start() -> Xinetd {
        let free = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port()
        };
        let (discard, chargen) = (free(), free());
        let dir =
            std::env::temp_dir().join(format!("echo-xinetd-{}-{discard}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        // Run as root, xinetd needs a user per service; otherwise it runs
        // the built-ins as whoever started it.
        let user = if rustix::process::getuid().is_root() {
            "\tuser = root\n"
        } else {
            ""
        };
        let service = |name: &str, port: u16| {
            format!(
                "service {name}\n{{\n\ttype = INTERNAL UNLISTED\n\tid = {name}-stream\n\tsocket_type = stream\n\tprotocol = tcp\n\twait = no\n{user}\tbind = 127.0.0.1\n\tport = {port}\n}}\n"
            )
        };
        let conf = dir.join("xinetd.conf");
        std::fs::write(
            &conf,
            format!(
                "defaults\n{{\n}}\n{}{}",
                service("discard", discard),
                service("chargen", chargen)
            ),
        )
        .expect("write config");
        let child = Command::new("xinetd")
            .arg("-dontfork")
            .arg("-f")
            .arg(&conf)
            .arg("-pidfile")
            .arg(dir.join("pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start xinetd");
        let child = KillOnDrop(child);
        let up = |port: u16| {
            wait_until(Duration::from_secs(10), || {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            })
        };
        assert!(
            up(discard) && up(chargen),
            "xinetd did not listen on {discard} and {chargen}"
        );
        Xinetd {
            discard: format!("127.0.0.1:{discard}"),
            chargen: format!("127.0.0.1:{chargen}"),
            _child: child,
            dir,
        }
    }
}

impl Drop for Xinetd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
