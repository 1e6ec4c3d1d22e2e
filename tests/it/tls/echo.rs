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
    let pki = Pki::new();
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
    let pki = Pki::new();
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
