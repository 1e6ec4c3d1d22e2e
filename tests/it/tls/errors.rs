//! What a TLS server does with bad input and bad files: clients that are
//! not TLS, handshakes that never finish, closes without close_notify, and
//! certificates or keys that cannot be used at start.

use std::io::Write;
use std::time::{Duration, Instant};

use super::*;

// A plain-TCP client and one sending random bytes to the TLS port are
// closed with the reason logged, while a TLS client keeps echoing; a TLS
// client on the plain port gets its own bytes back (the plain port
// echoes), so its handshake fails and nothing else is disturbed.
#[test]
fn not_tls_on_the_tls_port_is_closed_with_a_reason() {
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf("server");
    let (srv, tls_addr) = start_tls(&[
        "--tls-cert",
        leaf.cert(),
        "--tls-key",
        leaf.key(),
        "--tls-port",
        "0",
    ]);
    let mut good = TlsClient::connect(tls_addr, trusting(&pki, None), "localhost").unwrap();
    assert_same(
        &good.echo(b"before", 0, Duration::from_secs(10)),
        b"before",
        "before",
    );

    let mut plain = connect(tls_addr);
    let plain_addr = plain.local_addr().unwrap();
    plain.write_all(b"hello, I speak plain TCP\n").unwrap();
    let alert = read_until_closed(&mut plain, Duration::from_secs(10));
    assert!(
        alert.is_empty() || alert[0] == 0x15,
        "only a TLS alert may come back: {alert:?}"
    );
    let refused = srv.wait_for(
        &format!("[TLS] {plain_addr} handshake refused: "),
        START_TIMEOUT,
    );
    assert!(refused.contains("InvalidContentType"), "{refused}");

    let mut noise = connect(tls_addr);
    let noise_addr = noise.local_addr().unwrap();
    let mut junk = Rng::new(0x5eed_0f7e57).bytes(4096);
    // Not 0x16 (a handshake record, which would wait for the rest of it).
    junk[0] = 0x42;
    let _ = noise.write_all(&junk);
    read_until_closed(&mut noise, Duration::from_secs(10));
    srv.wait_for(
        &format!("[TLS] {noise_addr} handshake refused: "),
        START_TIMEOUT,
    );
    let gone = srv.wait_disconnect(noise_addr, Duration::from_secs(10));
    assert!(gone.reason.starts_with("error: TLS: "), "{}", gone.reason);

    // TLS on the plain port: the echo of its ClientHello is no ServerHello.
    let wrong_port = TlsClient::connect(srv.addr(), trusting(&pki, None), "localhost");
    assert!(wrong_port.is_err(), "handshake with an echo succeeded");
    echo_roundtrip(&mut connect(srv.addr()), b"plain port unharmed");

    assert_same(
        &good.echo(b"after", 0, Duration::from_secs(10)),
        b"after",
        "after",
    );
}

// A connection that opens TCP and sends nothing, and one that stops in the
// middle of its ClientHello, are closed by --handshake-timeout (not by the
// idle timeout), logged; a finished handshake is not subject to it.
#[test]
fn handshake_timeout_closes_unfinished_handshakes() {
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf("server");
    let (srv, addr) = start_tls(&[
        "--tls-cert",
        leaf.cert(),
        "--tls-key",
        leaf.key(),
        "--handshake-timeout",
        "0.5",
        "--idle-timeout",
        "60",
    ]);
    let mut finished = TlsClient::connect(addr, trusting(&pki, None), "localhost").unwrap();
    let began = Instant::now();
    let mut silent = connect(addr);
    let mut truncated = connect(addr);
    // The first bytes of a TLS 1.2 ClientHello record: a header promising
    // 512 bytes, then 5 of them.
    truncated
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03])
        .unwrap();
    for (name, sock) in [("silent", &mut silent), ("truncated", &mut truncated)] {
        let local = sock.local_addr().unwrap();
        read_until_closed(sock, Duration::from_secs(10));
        let gone = srv.wait_disconnect(local, Duration::from_secs(10));
        assert_eq!(gone.reason, "error: TLS handshake timeout (0.5s)", "{name}");
        srv.wait_for(
            &format!("[TLS] {local} handshake not finished within 0.5s"),
            START_TIMEOUT,
        );
    }
    let waited = began.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
    std::thread::sleep(Duration::from_millis(700));
    assert_same(
        &finished.echo(b"still here", 0, Duration::from_secs(10)),
        b"still here",
        "finished handshake outlives the timeout",
    );
}

