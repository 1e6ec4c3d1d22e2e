//! What the peers share: where they listen (`--port`, `--bind`), the
//! line bench/run.py waits for, and for the tokio TCP peers the listener
//! with echo-server's backlog and the accept loop.

use std::future::Future;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Bytes each connection reads at once and holds: echo-server's default.
pub const BUFFER_SIZE: usize = 64 * 1024;
/// Listen backlog: echo-server's default (mio's and tokio's `bind` use 128).
pub const BACKLOG: u32 = 1024;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// waits for a descriptor to be freed instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Where a peer listens.
#[derive(clap::Args, Debug)]
pub struct Listen {
    /// Port to listen on; 0 lets the kernel pick one (printed at start).
    #[arg(long)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
}

impl Listen {
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// The line the benchmark script waits for; flushed because stdout is a file.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "Listening on {addr}")?;
    out.flush()
}

/// `TcpListener::bind` with echo-server's backlog instead of 128.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Binds, announces the address, then accepts forever, a task per
/// connection running `serve`; `name` prefixes accept errors.
pub async fn accept_forever<F, Fut>(addr: SocketAddr, name: &str, mut serve: F) -> io::Result<()>
where
    F: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = listen(addr)?;
    announce(listener.local_addr()?)?;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve(stream));
            }
            Err(e) => {
                eprintln!("{name}: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}
