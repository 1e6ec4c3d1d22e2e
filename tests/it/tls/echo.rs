//! Echo through TLS: exact bytes, backpressure, plaintext counters, the
//! handshake's facts in the log and the endpoint, both ports at once, and
//! the self-signed mode's fingerprint.

use std::time::Duration;

use super::*;
use crate::support::endpoint;

// TLS on --tls-port beside plain TCP on --port: both echo exactly; 1 MB
// written without reading stops being taken (the server stops reading at
// its buffer, through rustls) and then comes back whole; the log has the
// handshake's version and suite and counts plaintext bytes.
#[test]
fn rustls_client_gets_exact_echo_beside_plain_port() {
    let _turn = one_at_a_time();
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf("server");
    let (srv, tls_addr) = start_tls(&[
        "--tls-cert",
        leaf.cert(),
        "--tls-key",
        leaf.key(),
        "--tls-port",
        "0",
        "--buffer-size",
        "16K",
    ]);
    assert_ne!(tls_addr.port(), srv.port(), "TLS beside the plain port");
    echo_roundtrip(&mut connect(srv.addr()), b"plain still echoes\n");

    // A small receive buffer: the echo the client does not read backs up
    // into the server soon.
    let sock = connect_with_rcvbuf(tls_addr, 64 * 1024);
    let mut client = TlsClient::over(sock, trusting(&pki, None), "localhost");
    client.handshake().unwrap();
    let small = b"hello over TLS\n";
    assert_same(
        &client.echo(small, 0, Duration::from_secs(10)),
        small,
        "small",
    );

    let one_mb = Rng::new(1).bytes(1 << 20);
    assert_same(
        &client.echo(&one_mb, 0, Duration::from_secs(30)),
        &one_mb,
        "1 MB through TLS",
    );
    // The kernel's buffers on loopback take megabytes; past them, the
    // server must stop reading and hold no more than its bound.
    let baseline = srv.rss_kib();
    let data = Rng::new(2).bytes(32 << 20);
    let sent = client.write_until_blocked(&data, Duration::from_millis(700));
    assert!(
        sent < data.len(),
        "all {sent} bytes taken by a server whose client did not read"
    );
    let grown = srv.rss_kib().saturating_sub(baseline);
    assert!(
        grown < 8 * 1024,
        "server RSS grew {grown} KiB while its client did not read"
    );
    let got = client.echo(&data, sent, Duration::from_secs(60));
    assert_same(&got, &data, "32 MB through TLS");

    let client_addr = client.sock.local_addr().unwrap();
    let tls_line = srv.wait_for(&format!("[TLS] {client_addr} TLSv1.3"), START_TIMEOUT);
    assert!(tls_line.contains("TLS13_"), "{tls_line}");
    client.conn.send_close_notify();
    let _ = client.turn();
    let _ = client.sock.shutdown(std::net::Shutdown::Write);
    let gone = srv.wait_disconnect(client_addr, Duration::from_secs(10));
    let total = (small.len() + one_mb.len() + data.len()) as u64;
    assert_eq!((gone.rx, gone.tx), (total, total), "plaintext counted");
    assert_eq!(gone.reason, "peer closed", "{}", srv.dump());
}

// `--tls-self-signed`: the fingerprint in the banner is the SHA-256 of
// the certificate a client gets, which names localhost; the echo works.
#[test]
fn self_signed_banner_fingerprint_is_the_served_certificate() {
    let (srv, addr) = start_tls(&["--tls-self-signed"]);
    assert_eq!(addr, srv.addr(), "TLS on --port without --tls-port");
    let banner = srv.wait_for("TLS on ", START_TIMEOUT);
    let mut client = TlsClient::connect(addr, accepting_any(), "localhost").unwrap();
    let served = fingerprint(client.server_cert().as_ref());
    assert!(
        banner.ends_with(&format!("SHA-256 fingerprint {served}")),
        "banner {banner:?}, served {served}"
    );
    assert!(banner.contains("self-signed for localhost"), "{banner}");
    assert_same(
        &client.echo(b"lab", 0, Duration::from_secs(10)),
        b"lab",
        "self-signed echo",
    );
}

// The endpoint shows an open TLS connection's version, suite and SNI, and
// counts handshakes by result.
#[test]
fn endpoint_shows_tls_facts_and_counts_handshakes() {
    let pki = Pki::new("echo test CA");
    let leaf = pki.leaf("server");
    let (srv, metrics) = endpoint::start(&["--tls-cert", leaf.cert(), "--tls-key", leaf.key()]);
    let addr = srv.addr();
    let mut client = TlsClient::connect(addr, trusting(&pki, None), "localhost").unwrap();
    assert_same(&client.echo(b"x", 0, Duration::from_secs(10)), b"x", "echo");
    // One that is not TLS at all.
    let mut plain = connect(addr);
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    read_until_closed(&mut plain, Duration::from_secs(10));

    let stats = endpoint::get(metrics, "/stats.json").text();
    assert!(
        stats.contains(r#""tls":{"version":"TLSv1.3","suite":"TLS13_"#),
        "{stats}"
    );
    assert!(stats.contains(r#""sni":"localhost""#), "{stats}");
    let prom = endpoint::get(metrics, "/metrics").text();
    assert!(
        prom.contains("echo_server_tls_handshakes_total{result=\"ok\"} 1"),
        "{prom}"
    );
    assert!(
        prom.contains("echo_server_tls_handshakes_total{result=\"failed\"} 1"),
        "{prom}"
    );
}

// Half-close: a client that sends 8 MB (more than the kernel buffers take), then close_notify and FIN before
// reading a byte, gets all of it back, then the server's close_notify
// (a clean end, not a truncation), then EOF.
#[test]
fn half_close_gets_the_whole_echo_then_close_notify() {
    let _turn = one_at_a_time();
    let (srv, addr) = start_tls(&["--tls-self-signed", "--buffer-size", "16K"]);
    let sock = connect_with_rcvbuf(addr, 32 * 1024);
    let mut client = TlsClient::over(sock, accepting_any(), "localhost");
    client.handshake().unwrap();
    let data = Rng::new(3).bytes(8 << 20);
    let mut sent = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    let mut closed = false;
    while sent < data.len() || client.conn.wants_write() {
        assert!(
            std::time::Instant::now() < deadline,
            "send stalled at {sent}"
        );
        if sent < data.len() && !client.conn.wants_write() {
            let end = data.len().min(sent + 16384);
            sent += client.conn.writer().write(&data[sent..end]).unwrap();
            if sent == data.len() {
                client.conn.send_close_notify();
            }
        }
        // Reads only what keeps the server moving; most of the echo waits.
        match client.turn() {
            Ok(_) => {}
            Err(e) => panic!("during the send: {e}"),
        }
        client.take(&mut got);
    }
    client.sock.shutdown(std::net::Shutdown::Write).unwrap();
    while !closed {
        assert!(
            std::time::Instant::now() < deadline,
            "echo stalled: got {} of {}",
            got.len(),
            data.len()
        );
        match client.turn() {
            Ok(moved) => {
                if !moved {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Err(e) if e == "eof" => closed = true,
            Err(e) => panic!("reading the echo: {e}"),
        }
        client.take(&mut got);
    }
    assert_same(&got, &data, "echo before the close");
    let mut rest = [0u8; 1];
    assert_eq!(
        client.conn.reader().read(&mut rest).map_err(|e| e.kind()),
        Ok(0),
        "the server ended without close_notify"
    );
    let local = client.sock.local_addr().unwrap();
    let gone = srv.wait_disconnect(local, Duration::from_secs(10));
    assert_eq!(gone.reason, "peer closed");
}
