//! `syscall-floor`: what one echoed message costs with no server at all.
//!
//! One thread holds both ends of a connected loopback TCP pair, A (the
//! client) and B (the server), blocking, TCP_NODELAY on both, and repeats:
//! write(A, msg); read(B) fully; write(B, msg); read(A) fully. Loopback
//! delivers a segment within the sending `write`, so no read ever waits on
//! another thread: the time is the kernel's work alone. B's read+write pair
//! is what any echo server must at least spend per message; it is timed on
//! its own, the whole round trip by an outer clock.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

/// Largest message: both directions' bytes must fit the loopback socket
/// buffers at once, or the single thread would block on its own write.
const MAX_SIZE: usize = 16 * 1024;

/// Per-message syscall floor on a loopback TCP pair, one thread.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Message size in bytes (1 to 16384).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=MAX_SIZE as i64))]
    size: u32,
    /// Round trips to time (after as many untimed ones, up to 10,000, to warm up).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Totals of one timed run.
struct Measured {
    round_trips: Duration,
    server_side: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("syscall-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let (mut a, mut b) = loopback_pair()?;
    let size = cli.size as usize;
    let warmup = cli.count.min(10_000);
    measure(&mut a, &mut b, size, warmup)?;
    let m = measure(&mut a, &mut b, size, cli.count)?;
    report(cli, &m);
    Ok(())
}

/// A connected pair (client end, server end) on 127.0.0.1, TCP_NODELAY.
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let a = TcpStream::connect(listener.local_addr()?)?;
    let (b, _) = listener.accept()?;
    a.set_nodelay(true)?;
    b.set_nodelay(true)?;
    Ok((a, b))
}

/// Runs `count` round trips of `size` bytes, each byte checked on return.
fn measure(a: &mut TcpStream, b: &mut TcpStream, size: usize, count: u64) -> io::Result<Measured> {
    let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut at_server = vec![0u8; size];
    let mut at_client = vec![0u8; size];
    let mut server_side = Duration::ZERO;
    let started = Instant::now();
    for _ in 0..count {
        a.write_all(&msg)?;
        let t = Instant::now();
        b.read_exact(&mut at_server)?;
        b.write_all(&at_server)?;
        server_side += t.elapsed();
        a.read_exact(&mut at_client)?;
        if at_client != msg {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "echo differs from what was sent",
            ));
        }
    }
    Ok(Measured {
        round_trips: started.elapsed(),
        server_side,
    })
}

fn report(cli: &Cli, m: &Measured) {
    let per = |d: Duration| d.as_nanos() as f64 / cli.count as f64;
    let rtt = per(m.round_trips);
    let server = per(m.server_side);
    if cli.json {
        println!(
            "{{\"size\":{},\"count\":{},\"round_trip_ns\":{:.1},\"server_read_write_ns\":{:.1},\"elapsed_s\":{:.3}}}",
            cli.size,
            cli.count,
            rtt,
            server,
            m.round_trips.as_secs_f64()
        );
    } else {
        println!(
            "{} round trips of {} B on a loopback TCP pair, one thread",
            cli.count, cli.size
        );
        println!("  per round trip (2 writes + 2 reads): {rtt:.0} ns");
        println!("  per server-side read + write:        {server:.0} ns");
    }
}
