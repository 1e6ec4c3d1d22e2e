//! `tokio-echo`: the echo server an async-Rust programmer would write first.
//!
//! An accept loop spawns one task per connection; each task owns a 64 KiB
//! buffer (echo-server's default `--buffer-size`) for its whole life and loops
//! `read` → `write_all`. TCP_NODELAY is set on every connection, as
//! echo-server does, so neither side is slowed by Nagle's algorithm.
//! No logging, limits or timeouts: this is the baseline, not a product.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

/// Bytes each connection's task reads at once and holds: echo-server's default.
const BUFFER_SIZE: usize = 64 * 1024;
/// Listen backlog: echo-server's default (tokio's `TcpListener::bind` uses 128).
const BACKLOG: u32 = 1024;
/// Pause after a failed accept (e.g. out of file descriptors), so the loop
/// waits for a descriptor to be freed instead of spinning.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// Idiomatic tokio echo server, a peer in echo-server's benchmark.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Which tokio runtime drives the tasks.
    #[arg(long, value_enum)]
    runtime: Runtime,
    /// Port to listen on; 0 lets the kernel pick one (printed at start).
    #[arg(long)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum Runtime {
    /// `Builder::new_current_thread()`: every task on the main thread.
    Current,
    /// `Builder::new_multi_thread()` with the default worker count (one per
    /// CPU the process may run on, so `taskset -c 0` gives one worker).
    Multi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let runtime = match cli.runtime {
        Runtime::Current => tokio::runtime::Builder::new_current_thread(),
        Runtime::Multi => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_io()
    .enable_time()
    .build()?;
    runtime.block_on(serve(SocketAddr::new(cli.bind, cli.port)))
}

/// Binds, announces the address, then accepts forever.
async fn serve(addr: SocketAddr) -> io::Result<()> {
    let listener = listen(addr)?;
    announce(listener.local_addr()?)?;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(echo(stream));
            }
            Err(e) => {
                eprintln!("tokio-echo: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// `TcpListener::bind` with echo-server's backlog instead of 128.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Echoes one connection until the peer closes it or an error ends it.
async fn echo(mut stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut buf = vec![0u8; BUFFER_SIZE];
    loop {
        let n = match stream.read(&mut buf).await {
            // Reading 0 bytes means the peer closed its side: we are done.
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The line the benchmark script waits for; flushed because stdout is a file.
fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "Listening on {addr}")?;
    out.flush()
}
