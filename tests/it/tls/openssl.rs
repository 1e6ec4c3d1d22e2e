//! Interoperability with the real `openssl s_client` (Debian's `openssl`,
//! installed by .ci/run): echo through it with TLS 1.2 only and TLS 1.3
//! only, SNI, and mutual TLS accepted and refused.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// What one `openssl s_client` run printed and how it ended.
struct Run {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

/// Runs `openssl s_client` against `addr` with `extra` arguments, sends
/// `input`, waits (up to 10 s) for as many bytes back, then ends its input.
fn s_client(addr: SocketAddr, extra: &[&str], input: &[u8]) -> Run {
    s_client_lines(addr, extra, &[(input, 0)], input.len())
}

/// As [`s_client`], its input in pieces, each sent once `n` bytes came
/// back and 300 ms passed (so that s_client reads each on its own, as it
/// must to take `R` as a command); then waits for `expect` bytes back.
fn s_client_lines(
    addr: SocketAddr,
    extra: &[&str],
    pieces: &[(&[u8], usize)],
    expect: usize,
) -> Run {
    let connect = addr.to_string();
    let mut args = vec!["s_client", "-connect", &connect, "-quiet", "-no_ign_eof"];
    args.extend_from_slice(extra);
    let mut child = KillOnDrop(
        Command::new("openssl")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn openssl"),
    );
    let out = Arc::new(Mutex::new(Vec::new()));
    let mut stdout = child.0.stdout.take().unwrap();
    let sink = out.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let mut stdin = child.0.stdin.take().unwrap();
    for (i, (piece, after)) in pieces.iter().enumerate() {
        if i > 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while out.lock().unwrap().len() < *after && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let _ = stdin.write_all(piece);
        let _ = stdin.flush();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.lock().unwrap().len() < expect && Instant::now() < deadline {
        if child.0.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stdin);
    let (status, stderr) =
        wait_child_exit(&mut child.0, Duration::from_secs(10), "openssl s_client");
    let _ = reader.join();
    let stdout = out.lock().unwrap().clone();
    Run {
        stdout,
        stderr,
        code: status.code(),
    }
}

fn has_openssl(test: &str) -> bool {
    require_tool(test, "openssl")
}

// TLS 1.2 only and TLS 1.3 only, each verifying the server's certificate
// and name: the bytes come back, and the log names the version and the
// SNI the client sent.
#[test]
fn openssl_echoes_over_tls12_and_tls13_with_sni() {
    if !has_openssl("openssl_echoes_over_tls12_and_tls13_with_sni") {
        return;
    }
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf("server");
    let (srv, addr) = start_tls(&["--tls-cert", leaf.cert(), "--tls-key", leaf.key()]);
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let sni = format!("echo-{}.example", &flag[1..].replace('_', "-"));
        let input = format!("hello from openssl {flag}\n");
        let run = s_client(
            addr,
            &[
                flag,
                "-servername",
                &sni,
                "-CAfile",
                pki.ca(),
                "-verify_return_error",
                "-verify_hostname",
                "localhost",
            ],
            input.as_bytes(),
        );
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            input,
            "{flag}: {}\n{}",
            run.stderr,
            srv.dump()
        );
        assert_eq!(run.code, Some(0), "{flag}: {}", run.stderr);
        let line = srv.wait_for(&format!("sni: {sni}"), START_TIMEOUT);
        assert!(line.contains(&format!(" {version} ")), "{flag}: {line}");
    }
}

// With --tls-client-ca, openssl presenting a certificate from the CA is
// served; without one it is refused, the reason in the log, nothing echoed.
#[test]
fn openssl_mutual_tls_accepted_and_refused() {
    if !has_openssl("openssl_mutual_tls_accepted_and_refused") {
        return;
    }
    let pki = Pki::new("echo test CA");
    let server = pki.leaf("server");
    let client = pki.leaf("client");
    let (srv, addr) = start_tls(&[
        "--tls-cert",
        server.cert(),
        "--tls-key",
        server.key(),
        "--tls-client-ca",
        pki.ca(),
    ]);
    let input = b"mutual hello\n";
    let run = s_client(
        addr,
        &[
            "-CAfile",
            pki.ca(),
            "-cert",
            client.cert(),
            "-key",
            client.key(),
        ],
        input,
    );
    assert_eq!(run.stdout, input, "{}\n{}", run.stderr, srv.dump());
    srv.wait_for(
        &format!("client certificate {}", fingerprint(client.der.as_ref())),
        START_TIMEOUT,
    );

    let refused = s_client(addr, &["-CAfile", pki.ca()], input);
    assert!(
        refused.stdout.is_empty(),
        "echoed without a client certificate"
    );
    let line = srv.wait_for("handshake refused", START_TIMEOUT);
    assert!(line.contains("peer sent no certificates"), "{line}");
}

// A TLS 1.2 renegotiation (s_client's `R` command) is refused by rustls;
// the connection ends with the reason logged, after its echo, and a
// connection beside it goes on echoing.
#[test]
fn openssl_renegotiation_is_refused_and_logged() {
    if !has_openssl("openssl_renegotiation_is_refused_and_logged") {
        return;
    }
    let (srv, addr) = start_tls(&["--tls-self-signed"]);
    let mut other = TlsClient::connect(addr, accepting_any(), "localhost").unwrap();
    let run = s_client_lines(
        addr,
        &["-tls1_2"],
        &[(b"before\n", 0), (b"R\n", 7), (b"after\n", 7)],
        14,
    );
    assert!(
        run.stdout.starts_with(b"before\n"),
        "{:?} {}",
        String::from_utf8_lossy(&run.stdout),
        run.stderr
    );
    assert!(run.stderr.contains("no renegotiation"), "{}", run.stderr);
    let line = srv.wait_for("reason: error: TLS: ", START_TIMEOUT);
    assert!(line.contains("[DISCONNECT]"), "{line}");
    assert_same(
        &other.echo(b"beside", 0, Duration::from_secs(10)),
        b"beside",
        "other",
    );
}
