//! The TLS connection layer (`server::tls`): a rustls session between a
//! scripted socket and the echo state machine, as the server drives it.
//!
//! The script (decoded from fuzz bytes) picks the echo buffer, then steps:
//! a real rustls client (in this process) writes plaintext, its records
//! reach the server's receive queue in arbitrary splits, arbitrary bytes
//! are injected or a record byte flipped, the server takes turns with
//! arbitrary room in its send buffer and read budgets, the client reads
//! what came back, and the peer half-closes. Checked after every step:
//! - no panic, whatever arrives (not TLS, truncated, corrupted);
//! - the plaintext the client got back is a prefix of what it sent (the
//!   echo is exact through the encryption);
//! - the echo buffer holds at most its capacity, and the ciphertext the
//!   session holds for the socket (all of it comes out once the peer reads)
//!   is at most [`TLS_BUFFER_LIMIT`] plus the handshake's own flight;
//! - a connection that closes as `peer closed` (the client's close_notify
//!   or EOF was read) has written everything back first: the client gets
//!   every byte the server read from what is on the wire at the close.

use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

use super::stream::ScriptedStream;
use super::{Input, Violation};
use crate::config::tls::{CertSource, TlsSettings};
use crate::logic::echo::{CloseReason, Echo, Next};
use crate::server::tls::config;
use crate::server::tls::self_signed::SelfSigned;
use crate::server::tls::session::{TlsSession, Wire, TLS_BUFFER_LIMIT};

/// What the session may hold for the socket beyond its limit: the
/// handshake's flight and session tickets, which rustls always queues.
const HANDSHAKE_SLACK: usize = 8 * 1024;

/// How a script ended, for the replay's coverage checks.
#[derive(Debug, Clone, Default)]
pub struct TlsRun {
    /// The handshake finished.
    pub handshake_done: bool,
    /// Plaintext bytes the client got back.
    pub echoed: usize,
    /// The server closed the connection (for any reason).
    pub closed: bool,
    /// rustls refused what arrived.
    pub refused: bool,
}

impl Wire for ScriptedStream {
    fn shutdown_write(&mut self) -> std::io::Result<()> {
        crate::logic::echo::Transport::shutdown_write(self)
    }
}

/// The server's and the client's configurations, made once: a key is
/// too slow to make per input.
fn configs() -> &'static (Arc<ServerConfig>, Arc<ClientConfig>) {
    static CONFIGS: OnceLock<(Arc<ServerConfig>, Arc<ClientConfig>)> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let made = SelfSigned::generate().expect("self-signed pair");
        let settings = TlsSettings {
            source: CertSource::SelfSigned,
            client_ca: None,
            port: None,
            handshake_timeout: std::time::Duration::from_secs(10),
        };
        let server = config::load(&settings, Some(&made)).expect("server config");
        let mut roots = RootCertStore::empty();
        roots.add(made.cert.clone()).expect("trust the pair");
        let client = ClientConfig::builder_with_provider(config::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (server.config, Arc::new(client))
    })
}

