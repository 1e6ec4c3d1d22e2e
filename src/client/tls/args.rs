//! The TLS options shared by `send`, `ping` and `bench`.

use std::path::PathBuf;

use clap::Args;

use super::cert::Fingerprint;

/// `--tls` and how the server is trusted and the client known.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "TLS")]
pub struct TlsArgs {
    /// Speak TLS (1.2 or 1.3) to the server; its handshake is timed apart
    /// from the TCP connect, and its version, cipher suite and certificate
    /// (subject, expiry, SHA-256 fingerprint) are reported. Needs one of
    /// --ca, --tls-fingerprint or --insecure.
    #[arg(long)]
    pub tls: bool,

    /// Trust server certificates signed by the CAs in this PEM file (the
    /// system's bundle works too: --ca /etc/ssl/certs/ca-certificates.crt);
    /// the certificate must also name the host (or --sni).
    #[arg(long, value_name = "PEM", requires = "tls", conflicts_with_all = ["insecure", "tls_fingerprint"])]
    pub ca: Option<PathBuf>,

    /// Trust exactly the server certificate whose DER has this SHA-256
    /// (64 hex digits, colons optional, any case: what
    /// `echo-server --tls-self-signed` prints), whoever signed it and
    /// whatever names it carries.
    #[arg(long, value_name = "HEX", requires = "tls", value_parser = parse_fingerprint, conflicts_with = "insecure")]
    pub tls_fingerprint: Option<Fingerprint>,

    /// Accept any server certificate (the connection is encrypted but the
    /// server is not authenticated); the report still shows its fingerprint.
    #[arg(long, requires = "tls")]
    pub insecure: bool,

    /// The server name sent in the handshake (SNI) and checked against the
    /// certificate with --ca [default: the host of ADDR; none for an IP
    /// address].
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub sni: Option<String>,

    /// Client certificate chain (PEM) for a server that asks for one
    /// (mutual TLS); with --key.
    #[arg(long, value_name = "PEM", requires_all = ["tls", "key"])]
    pub cert: Option<PathBuf>,

    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of --cert.
    #[arg(long, value_name = "PEM", requires_all = ["tls", "cert"])]
    pub key: Option<PathBuf>,
}

fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    text.parse()
}
