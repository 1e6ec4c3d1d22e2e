//! The server's side of TLS: the `--tls-port` listener, a session for each
//! accepted TLS client, the handshake's outcome logged and counted, its
//! timeout on the timer wheel, and reloading the files on SIGHUP.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use log::{info, warn};
use mio::Token;
use rustls::pki_types::CertificateDer;

use super::config::{self, Loaded};
use super::self_signed::SelfSigned;
use super::session::{Handshake, TlsSession, Wire};
use crate::config::tls::{CertSource, TlsSettings};
use crate::logic::echo::{CloseReason, Next, Progress};
use crate::logic::metrics::tls::{HandshakeCounts, HandshakeResult, TlsView};
use crate::logic::timer::Expiry;
use crate::server::{live, token, Server};

/// TLS as the server serves it: the settings and what they loaded (the
/// `--tls-port` listener is one of the listener table's, marked TLS).
#[derive(Debug)]
pub struct TlsServing {
    settings: TlsSettings,
    self_signed: Option<SelfSigned>,
    loaded: Loaded,
}

impl TlsServing {
    /// Makes the self-signed pair (`--tls-self-signed`) or reads the
    /// files, and builds the configuration; the error says which file
    /// and why.
    pub fn start(settings: TlsSettings) -> Result<Self, String> {
        let self_signed = match settings.source {
            CertSource::SelfSigned => Some(SelfSigned::generate()?),
            CertSource::Files { .. } => None,
        };
        let loaded = config::load(&settings, self_signed.as_ref())?;
        Ok(Self {
            settings,
            self_signed,
            loaded,
        })
    }

    /// The port asked for TLS beside the plain one (`--tls-port`).
    pub fn port(&self) -> Option<u16> {
        self.settings.port
    }

    /// The banner's words on TLS, after `TLS on ADDR`.
    pub fn banner(&self) -> String {
        let what = match &self.self_signed {
            Some(made) => format!("self-signed for {}", made.names.join(", ")),
            None => "certificate".to_string(),
        };
        let mtls = if self.settings.client_ca.is_some() {
            ", client certificates required"
        } else {
            ""
        };
        format!(
            "(TLS 1.2, 1.3{mtls}): {what}, SHA-256 fingerprint {}",
            self.loaded.fingerprint
        )
    }

    /// The warning to log at start if the certificate has expired.
    pub fn expired_warning(&self) -> Option<String> {
        self.loaded.expired_warning(SystemTime::now())
    }

    /// The certificate's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.loaded.fingerprint
    }
}

impl Server {
    /// Serves TLS: on `listener` beside plain TCP (`--tls-port`), or else
    /// on every listener. Returns the address TLS is served on (the first,
    /// in the second case).
    pub fn serve_tls(
        &mut self,
        serving: TlsServing,
        listener: Option<std::net::TcpListener>,
    ) -> io::Result<SocketAddr> {
        let addr = match listener {
            Some(listener) => {
                self.listeners
                    .add_tls(listener, self.config.mode, self.poll.registry())?
            }
            None => {
                self.listeners.all_tls();
                self.local_addr()
            }
        };
        self.tls = Some(serving);
        Ok(addr)
    }

    /// A session for a new TLS client, with the configuration in force now.
    pub(in crate::server) fn tls_session(&self) -> Option<Box<TlsSession>> {
        let serving = self.tls.as_ref()?;
        TlsSession::new(serving.loaded.config.clone())
            .map(Box::new)
            .ok()
    }

    /// How long until a new connection's first timer: its idle timeout, or
    /// the handshake's if it is TLS and that comes first.
    pub(in crate::server) fn first_timer(&self, tls: bool) -> Option<Duration> {
        let handshake = self
            .tls
            .as_ref()
            .filter(|_| tls)
            .map(|t| t.settings.handshake_timeout);
        match (self.config.idle_timeout, handshake) {
            (Some(idle), Some(handshake)) => Some(idle.min(handshake)),
            (idle, handshake) => idle.or(handshake),
        }
    }

    /// A connection's timer fired at `tick`: if it is TLS and still
    /// handshaking, closes it past `--handshake-timeout` or re-arms for
    /// whichever of that and its idle timeout comes first. True when
    /// handled here; false leaves it to the idle timeout.
    pub(in crate::server) fn tls_timer_fired(
        &mut self,
        token: Token,
        now: Instant,
        tick: u64,
    ) -> bool {
        let Some(handshake) = self.tls.as_ref().map(|t| t.settings.handshake_timeout) else {
            return false;
        };
        let idle = self.config.idle_timeout;
        let Some(conn) = live(&mut self.connections, token) else {
            return true;
        };
        let Some(session) = conn.tls.as_deref() else {
            return false;
        };
        if !session.is_handshaking() {
            // Armed only for the handshake: nothing more to time.
            return idle.is_none();
        }
        let deadline = self.clock.deadline(conn.connected_at, handshake);
        if tick >= deadline || now >= conn.connected_at + handshake {
            info!(
                target: "TLS",
                peer:% = conn.peer;
                "{} handshake not finished within {:.1}s: closing",
                conn.peer,
                handshake.as_secs_f64()
            );
            self.count_handshake(HandshakeResult::Timeout);
            let reason = CloseReason::Error(format!(
                "TLS handshake timeout ({:.1}s)",
                handshake.as_secs_f64()
            ));
            self.close(token::key(token), reason);
            return true;
        }
        let due = match idle.map(|idle| self.clock.expiry(conn.last_active, idle, tick)) {
            Some(Expiry::Close) => return false,
            Some(Expiry::Rearm(due)) => due.min(deadline),
            None => deadline,
        };
        self.wheel.insert(due, token);
        conn.timer = Some(due);
        true
    }

