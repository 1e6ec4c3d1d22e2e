//! TLS on the same event loop (`--tls-cert`/`--tls-key`,
//! `--tls-self-signed`, `--tls-client-ca`): a TLS connection is an echo
//! connection whose socket is wrapped in a rustls session, so the same
//! state machine serves it (every mode, the same bound, half-close,
//! timeouts and drain), on the copying path.
//!
//! - `config`: the rustls configuration from the files or the made pair;
//! - `self_signed`: `--tls-self-signed`'s key and certificate;
//! - `validity`: a certificate's expiry, for the warning at start;
//! - `session`: the session as the machine's transport;
//! - `turn`: one turn of a TLS connection, around the machine's;
//! - `events`: the server's side: handshakes logged and counted, their
//!   timeout, and reloading on SIGHUP.

pub mod config;
mod events;
pub mod self_signed;
pub mod session;
mod turn;
pub mod validity;

pub use config::Loaded;
pub use events::{view, TlsServing};
pub use session::{TlsSession, Wire};
pub use turn::pump;
