//! `udp-load`: a UDP echo load generator for the benchmark's UDP scenario.
//!
//! `--sockets` connected UDP sockets on 127.0.0.1, each keeping `--depth`
//! datagrams of `--size` bytes in flight to `--target`: every echo that
//! comes back (checked: its length and its bytes after the 8-byte sequence
//! number) is answered with the next datagram. A socket that hears nothing
//! for `--timeout-ms` while datagrams are out counts them lost and sends a
//! fresh window, so a server that drops datagrams slows the load instead of
//! stopping it. After `--warmup` seconds, counts `--duration` seconds and
//! prints one JSON document: datagrams echoed in the window and per second,
//! and over the whole run (for CPU per datagram), lost and mismatched.

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

/// UDP echo load: datagrams per second with a fixed number in flight.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The UDP echo server.
    #[arg(long)]
    target: SocketAddr,
    /// Client sockets (each its own source port).
    #[arg(long, default_value_t = 16)]
    sockets: usize,
    /// Datagrams in flight per socket.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Bytes per datagram (at least 8: the sequence number).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Unmeasured seconds before.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Silence after which a socket's datagrams in flight count as lost.
    #[arg(long, default_value_t = 200)]
    timeout_ms: u64,
}

struct Flow {
    socket: UdpSocket,
    in_flight: usize,
    last_heard: Instant,
    next_seq: u64,
}

#[derive(Default)]
struct Counts {
    total: u64,
    window: u64,
    lost: u64,
    mismatched: u64,
    send_errors: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.size < 8 || cli.size > 65_507 || cli.sockets == 0 || cli.depth == 0 {
        eprintln!("udp-load: --size must be 8..=65507, --sockets and --depth at least 1");
        return ExitCode::from(2);
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("udp-load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn fill(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in buf[8..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
}

fn send_one(flow: &mut Flow, buf: &mut [u8], counts: &mut Counts) {
    fill(buf, flow.next_seq);
    match flow.socket.send(buf) {
        Ok(_) => {
            flow.in_flight += 1;
            flow.next_seq += 1;
        }
        Err(_) => counts.send_errors += 1,
    }
}

fn run(cli: &Cli) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut flows = Vec::with_capacity(cli.sockets);
    let now = Instant::now();
    for i in 0..cli.sockets {
        let mut socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap())?;
        socket.connect(cli.target)?;
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        flows.push(Flow {
            socket,
            in_flight: 0,
            last_heard: now,
            next_seq: 0,
        });
    }
    let mut out = vec![0u8; cli.size];
    let mut back = vec![0u8; 65_536];
    let mut counts = Counts::default();
    for flow in &mut flows {
        for _ in 0..cli.depth {
            send_one(flow, &mut out, &mut counts);
        }
    }
    let measure_from = now + Duration::from_secs_f64(cli.warmup);
    let end = measure_from + Duration::from_secs_f64(cli.duration);
    let timeout = Duration::from_millis(cli.timeout_ms);
    let mut events = Events::with_capacity(1024);
    let mut window_started = None;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if window_started.is_none() && now >= measure_from {
            window_started = Some(now);
        }
        poll.poll(&mut events, Some(Duration::from_millis(20).min(end - now)))?;
        let now = Instant::now();
        let measuring = now >= measure_from;
        for event in events.iter() {
            let flow = &mut flows[event.token().0];
            loop {
                match flow.socket.recv(&mut back) {
                    Ok(n) => {
                        flow.last_heard = now;
                        flow.in_flight = flow.in_flight.saturating_sub(1);
                        if n != cli.size || back[8..n] != out[8..] {
                            counts.mismatched += 1;
                        }
                        counts.total += 1;
                        if measuring {
                            counts.window += 1;
                        }
                        send_one(flow, &mut out, &mut counts);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    // ICMP port unreachable: the server is gone or not yet there.
                    Err(e) if e.kind() == ErrorKind::ConnectionRefused => break,
                    Err(e) => return Err(e),
                }
            }
        }
        for flow in &mut flows {
            if now.duration_since(flow.last_heard) >= timeout {
                counts.lost += flow.in_flight as u64;
                flow.in_flight = 0;
                flow.last_heard = now;
                for _ in 0..cli.depth {
                    send_one(flow, &mut out, &mut counts);
                }
            }
        }
    }
    let seconds = window_started.map_or(0.0, |at| end.duration_since(at).as_secs_f64());
    let per_s = if seconds > 0.0 {
        counts.window as f64 / seconds
    } else {
        0.0
    };
    println!(
        "{{\"sockets\":{},\"depth\":{},\"size\":{},\"seconds\":{seconds:.3},\"datagrams\":{},\
         \"datagrams_per_s\":{per_s:.1},\"total_datagrams\":{},\"lost\":{},\"mismatched\":{},\
         \"send_errors\":{}}}",
        cli.sockets,
        cli.depth,
        cli.size,
        counts.window,
        counts.total,
        counts.lost,
        counts.mismatched,
        counts.send_errors
    );
    Ok(())
}
