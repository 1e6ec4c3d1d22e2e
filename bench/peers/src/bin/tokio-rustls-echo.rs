//! `tokio-rustls-echo`: the TLS peer of echo-server's benchmark, the
//! idiomatic async TLS echo: tokio on the current_thread runtime (one
//! thread, as echo-server) and tokio-rustls with the same rustls 0.23, the
//! same ring provider, versions (TLS 1.2 and 1.3) and default suites.
//!
//! A 64 KiB buffer per connection (echo-server's default), TCP_NODELAY, a
//! read and a `write_all` of what was read per turn; at the peer's EOF (or
//! close_notify) it sends close_notify and ends. The certificate: PEM files
//! (`--cert`, `--key`) or a self-signed pair made at start
//! (`--self-signed`), its SHA-256 fingerprint printed as echo-server's
//! banner prints it.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Bytes read at once per connection: echo-server's default buffer.
const BUFFER_SIZE: usize = 64 * 1024;
/// Listen backlog: echo-server's default.
const BACKLOG: u32 = 1024;
/// Pause after a failed accept (out of descriptors), as tokio-echo does.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// TLS echo server on tokio-rustls, a peer in echo-server's benchmark.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// Port to listen on; 0 lets the kernel pick one (printed at start).
    #[arg(long)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    bind: IpAddr,
    /// The certificate chain (PEM); needs --key.
    #[arg(long, requires = "key", conflicts_with = "self_signed")]
    cert: Option<PathBuf>,
    /// Its private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Make a key and a certificate for localhost at start.
    #[arg(long, required_unless_present = "cert")]
    self_signed: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tokio-rustls-echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Box<dyn std::error::Error>> {
    let (chain, key) = match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => (
            CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?,
            PrivateKeyDer::from_pem_file(key)?,
        ),
        _ => {
            let made = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ])?;
            let key = PrivatePkcs8KeyDer::from(made.key_pair.serialize_der());
            (vec![made.cert.der().clone()], PrivateKeyDer::Pkcs8(key))
        }
    };
    let fingerprint = Sha256::digest(chain[0].as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    // The ring provider, as echo-server uses (deprecated in 0.23.48 only to
    // point at aws-lc-rs's post-quantum groups).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(serve(
        SocketAddr::new(cli.bind, cli.port),
        acceptor,
        &fingerprint,
    ))?;
    Ok(())
}

/// Binds, announces the address and fingerprint, then accepts forever.
async fn serve(addr: SocketAddr, acceptor: TlsAcceptor, fingerprint: &str) -> io::Result<()> {
    let listener = listen(addr)?;
    announce(listener.local_addr()?, fingerprint)?;
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(echo(acceptor.clone(), stream));
            }
            Err(e) => {
                eprintln!("tokio-rustls-echo: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// `TcpListener::bind` with echo-server's backlog instead of 128.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Handshakes, then echoes until the peer closes or an error ends it.
async fn echo(acceptor: TlsAcceptor, stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let Ok(mut tls) = acceptor.accept(stream).await else {
        return;
    };
    let mut buf = vec![0u8; BUFFER_SIZE];
    loop {
        let n = match tls.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if tls.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    // close_notify, then FIN.
    let _ = tls.shutdown().await;
}

/// The lines the benchmark script waits for; flushed because stdout is a file.
fn announce(addr: SocketAddr, fingerprint: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "Listening on {addr}")?;
    writeln!(out, "TLS SHA-256 fingerprint {fingerprint}")?;
    out.flush()
}
