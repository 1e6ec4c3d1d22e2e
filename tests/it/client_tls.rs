//! `echo-client --tls` against a TLS echo (tests/it/support/tls.rs, rustls
//! in threads, certificates from rcgen) and against real `openssl
//! s_server`: exact echo through TLS, the handshake's facts, and each way
//! the server can fail to be trusted, with its own exit code.

use std::process::Command;
use std::time::Duration;

use crate::support::client::{client, json_of, num, CLIENT};
use crate::support::tls::{colons, PeerOptions, Pki, TlsPeer, SERVER_NOT_AFTER};
use crate::support::{assert_no_panic, require_tool, run_cmd_to_exit, wait_until, Rng, Server};

fn ca_args(pki: &Pki) -> Vec<String> {
    vec![
        "--tls".into(),
        "--ca".into(),
        pki.ca.cert_pem.display().to_string(),
    ]
}

fn run(args: &[String]) -> crate::support::Exit {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exit = client(&args);
    assert_no_panic(&exit.stderr);
    exit
}

/// `more`'s first word (the mode), then `base`, then the rest of `more`.
fn with(base: &[String], more: &[&str]) -> Vec<String> {
    let (mode, rest) = more.split_first().unwrap();
    std::iter::once(mode.to_string())
        .chain(base.iter().cloned())
        .chain(rest.iter().map(|s| s.to_string()))
        .collect()
}

/// The echo comes back exactly through TLS, and the text names the
/// handshake's time, version, suite and SNI, and the server certificate's
/// subject, expiry and fingerprint.
#[test]
fn send_echoes_through_tls_and_reports_the_handshake() {
    let pki = Pki::new("send ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("localhost:{}", peer.addr().port());
    let exit = run(&with(&ca_args(&pki), &["send", &target, "hello tls"]));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let out = &exit.stdout;
    assert!(out[1].starts_with("Connected to "), "{out:?}");
    let handshake = &out[2];
    assert!(
        handshake.starts_with("TLS handshake in ")
            && handshake.contains(" ms: TLSv1.3, TLS13_")
            && handshake.ends_with(", SNI localhost"),
        "{handshake}"
    );
    assert_eq!(
        out[3],
        format!(
            "Server certificate: CN=localhost, O=echo tests, expires {SERVER_NOT_AFTER}, SHA-256 {}",
            colons(&pki.server.fingerprint())
        )
    );
    assert!(
        out.contains(&"Sent 9 bytes: hello tls".to_string()),
        "{out:?}"
    );
    assert!(
        out.contains(&"Received echo: hello tls".to_string()),
        "{out:?}"
    );
    assert_eq!(peer.echoed.load(std::sync::atomic::Ordering::Relaxed), 9);
}

/// A 3 MiB binary file (larger than any TLS record or socket buffer)
/// comes back byte for byte; `--json` carries the connect time and the
/// handshake apart, the version, the suite and the certificate.
#[test]
fn a_large_file_through_tls_with_json_facts() {
    let pki = Pki::new("file ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let mut rng = Rng::new(20);
    let data: Vec<u8> = (0..3 * 1024 * 1024).map(|_| rng.next_u64() as u8).collect();
    let path = pki.dir.join("payload.bin");
    std::fs::write(&path, &data).unwrap();
    let target = format!("127.0.0.1:{}", peer.addr().port());
    let exit = run(&with(
        &ca_args(&pki),
        &["send", "--json", "--file", path.to_str().unwrap(), &target],
    ));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["match"], true, "{doc}");
    assert_eq!(num(&doc, &["bytes_received"]), data.len() as f64, "{doc}");
    assert!(num(&doc, &["connect_ms"]) >= 0.0, "{doc}");
    let tls = &doc["tls"];
    assert!(num(&doc, &["tls", "handshake_ms"]) > 0.0, "{doc}");
    assert_eq!(tls["version"], "TLSv1.3", "{doc}");
    assert!(
        tls["cipher_suite"].as_str().unwrap().starts_with("TLS13_"),
        "{doc}"
    );
    // An IP address has no SNI.
    assert!(tls.get("sni").is_none(), "{doc}");
    assert_eq!(tls["client_certificate"], false, "{doc}");
    let cert = &tls["server_certificate"];
    assert_eq!(cert["subject"], "CN=localhost, O=echo tests", "{doc}");
    assert_eq!(cert["not_after"], SERVER_NOT_AFTER, "{doc}");
    assert_eq!(cert["sha256"], colons(&pki.server.fingerprint()), "{doc}");
    assert_eq!(
        peer.echoed.load(std::sync::atomic::Ordering::Relaxed),
        data.len()
    );
}

/// A TLS 1.2-only server: the client negotiates 1.2 and says so.
#[test]
fn tls12_is_negotiated_and_reported() {
    let pki = Pki::new("v12 ca");
    let peer = TlsPeer::start(
        &pki,
        PeerOptions {
            versions: &[&rustls::version::TLS12],
            ..PeerOptions::default()
        },
    );
    let target = format!("localhost:{}", peer.addr().port());
    let exit = run(&with(&ca_args(&pki), &["send", "--json", &target, "v1.2"]));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["tls"]["version"], "TLSv1.2", "{doc}");
    assert!(
        doc["tls"]["cipher_suite"]
            .as_str()
            .unwrap()
            .starts_with("TLS_ECDHE_"),
        "{doc}"
    );
}