/// Runs the script in `data`; see the module docs.
pub fn check_tls(data: &[u8]) -> Result<TlsRun, Violation> {
    let (server_config, client_config) = configs();
    let mut input = Input::new(data);
    let capacity = 1 + input.below(64 * 1024);
    let mut echo = Echo::new(capacity);
    let mut session = TlsSession::new(server_config.clone())
        .map_err(|e| Violation::new(0, format!("session: {e}")))?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = ClientConnection::new(client_config.clone(), name)
        .map_err(|e| Violation::new(0, format!("client: {e}")))?;
    let mut io = ScriptedStream::new(b"", 0);
    let mut scratch = vec![0; capacity];
    let mut to_server: Vec<u8> = Vec::new();
    let mut sent: Vec<u8> = Vec::new();
    let mut got: Vec<u8> = Vec::new();
    let mut run = TlsRun::default();
    let mut client_broken = false;
    let mut peer_closed = false;
    let mut step = 0;
    while !input.is_empty() && step < 2000 && !run.closed {
        step += 1;
        match input.below(8) {
            0 if !client_broken => {
                let n = input.below(8192);
                let bytes: Vec<u8> = (0..n).map(|i| (sent.len() + i) as u8 ^ 0x5a).collect();
                let taken = client.writer().write(&bytes).unwrap_or(0);
                sent.extend_from_slice(&bytes[..taken]);
            }
            1 => {
                let _ = client.write_tls(&mut to_server);
                let n = input.below(20_000).min(to_server.len());
                let segment: Vec<u8> = to_server.drain(..n).collect();
                io.send(&segment);
            }
            2 => {
                // Noise: bytes the client never sent, or a flipped bit.
                if to_server.is_empty() || input.byte() < 128 {
                    let n = input.below(64);
                    let noise: Vec<u8> = (0..n).map(|_| input.byte()).collect();
                    io.send(&noise);
                } else {
                    let at = input.below(to_server.len());
                    to_server[at] ^= 1 << (input.byte() % 8);
                }
                client_broken = true;
            }
            3 | 4 => {
                io.room = io.room.saturating_add(input.below(20_000));
                let budget = 1 + input.below(16);
                let progress = crate::server::tls::pump(
                    &mut echo,
                    &mut session,
                    &mut io,
                    (&mut scratch, budget),
                    None,
                );
                if let Next::Close(reason) = progress.next {
                    run.closed = true;
                    peer_closed = reason == CloseReason::PeerClosed;
                }
                run.handshake_done |= !session.connection().is_handshaking();
                run.refused |= session.failure().is_some();
            }
            5 => {
                // The client reads everything: what the session held comes
                // out now, and must be within its bound.
                io.room = usize::MAX;
                let before = io.output.len();
                if let Err(e) = session.flush(&mut io) {
                    return Err(Violation::new(
                        step,
                        format!("flush to a reading peer: {e}"),
                    ));
                }
                let held = io.output.len() - before;
                if held > TLS_BUFFER_LIMIT + HANDSHAKE_SLACK {
                    return Err(Violation::new(
                        step,
                        format!("the session held {held} bytes of ciphertext"),
                    ));
                }
                io.room = 0;
                // A client that refused the server's bytes is done: asked
                // again, rustls would send a second fatal alert (its debug
                // assertion). Later bytes go nowhere.
                if client_broken {
                    io.output.clear();
                } else {
                    client_broken = !client_reads(&mut client, &mut io.output, &mut got);
                }
            }
            6 => {
                io.eof = true;
                echo.note_peer_hangup();
            }
            _ => {
                if !client_broken {
                    client.send_close_notify();
                }
            }
        }
        if echo.pending() > capacity {
            return Err(Violation::new(
                step,
                format!(
                    "{} bytes held over a capacity of {capacity}",
                    echo.pending()
                ),
            ));
        }
        if !sent.starts_with(&got) {
            return Err(Violation::new(
                step,
                format!(
                    "the client got back bytes it did not send ({} of {} sent)",
                    got.len(),
                    sent.len()
                ),
            ));
        }
    }
    if peer_closed && !client_broken {
        // The socket closes now: the client gets what is on the wire.
        client_reads(&mut client, &mut io.output, &mut got);
        if got.len() as u64 != echo.received() {
            return Err(Violation::new(
                step,
                format!(
                    "closed as peer closed with {} of the {} bytes it read echoed",
                    got.len(),
                    echo.received()
                ),
            ));
        }
    }
    run.echoed = got.len();
    Ok(run)
}

/// The client takes the server's bytes in `wire` (emptying it) and adds
/// the plaintext to `got`; false if it refuses them.
fn client_reads(client: &mut ClientConnection, wire: &mut Vec<u8>, got: &mut Vec<u8>) -> bool {
    let mut from_server = &wire[..];
    let mut fine = true;
    while !from_server.is_empty() {
        match client.read_tls(&mut from_server) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if client.process_new_packets().is_err() {
                    fine = false;
                    break;
                }
            }
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = client.reader().read(&mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    wire.clear();
    fine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    // Generated scripts, biased towards a clean exchange (few noise
    // steps): some finish the handshake and echo, some are refused.
    #[test]
    fn generated_scripts_hold() {
        let mut rng = Rng(0x7153_0000_2020_0001);
        let mut done = 0;
        let mut echoed = 0;
        for _ in 0..150 {
            let len = 20 + rng.below(400) as usize;
            let mut script = rng.bytes(len);
            // Mostly client writes, deliveries, turns and reads.
            for (i, b) in script.iter_mut().enumerate().skip(2) {
                if i % 3 == 0 && *b % 8 == 2 {
                    *b = b.wrapping_add(1);
                }
            }
            let run = check_tls(&script).unwrap_or_else(|v| panic!("{v}"));
            done += usize::from(run.handshake_done);
            echoed += run.echoed;
        }
        assert!(done > 0, "no script finished a handshake");
        assert!(echoed > 0, "no script echoed a byte");
    }
}
