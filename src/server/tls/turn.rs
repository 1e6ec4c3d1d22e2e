//! One turn of a TLS connection: the ciphertext rustls still holds goes
//! out first, then the echo machine's own turn over the session, then the
//! end of the connection waits for its last records (close_notify last).

use super::session::{TlsSession, Wire};
use crate::logic::echo::{CloseReason, Echo, Next, Progress};

/// As [`Echo::pump`], over `session` on `wire`; `checks` takes the prime
/// checks of `--mode framed`.
pub fn pump<W: Wire>(
    echo: &mut Echo,
    session: &mut TlsSession,
    wire: &mut W,
    (scratch, max_reads): (&mut [u8], usize),
    checks: Option<&mut dyn FnMut(u64) -> bool>,
) -> Progress {
    let quiet = |next| Progress {
        received: 0,
        echoed: 0,
        next,
        began_splicing: false,
        streamed: false,
    };
    // Until what rustls holds is out, nothing new is read or taken: the
    // writable edge that ends the wait gives the connection its turn.
    match session.flush(wire) {
        Ok(true) => {}
        Ok(false) => return quiet(Next::Wait),
        Err(e) => return quiet(Next::Close(CloseReason::from_io(&e))),
    }
    let was_handshaking = session.is_handshaking();
    let mut stream = session.over(wire);
    if let Some(checks) = checks {
        stream = stream.with_checks(checks);
    }
    let mut progress = echo.pump(&mut stream, scratch, max_reads);
    match progress.next {
        Next::Close(CloseReason::PeerClosed | CloseReason::Shutdown) => {
            // The end of the echo may still be in rustls: it goes out, and
            // close_notify after it, before the socket closes.
            session.close_notify();
            if let Ok(false) = session.flush(wire) {
                progress.next = Next::Wait;
            }
        }
        // The handshake ended in this turn: a service that speaks first
        // (a greeting, chargen) gets a turn without waiting for an edge.
        Next::Wait if was_handshaking && !session.is_handshaking() => {
            progress.next = Next::Resume;
        }
        _ => {}
    }
    progress
}
