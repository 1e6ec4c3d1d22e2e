//! `tokio-udp-echo`: what an async-Rust programmer writes first for UDP
//! echo: one socket on a current_thread runtime, `recv_from` then
//! `send_to` in a loop, a 64 KiB buffer. No limits, no counters.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use tokio::net::UdpSocket;

use echo_bench_peers::Listen;

/// Minimal tokio UDP echo server, a peer in echo-server's benchmark.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    listen: Listen,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tokio-udp-echo: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(cli.listen.addr())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-udp-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let socket = UdpSocket::bind(addr).await?;
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await?;
        // A reply that cannot be sent is dropped, as UDP would.
        let _ = socket.send_to(&buf[..n], from).await;
    }
}
