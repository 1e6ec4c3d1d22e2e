//! `probe` mode: which of a host's ports answer, TCP or UDP. Per port, the
//! connect time and one verified echo, or why not; a table sorted by port,
//! a one-line summary, `--json`, and an exit code that says whether every
//! port answered. It contacts only the host and the ports it is given.
//!
//! `classify` says what an observation means, `engine` runs the probes
//! side by side, `tcp` and `udp` are one port's probe, `report` prints.

mod classify;
mod engine;
mod report;
mod tcp;
pub(crate) mod udp;

pub use self::classify::Outcome;

use std::net::SocketAddr;

use super::cli::ProbeArgs;
use super::error::ClientError;
use super::output::errln;
use super::pattern::Pattern;
use super::target::Target;
use crate::os::limits::raise_open_file_limit;

/// Descriptors besides the probes' sockets: stdio, poll, signal pipes, margin.
const RESERVED_FDS: u64 = 16;

/// Runs `probe` and returns the exit code.
pub fn run(args: &ProbeArgs) -> u8 {
    match probe(args) {
        Ok(code) => code,
        Err(e) => {
            errln!("echo-client: {e}");
            if args.json {
                report::failed(args, &e);
            }
            e.exit_code()
        }
    }
}

fn probe(args: &ProbeArgs) -> Result<u8, ClientError> {
    let target = Target {
        host: args.host.clone(),
        port: args.ports.0[0],
    };
    // The first address the name resolves to: every port is probed on the
    // same host, and only there.
    let ip = target.resolve()?[0].ip();
    let addrs: Vec<SocketAddr> = args.ports.0.iter().map(|&p| (ip, p).into()).collect();
    let concurrency = concurrency(args.concurrency as usize);
    if !args.json {
        report::heading(args, ip, concurrency);
    }
    let pattern = Pattern::new();
    let payload = |port: u16| {
        let mut bytes = Vec::with_capacity(args.size);
        pattern.extend(u64::from(port), 0, args.size, &mut bytes);
        bytes
    };
    let (outcomes, interrupted) = if args.udp {
        let tries = args.retries + 1;
        engine::run(&addrs, concurrency, args.max_time, &mut |addr, now| {
            udp::start(addr, payload(addr.port()), args.timeout, tries, now)
        })?
    } else {
        engine::run(&addrs, concurrency, args.max_time, &mut |addr, now| {
            tcp::start(addr, payload(addr.port()), args.timeout, now)
        })?
    };
    let results: Vec<(u16, Outcome)> = args.ports.0.iter().copied().zip(outcomes).collect();
    if args.json {
        report::json(args, ip, &results, interrupted);
    } else {
        report::table(&results, interrupted);
    }
    Ok(classify::exit_code(
        results.iter().map(|(_, o)| o),
        interrupted,
    ))
}

/// `--concurrency`, lowered to what the open-file limit allows.
fn concurrency(wanted: usize) -> usize {
    let Some(limit) = raise_open_file_limit().after else {
        return wanted;
    };
    let fits = limit.saturating_sub(RESERVED_FDS).max(1) as usize;
    if wanted > fits {
        errln!(
            "echo-client: the open-file limit ({limit}) allows {fits} probes at once, not {wanted}"
        );
        return fits;
    }
    wanted
}