/// `--tls-fingerprint` pins the certificate: its own fingerprint passes
/// in either spelling, another one fails with exit 11 and the fingerprint
/// the server has, so the user sees what to pin.
#[test]
fn fingerprint_pinning() {
    let pki = Pki::new("pin ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("127.0.0.1:{}", peer.addr().port());
    let right = pki.server.fingerprint();
    for spelling in [right.clone(), colons(&right)] {
        let exit = run(&with(
            &[],
            &[
                "send",
                "--tls",
                "--tls-fingerprint",
                &spelling,
                &target,
                "pinned",
            ],
        ));
        assert_eq!(exit.code(), Some(0), "{spelling}\n{}", exit.describe());
        assert!(exit.stdout.contains(&"Received echo: pinned".to_string()));
    }
    let wrong = pki.client.fingerprint();
    let exit = run(&with(
        &[],
        &[
            "send",
            "--tls",
            "--tls-fingerprint",
            &wrong,
            &target,
            "pinned",
        ],
    ));
    assert_eq!(exit.code(), Some(11), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("is not the one --tls-fingerprint pins")
            && exit.stderr.contains(&colons(&right)),
        "{}",
        exit.stderr
    );
    assert!(
        !exit.stdout.iter().any(|l| l.starts_with("Sent")),
        "{}",
        exit.describe()
    );
    let exit = run(&with(
        &[],
        &[
            "send",
            "--json",
            "--tls",
            "--tls-fingerprint",
            &wrong,
            &target,
        ],
    ));
    assert_eq!(exit.code(), Some(11));
    assert_eq!(json_of(&exit)["error_kind"], "tls_fingerprint");
}

/// A certificate from another CA, or one for another name, is refused
/// with exit 10 before a byte is sent; `--insecure` accepts it.
#[test]
fn an_untrusted_certificate_is_refused() {
    let pki = Pki::new("real ca");
    let other = Pki::new("other ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("localhost:{}", peer.addr().port());
    let exit = run(&with(&ca_args(&other), &["send", &target]));
    assert_eq!(exit.code(), Some(10), "{}", exit.describe());
    assert!(
        exit.stderr.contains("certificate is not trusted") && exit.stderr.contains("UnknownIssuer"),
        "{}",
        exit.stderr
    );
    assert!(
        !exit.stdout.iter().any(|l| l.starts_with("Sent")),
        "{}",
        exit.describe()
    );
    let exit = run(&with(
        &ca_args(&pki),
        &["send", "--sni", "elsewhere.example", &target],
    ));
    assert_eq!(exit.code(), Some(10), "{}", exit.describe());
    assert!(
        exit.stderr
            .contains("not valid for name \"elsewhere.example\""),
        "{}",
        exit.stderr
    );
    let exit = run(&with(
        &[],
        &["send", "--tls", "--insecure", &target, "anyway"],
    ));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    assert!(exit.stdout.contains(&"Received echo: anyway".to_string()));
}

/// Mutual TLS: with --cert/--key the server accepts the client; without
/// one, or with one from another CA, the server's refusal ends the run
/// with exit 9.
#[test]
fn mutual_tls_with_cert_and_key() {
    let pki = Pki::new("mtls ca");
    let other = Pki::new("mtls other");
    let peer = TlsPeer::start(
        &pki,
        PeerOptions {
            client_ca: Some(&pki.ca),
            ..PeerOptions::default()
        },
    );
    let target = format!("localhost:{}", peer.addr().port());
    let cert = |p: &Pki| {
        vec![
            "--cert".to_string(),
            p.client.cert_pem.display().to_string(),
            "--key".to_string(),
            p.client.key_pem.display().to_string(),
        ]
    };
    let mut args = ca_args(&pki);
    args.extend(cert(&pki));
    let exit = run(&with(&args, &["send", "--json", &target, "mutual"]));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["tls"]["client_certificate"], true, "{doc}");
    assert_eq!(doc["bytes_received"], 6, "{doc}");

    let exit = run(&with(&ca_args(&pki), &["send", &target, "anonymous"]));
    assert_eq!(exit.code(), Some(9), "{}", exit.describe());
    assert!(
        exit.stderr.contains("TLS handshake failed"),
        "{}",
        exit.stderr
    );
    let mut args = ca_args(&pki);
    args.extend(cert(&other));
    let exit = run(&with(&args, &["send", &target, "stranger"]));
    assert_eq!(exit.code(), Some(9), "{}", exit.describe());
    assert!(wait_until(Duration::from_secs(5), || peer.refusals().len() >= 2));
}

/// A plain echo server answers the ClientHello with the ClientHello
/// itself: a handshake failure (exit 9), not a hang or a panic.
#[test]
fn tls_to_a_plain_server_fails_the_handshake() {
    let server = Server::start(&[]);
    let exit = run(&with(
        &[],
        &["send", "--tls", "--insecure", &server.addr().to_string()],
    ));
    assert_eq!(exit.code(), Some(9), "{}", exit.describe());
    assert!(
        exit.stderr.contains("TLS handshake failed"),
        "{}",
        exit.stderr
    );
}

/// Options that cannot work are refused before connecting, exit 2.
#[test]
fn tls_options_are_checked() {
    let pki = Pki::new("usage ca");
    for (args, says) in [
        (
            vec!["send", "--tls", "127.0.0.1:9"],
            "needs a way to trust the server",
        ),
        (vec!["send", "--ca", "x.pem", "127.0.0.1:9"], "--tls"),
        (
            vec![
                "send",
                "--tls",
                "--insecure",
                "--ca",
                "x.pem",
                "127.0.0.1:9",
            ],
            "cannot be used with",
        ),
        (
            vec!["send", "--tls", "--tls-fingerprint", "abc", "127.0.0.1:9"],
            "64 hex digits",
        ),
        (
            vec![
                "send",
                "--tls",
                "--insecure",
                "--cert",
                "c.pem",
                "127.0.0.1:9",
            ],
            "--key",
        ),
        (
            vec![
                "send",
                "--tls",
                "--ca",
                "/nonexistent/ca.pem",
                "127.0.0.1:9",
            ],
            "/nonexistent/ca.pem",
        ),
    ] {
        let exit = client(&args);
        assert_eq!(exit.code(), Some(2), "{args:?}\n{}", exit.describe());
        assert!(exit.stderr.contains(says), "{args:?}: {}", exit.stderr);
        assert_no_panic(&exit.stderr);
    }
    // A key file that is not a key.
    let cert = pki.client.cert_pem.display().to_string();
    let exit = client(&[
        "send",
        "--tls",
        "--insecure",
        "--cert",
        &cert,
        "--key",
        &cert,
        "127.0.0.1:9",
    ]);
    assert_eq!(exit.code(), Some(2), "{}", exit.describe());
    assert!(exit.stderr.contains("--key"), "{}", exit.stderr);
}

/// Against real `openssl s_server -rev` (it answers each line reversed,
/// so a palindrome is its echo): the handshake interoperates, the pinned
/// fingerprint is the one openssl computes, and a TLS 1.2-only server
/// is reported as such.
#[test]
fn interoperates_with_openssl_s_server() {
    if !require_tool("interoperates_with_openssl_s_server", "openssl") {
        return;
    }
    let pki = Pki::new("openssl ca");
    for (flag, version) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let port = crate::support::closed_port();
        let child = Command::new("openssl")
            .args(["s_server", "-quiet", "-rev", flag, "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&pki.server.cert_pem)
            .arg("-key")
            .arg(&pki.server.key_pem)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed (by its PID) and reaped when the test ends, even on failure.
        let server = crate::support::KillOnDrop(child);
        let target = format!("127.0.0.1:{port}");
        assert!(
            wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(
                &target
            )
            .is_ok()),
            "openssl s_server did not listen"
        );
        let mut cmd = Command::new(CLIENT);
        cmd.args([
            "send",
            "--json",
            "--tls",
            "--tls-fingerprint",
            &pki.server.fingerprint(),
            &target,
            "step on no pets\n",
        ]);
        let exit = run_cmd_to_exit(cmd, Duration::from_secs(30));
        drop(server);
        assert_eq!(exit.code(), Some(0), "{flag}\n{}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(doc["tls"]["version"], version, "{doc}");
        assert_eq!(doc["bytes_received"], 16, "{doc}");
    }
}

/// `ping --tls`: every probe echoes through TLS; the handshake is timed
/// apart from the connect, once per connection (each probe's with
/// `--reconnect`).
#[test]
fn ping_over_tls_times_the_handshake_apart() {
    let pki = Pki::new("ping ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("localhost:{}", peer.addr().port());
    let exit = run(&with(
        &ca_args(&pki),
        &[
            "ping", "--json", "-c", "3", "-i", "0.02", "-s", "100", &target,
        ],
    ));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["received"], 3, "{doc}");
    assert_eq!(doc["connect_ms"]["count"], 1, "{doc}");
    assert_eq!(doc["tls_handshake_ms"]["count"], 1, "{doc}");
    assert!(num(&doc, &["tls_handshake_ms", "min"]) > 0.0, "{doc}");
    assert_eq!(doc["tls"]["version"], "TLSv1.3", "{doc}");
    assert_eq!(doc["tls"]["sni"], "localhost", "{doc}");
    assert_eq!(peer.echoed.load(std::sync::atomic::Ordering::Relaxed), 300);

    let exit = run(&with(
        &ca_args(&pki),
        &["ping", "--reconnect", "-c", "3", "-i", "0.02", &target],
    ));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let text = exit.stdout.join("\n");
    assert_eq!(
        exit.stdout
            .iter()
            .filter(|l| l.starts_with("TLS handshake in "))
            .count(),
        1,
        "{text}"
    );
    assert!(text.contains("3 probes sent, 3 received"), "{text}");
    assert!(text.contains("\ntls handshake min/avg/max = "), "{text}");

    let exit = run(&with(
        &[],
        &[
            "ping",
            "--tls",
            "--tls-fingerprint",
            &pki.client.fingerprint(),
            "-c",
            "2",
            &target,
        ],
    ));
    assert_eq!(exit.code(), Some(11), "{}", exit.describe());
}

/// `bench --tls`: the counted messages and bytes are exact, every byte
/// checked, the peer echoed as many plaintext bytes as were sent, and the
/// probe connection's handshake heads the report.
#[test]
fn bench_over_tls_counts_exactly() {
    let _one = crate::support::one_at_a_time();
    let pki = Pki::new("bench ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("localhost:{}", peer.addr().port());
    let exit = run(&with(
        &ca_args(&pki),
        &[
            "bench", "--json", "-c", "4", "-d", "4", "-n", "4000", "-s", "100", &target,
        ],
    ));
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let doc = json_of(&exit);
    assert_eq!(doc["messages"], 4000, "{doc}");
    assert_eq!(doc["bytes"], 400_000, "{doc}");
    assert_eq!(doc["connected"], 4, "{doc}");
    assert_eq!(doc["mismatches"], 0, "{doc}");
    assert!(num(&doc, &["latency_us", "min"]) > 0.0, "{doc}");
    assert_eq!(doc["tls"]["version"], "TLSv1.3", "{doc}");
    assert!(num(&doc, &["tls", "handshake_ms"]) > 0.0, "{doc}");
    assert!(wait_until(Duration::from_secs(5), || {
        peer.echoed.load(std::sync::atomic::Ordering::Relaxed) == 400_000
    }));
}

/// `bench --tls --bulk`: records larger than any read, through the
/// bounded in-flight engine (copying: splicing would bypass TLS) and the
/// unbounded one (threads); what came back verified is what the peer
/// echoed.
#[test]
fn bench_bulk_over_tls_verifies_every_byte() {
    let _one = crate::support::one_at_a_time();
    let pki = Pki::new("bulk ca");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("127.0.0.1:{}", peer.addr().port());
    let bytes = 64.0 * 65536.0;
    // Bounded, then unbounded: a writer and a reader thread per connection
    // share each TLS connection. Every byte checked, the count exact.
    for in_flight in ["1M", "unbounded"] {
        peer.echoed.store(0, std::sync::atomic::Ordering::Relaxed);
        let exit = run(&with(
            &ca_args(&pki),
            &[
                "bench",
                "--json",
                "--bulk",
                "-c",
                "2",
                "-n",
                "64",
                "--in-flight",
                in_flight,
                &target,
            ],
        ));
        assert_eq!(exit.code(), Some(0), "{in_flight}: {}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(num(&doc, &["bytes"]), bytes, "{doc}");
        assert_eq!(
            doc["in_flight"]["unbounded"],
            in_flight == "unbounded",
            "{doc}"
        );
        assert_eq!(doc["mismatches"], 0, "{doc}");
        assert!(num(&doc, &["mb_per_s"]) > 0.0, "{doc}");
        assert!(wait_until(Duration::from_secs(5), || {
            peer.echoed.load(std::sync::atomic::Ordering::Relaxed) as f64 == bytes
        }));
    }
    // Stopped by time: the coordinator's shutdown cuts writes short, and
    // no byte may come back that was not counted as written.
    for _ in 0..3 {
        let exit = run(&with(
            &ca_args(&pki),
            &[
                "bench",
                "--json",
                "--bulk",
                "-c",
                "2",
                "--duration",
                "0.3",
                "--warmup",
                "0",
                "--in-flight",
                "unbounded",
                &target,
            ],
        ));
        assert_eq!(exit.code(), Some(0), "{}", exit.describe());
        let doc = json_of(&exit);
        assert_eq!(doc["mismatches"], 0, "{doc}");
        assert!(num(&doc, &["bytes"]) > 0.0, "{doc}");
    }
}

/// A bench whose server refuses the certificate fails at once, with the
/// TLS exit code, not after its duration.
#[test]
fn bench_refuses_an_untrusted_server_up_front() {
    let pki = Pki::new("bench pin");
    let peer = TlsPeer::start(&pki, PeerOptions::default());
    let target = format!("127.0.0.1:{}", peer.addr().port());
    let exit = run(&with(
        &[],
        &[
            "bench",
            "--tls",
            "--tls-fingerprint",
            &pki.ca.fingerprint(),
            "--duration",
            "30",
            &target,
        ],
    ));
    assert_eq!(exit.code(), Some(11), "{}", exit.describe());
}