// A client that ends TCP without close_notify still gets its whole echo;
// the log says how it closed.
#[test]
fn close_without_close_notify_is_logged() {
    let (srv, addr) = start_tls(&["--tls-self-signed"]);
    let mut client = TlsClient::connect(addr, accepting_any(), "localhost").unwrap();
    assert_same(
        &client.echo(b"abc", 0, Duration::from_secs(10)),
        b"abc",
        "echo",
    );
    let local = client.sock.local_addr().unwrap();
    client.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let gone = srv.wait_disconnect(local, Duration::from_secs(10));
    assert_eq!(gone.reason, "peer closed");
    srv.wait_for(
        &format!("[TLS] {local} closed TCP without a TLS close_notify"),
        START_TIMEOUT,
    );
}

// Files that cannot be used stop the start with exit code 1 and a message
// naming the flag, the file and what is wrong; flags that do not go
// together are a command-line error (2).
#[test]
fn unusable_files_stop_the_start() {
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf("server");
    let other = pki.leaf("other");
    let missing = pki.dir.join("missing.pem");
    let garbage = pki.file("garbage.pem", b"this is not PEM at all\n");
    let bad_base64 = pki.file(
        "bad.pem",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    );
    let not_a_cert = pki.file(
        "notcert.pem",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["--tls-cert", s(&missing), "--tls-key", leaf.key()],
            1,
            "--tls-cert",
        ),
        (
            vec!["--tls-cert", leaf.cert(), "--tls-key", s(&missing)],
            1,
            "No such file",
        ),
        (
            vec!["--tls-cert", &garbage, "--tls-key", leaf.key()],
            1,
            "no certificate in it",
        ),
        (
            vec!["--tls-cert", &bad_base64, "--tls-key", leaf.key()],
            1,
            "not valid PEM",
        ),
        (
            vec!["--tls-cert", &not_a_cert, "--tls-key", leaf.key()],
            1,
            "not a valid certificate",
        ),
        (
            vec!["--tls-cert", leaf.cert(), "--tls-key", leaf.cert()],
            1,
            "no private key in it",
        ),
        (
            vec!["--tls-cert", leaf.cert(), "--tls-key", other.key()],
            1,
            "does not match the certificate",
        ),
        (
            vec!["--tls-self-signed", "--tls-client-ca", &garbage],
            1,
            "--tls-client-ca",
        ),
        (
            vec!["--tls-cert", leaf.cert()],
            2,
            "--tls-cert needs --tls-key",
        ),
        (
            vec![
                "--tls-self-signed",
                "--tls-cert",
                leaf.cert(),
                "--tls-key",
                leaf.key(),
            ],
            2,
            "--tls-self-signed",
        ),
        (vec!["--tls-port", "0"], 2, "--tls-port needs"),
    ];
    for (args, code, says) in cases {
        let mut all = LOOPBACK_ARGS.to_vec();
        all.extend_from_slice(&args);
        let exit = run_to_exit(&all, Duration::from_secs(10));
        assert_eq!(exit.code(), Some(code), "{args:?}: {}", exit.stderr);
        assert!(exit.stderr.contains(says), "{args:?}: {}", exit.stderr);
        if code == 1 {
            assert!(exit.stderr.starts_with("error: "), "{}", exit.stderr);
            assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
        }
    }
}

// An expired certificate is served (clients decide), with a warning at
// start that gives its date.
#[test]
fn expired_certificate_is_a_warning_with_its_date() {
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf_with("old", |params| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 3, 4);
    });
    let (srv, addr) = start_tls(&["--tls-cert", leaf.cert(), "--tls-key", leaf.key()]);
    let warning = srv.wait_for("the TLS certificate expired on", START_TIMEOUT);
    assert!(warning.contains("2021-03-04T00:00:00Z"), "{warning}");
    assert!(warning.contains("WARN"), "{warning}");
    let mut client = TlsClient::connect(addr, accepting_any(), "localhost").unwrap();
    assert_same(
        &client.echo(b"old", 0, Duration::from_secs(10)),
        b"old",
        "echo",
    );
}
