//! `ping --udp`: one datagram per probe over one connected socket. Each
//! probe carries its sequence number in its first 8 bytes (from 8-byte
//! probes up), so an echo that comes after its probe was counted lost is
//! recognised and passed over instead of failing the next probe.

use std::net::SocketAddr;
use std::time::Instant;

use super::probe::record;
use super::PingRun;
use crate::client::cli::PingArgs;
use crate::client::error::ClientError;
use crate::client::output;
use crate::client::pattern::Pattern;
use crate::client::session::Session;

/// Runs the probes; `Err` only when no socket could be set up.
pub(super) fn probe_all(
    args: &PingArgs,
    addrs: &[SocketAddr],
    session: &mut Session,
) -> Result<PingRun, ClientError> {
    let (mut socket, addr) = session.udp_connect(addrs)?;
    let pattern = Pattern::new();
    let mut run = PingRun {
        json: args.json,
        last_addr: Some(addr),
        ..PingRun::default()
    };
    let started = Instant::now();
    run.started = Some(started);
    let mut due = started;
    for seq in 1.. {
        if (args.count != 0 && seq > args.count) || output::stdout_failed() {
            break;
        }
        if let Err(ClientError::Interrupted) = session.sleep_until(due) {
            run.interrupted = true;
            break;
        }
        let probe_started = Instant::now();
        due = probe_started + args.interval;
        let payload = payload(&pattern, seq, args.size);
        let stale = |got: &[u8]| late_echo(&pattern, seq, args.size, got);
        let result = session.exchange_datagram(&mut socket, addr, &payload, args.timeout, &stale);
        if let Err(ClientError::Interrupted) = result {
            run.interrupted = true;
            let waited = probe_started.elapsed();
            let lost = ClientError::Unanswered {
                waited,
                connecting: false,
            };
            record(args, &mut run, seq, None, Err(lost));
            break;
        }
        record(args, &mut run, seq, None, result);
    }
    run.settle();
    Ok(run)
}

/// Probe `seq`'s bytes: its number, then the pattern.
fn payload(pattern: &Pattern, seq: u64, size: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = seq.to_be_bytes().into_iter().take(size).collect();
    pattern.extend(seq, 8, size - bytes.len(), &mut bytes);
    bytes
}

/// Whether `got` is the exact echo of an earlier probe than `seq`.
fn late_echo(pattern: &Pattern, seq: u64, size: usize, got: &[u8]) -> bool {
    if size < 8 || got.len() != size {
        return false;
    }
    let earlier = u64::from_be_bytes(got[..8].try_into().unwrap_or([0xff; 8]));
    (1..seq).contains(&earlier) && got == payload(pattern, earlier, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_echoes_are_told_from_wrong_ones() {
        let pattern = Pattern::new();
        let one = payload(&pattern, 1, 64);
        let two = payload(&pattern, 2, 64);
        assert_eq!((one.len(), two.len()), (64, 64));
        assert_ne!(one[8..], two[8..]);
        assert!(late_echo(&pattern, 2, 64, &one));
        assert!(!late_echo(&pattern, 2, 64, &two));
        assert!(!late_echo(&pattern, 1, 64, &two));
        let mut corrupt = one.clone();
        corrupt[20] ^= 1;
        assert!(!late_echo(&pattern, 2, 64, &corrupt));
        assert_eq!(payload(&pattern, 3, 4), [0, 0, 0, 0]);
        assert!(!late_echo(&pattern, 3, 4, &[0, 0, 0, 0]));
    }
}