    /// After a TLS connection's turn: logs and counts a handshake that
    /// finished or failed in it, and a close without close_notify.
    pub(in crate::server) fn after_tls_turn(&mut self, token: Token, progress: &Progress) {
        let Some(conn) = live(&mut self.connections, token) else {
            return;
        };
        let Some(session) = conn.tls.as_deref_mut() else {
            return;
        };
        let peer = conn.peer;
        let result = match session.take_handshake() {
            Handshake::Done => {
                let view = view(session);
                let sni = view.sni.as_deref().unwrap_or("-");
                let client = client_subject(session);
                info!(
                    target: "TLS",
                    peer:% = peer,
                    version = view.version.as_str(),
                    suite = view.suite.as_str(),
                    sni = sni;
                    "{peer} {} {} sni: {sni}{client}",
                    view.version,
                    view.suite
                );
                Some(HandshakeResult::Ok)
            }
            Handshake::Failed => {
                let failure = session.failure().cloned();
                let (result, why) = match &failure {
                    Some(e) => (classify(e), e.to_string()),
                    None => (HandshakeResult::Failed, "refused".into()),
                };
                warn!(
                    target: "TLS",
                    peer:% = peer;
                    "{peer} handshake refused: {why}"
                );
                Some(result)
            }
            Handshake::Pending => match &progress.next {
                Next::Close(reason) => {
                    info!(
                        target: "TLS",
                        peer:% = peer;
                        "{peer} left during the handshake ({reason})"
                    );
                    Some(HandshakeResult::Closed)
                }
                _ => None,
            },
            Handshake::Reported => None,
        };
        if matches!(progress.next, Next::Close(_)) && session.unclean_eof() {
            info!(
                target: "TLS",
                peer:% = peer;
                "{peer} closed TCP without a TLS close_notify (its last bytes could have been cut off on the way)"
            );
        }
        if let Some(result) = result {
            self.count_handshake(result);
        }
    }

    fn count_handshake(&mut self, result: HandshakeResult) {
        if let Some(endpoint) = &mut self.endpoint {
            count(&mut endpoint.observed().tls_handshakes, result);
        }
    }

    /// SIGHUP: reads the certificate, key and client CA again; new
    /// handshakes use them, connections already open keep theirs. A file
    /// that cannot be used is logged and the old configuration kept.
    /// False without TLS.
    pub(in crate::server) fn reload_tls(&mut self) -> bool {
        let Some(serving) = &mut self.tls else {
            return false;
        };
        // A PEM pair and a CA file are read and checked in well under a
        // millisecond: done on the loop, not worth a thread.
        match config::load(&serving.settings, serving.self_signed.as_ref()) {
            Ok(loaded) => {
                let changed = loaded.fingerprint != serving.loaded.fingerprint;
                info!(
                    target: "RELOAD",
                    "SIGHUP: TLS configuration reloaded; new handshakes use certificate {}{}",
                    loaded.fingerprint,
                    if changed { "" } else { " (unchanged)" }
                );
                if let Some(warning) = loaded.expired_warning(SystemTime::now()) {
                    warn!(target: "RELOAD", "{warning}");
                }
                serving.loaded = loaded;
            }
            Err(e) => warn!(
                target: "RELOAD",
                "SIGHUP: TLS configuration not reloaded, still serving certificate {}: {e}",
                serving.loaded.fingerprint
            ),
        }
        true
    }
}

fn count(counts: &mut HandshakeCounts, result: HandshakeResult) {
    counts.count(result);
}

/// Which counter a refusal goes to.
fn classify(error: &rustls::Error) -> HandshakeResult {
    match error {
        rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_) => {
            HandshakeResult::ClientCert
        }
        _ => HandshakeResult::Failed,
    }
}

/// What a TLS connection negotiated, for the log and the endpoint.
pub fn view(session: &TlsSession) -> TlsView {
    let conn = session.connection();
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let suite = conn
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .map_or_else(String::new, str::to_string);
    TlsView {
        version,
        suite,
        sni: conn.server_name().map(str::to_string),
    }
}

/// `, client certificate SHA-256 …` for a mutual-TLS client.
fn client_subject(session: &TlsSession) -> String {
    session
        .connection()
        .peer_certificates()
        .and_then(<[CertificateDer<'_>]>::first)
        .map_or_else(String::new, |cert| {
            format!(", client certificate {}", config::fingerprint(cert))
        })
}

// The server's socket under a TLS session: std's reads and writes (which
// send with MSG_NOSIGNAL), and its FIN.
impl Wire for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}
