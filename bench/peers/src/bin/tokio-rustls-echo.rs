//! `tokio-rustls-echo`: the TLS echo an async-Rust programmer would write
//! first, the TLS peer in echo-server's benchmark.
//!
//! tokio's current_thread runtime, tokio-rustls over rustls 0.23 with the
//! ring provider and its default suites, TLS 1.2 and 1.3: the provider and
//! suites echo-server serves with. One task per connection, a 64 KiB
//! buffer, `read` → `write_all`; at the client's close_notify or FIN it
//! sends its own close_notify and closes. TCP_NODELAY, backlog 1024.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use echo_bench_peers::{accept_forever, Listen, BUFFER_SIZE};

/// TLS echo server on tokio's current_thread runtime.
#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    listen: Listen,
    /// Certificate chain, PEM.
    #[arg(long)]
    cert: PathBuf,
    /// Private key, PEM.
    #[arg(long)]
    key: PathBuf,
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

/// rustls's ring provider, which 0.23.48 deprecates for lacking
/// post-quantum key exchange; echo-server uses the same one.
#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

fn run(cli: &Cli) -> io::Result<()> {
    let bad = |what: &str, e: &dyn std::fmt::Display| io::Error::other(format!("{what}: {e}"));
    let certs = CertificateDer::pem_file_iter(&cli.cert)
        .map_err(|e| bad("--cert", &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("--cert", &e))?;
    let key = PrivateKeyDer::from_pem_file(&cli.key).map_err(|e| bad("--key", &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| bad("versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate", &e))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?
        .block_on(accept_forever(
            cli.listen.addr(),
            "tokio-rustls-echo",
            |stream| echo(stream, acceptor.clone()),
        ))
}

/// Handshake, then echo until the client closes or an error ends it.
async fn echo(stream: TcpStream, acceptor: TlsAcceptor) {
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
