//! `tokio-echo`: the echo server an async-Rust programmer would write first.
//!
//! An accept loop spawns one task per connection; each task owns a 64 KiB
//! buffer (echo-server's default `--buffer-size`) for its whole life and loops
//! `read` → `write_all`. TCP_NODELAY is set on every connection, as
//! echo-server does, so neither side is slowed by Nagle's algorithm.
//! No logging, limits or timeouts: this is the baseline, not a product.

use std::io;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use echo_bench_peers::{accept_forever, Listen, BUFFER_SIZE};

/// Idiomatic tokio echo server, a peer in echo-server's benchmark.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Which tokio runtime drives the tasks.
    #[arg(long, value_enum)]
    runtime: Runtime,
    #[command(flatten)]
    listen: Listen,
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
    runtime.block_on(accept_forever(cli.listen.addr(), "tokio-echo", echo))
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
