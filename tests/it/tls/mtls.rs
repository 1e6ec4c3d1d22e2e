//! `--tls-client-ca`: mutual TLS with rustls clients.

use std::io::Write;
use std::time::Duration;

use super::*;
use crate::support::endpoint;

// A client with a certificate from the CA is served; one without a
// certificate and one with a certificate from another CA are refused, the
// reason logged and counted as client_cert; the served one is unharmed.
#[test]
fn client_certificates_are_required() {
    let pki = Pki::new("echo test CA");
    let server = pki.leaf("server");
    let client = pki.leaf("client");
    let stranger_pki = Pki::new("echo test CA");
    let stranger = stranger_pki.leaf("stranger");
    let (srv, metrics) = endpoint::start(&[
        "--tls-cert",
        server.cert(),
        "--tls-key",
        server.key(),
        "--tls-client-ca",
        pki.ca(),
    ]);
    let addr = srv.addr();
    let banner = srv.wait_for("TLS on ", START_TIMEOUT);
    assert!(banner.contains("client certificates required"), "{banner}");

    let mut good = TlsClient::connect(addr, trusting(&pki, Some(&client)), "localhost").unwrap();
    assert_same(
        &good.echo(b"mutual", 0, Duration::from_secs(10)),
        b"mutual",
        "mTLS echo",
    );
    let good_addr = good.sock.local_addr().unwrap();
    let line = srv.wait_for(&format!("[TLS] {good_addr} TLSv1.3"), START_TIMEOUT);
    assert!(
        line.contains(&format!(
            "client certificate {}",
            fingerprint(client.der.as_ref())
        )),
        "{line}"
    );

    for (what, leaf, says) in [
        ("no certificate", None, "peer sent no certificates"),
        ("another CA's", Some(&stranger), "invalid peer certificate"),
    ] {
        let mut c = TlsClient::start(addr, trusting(&pki, leaf), "localhost");
        let refused = c.sock.local_addr().unwrap();
        // TLS 1.3: the client may finish before the server's verdict
        // arrives; its first bytes then meet the alert.
        if c.handshake().is_ok() {
            let _ = c.conn.writer().write_all(b"let me in");
            for _ in 0..200 {
                if c.turn().is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let line = srv.wait_for(&format!("[TLS] {refused} handshake refused"), START_TIMEOUT);
        assert!(
            line.to_lowercase().contains(&says.to_lowercase()),
            "{what}: {line}"
        );
        let gone = srv.wait_disconnect(refused, Duration::from_secs(10));
        assert_eq!(gone.rx, 0, "{what}: bytes of a refused client were taken");
    }
    let prom = endpoint::get(metrics, "/metrics").text();
    assert!(
        prom.contains("echo_server_tls_handshakes_total{result=\"client_cert\"} 2"),
        "{prom}"
    );
    assert!(
        prom.contains("echo_server_tls_handshakes_total{result=\"ok\"} 1"),
        "{prom}"
    );
    assert_same(
        &good.echo(b"still", 0, Duration::from_secs(10)),
        b"still",
        "after",
    );
}
