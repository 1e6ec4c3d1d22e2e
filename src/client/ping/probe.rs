//! The probe loop's helpers: one probe sent and checked, its outcome
//! reported (a line or a `--json-stream` event) and amended when bytes
//! follow its echo, the TLS handshake counted, the connection ended.

use std::time::Duration;

use super::summary::probe_json;
use super::{PingRun, Probe};
use crate::client::cli::PingArgs;
use crate::client::error::{ClientError, ReplyMismatch};
use crate::client::modes::{framed, ByteMap, ServiceMode};
use crate::client::output::{self, outln};
use crate::client::rtt::millis;
use crate::client::session::{Connected, Link, Session, CLOSE_GRACE};
use crate::client::tls::TlsFacts;

/// Counts a TLS handshake; its facts are shown for the first connection
/// (with `--reconnect`, each probe's line stays one line).
pub(super) fn tls_connected(args: &PingArgs, run: &mut PingRun, tls: &TlsFacts) {
    if !args.json && run.handshakes.count() == 0 {
        for line in tls.lines() {
            outln!("{line}");
        }
    }
    run.handshakes.record(tls.handshake);
    run.tls = Some(tls.clone());
}

/// Ends the connection the way `send` does (half-close, then up to
/// [`CLOSE_GRACE`] for the server's FIN), so bytes the server sends after
/// the last echo are charged to the last probe.
pub(super) fn finish(
    args: &PingArgs,
    run: &mut PingRun,
    session: &mut Session,
    conn: &mut Option<Connected>,
    sent: u64,
) {
    let Some(c) = conn.as_mut() else { return };
    match session.finish(&mut c.stream, sent, args.timeout.min(CLOSE_GRACE)) {
        Ok(()) => {}
        Err(ClientError::Interrupted) => run.interrupted = true,
        Err(e) => amend_last(args, run, e),
    }
}

/// One probe: `payload` as the mode sends it, and its reply checked; the
/// reply is left in `reply`. `received` is where the connection's replies
/// stand.
pub(super) fn probe(
    args: &PingArgs,
    session: &mut Session,
    stream: &mut Link,
    payload: &mut [u8],
    reply: &mut Vec<u8>,
    received: u64,
    seq: u64,
) -> Result<Duration, ClientError> {
    reply.clear();
    match args.mode {
        ServiceMode::Framed => {
            framed::sanitize(payload);
            framed::extend_plus_one(payload, reply);
            let request = framed::frame(payload);
            framed::exchange(
                session,
                stream,
                &request,
                reply,
                args.timeout,
                received,
                &format!("probe {seq}"),
            )
        }
        ServiceMode::Upper => {
            reply.extend(payload.iter().map(|&b| ByteMap::Upper.apply(b)));
            session
                .exchange(stream, payload, reply, args.timeout)
                .map_err(|e| match e {
                    ClientError::Mismatch(m) => ClientError::Reply(ReplyMismatch::from_mismatch(
                        "upper",
                        m,
                        received,
                        format!("probe {seq}"),
                    )),
                    other => other,
                })
        }
        _ => {
            reply.extend_from_slice(payload);
            session.exchange(stream, payload, reply, args.timeout)
        }
    }
}

pub(super) fn close(session: &mut Session, conn: &mut Option<Connected>) {
    if let Some(c) = conn.take() {
        session.close(c.stream);
    }
}

/// The last probe turned out wrong after all (extra bytes followed its
/// echo): it is reported again, and counted, as that failure.
pub(super) fn amend_last(args: &PingArgs, run: &mut PingRun, error: ClientError) {
    let Some(probe) = run.last.as_mut() else {
        return;
    };
    if args.json_stream {
        let amended = Probe {
            seq: probe.seq,
            connect: probe.connect,
            result: Err(error),
            stamped: false,
        };
        output::stream_event("probe", &probe_json(&amended, run.started));
        probe.result = amended.result;
        return;
    }
    if !args.json {
        match &error {
            ClientError::Mismatch(_) | ClientError::Reply(_) => {
                outln!("seq={} MISMATCH: {error}", probe.seq)
            }
            other => outln!("seq={} lost: {other}", probe.seq),
        }
    }
    probe.result = Err(error);
}

pub(super) fn record(
    args: &PingArgs,
    run: &mut PingRun,
    seq: u64,
    connect: Option<Duration>,
    result: Result<Duration, ClientError>,
) {
    let probe = Probe {
        seq,
        connect,
        result,
        stamped: false,
    };
    record_probe(args, run, probe);
}

/// Reports `probe` (a line, or a `--json-stream` event) and makes it the
/// latest.
pub(super) fn record_probe(args: &PingArgs, run: &mut PingRun, probe: Probe) {
    if args.json_stream {
        output::stream_event("probe", &probe_json(&probe, run.started));
    } else if !args.json {
        let seq = probe.seq;
        match &probe.result {
            Ok(rtt) => {
                let addr = run.last_addr.map(|a| a.to_string()).unwrap_or_default();
                let connect = probe
                    .connect
                    .map(|c| format!(" connect={:.3} ms", millis(c)))
                    .unwrap_or_default();
                outln!(
                    "{} bytes from {addr}: seq={seq}{connect} time={:.3} ms",
                    args.size,
                    millis(*rtt)
                );
            }
            Err(e @ (ClientError::Mismatch(_) | ClientError::Reply(_))) => {
                outln!("seq={seq} MISMATCH: {e}")
            }
            Err(e) => outln!("seq={seq} lost: {e}"),
        }
    }
    if let Some(previous) = run.last.take() {
        run.fold(previous);
    }
    run.last = Some(probe);
}
