//! SIGHUP reloads the certificate and key: new handshakes get the new
//! certificate, open connections keep echoing, a bad file keeps the old.

use std::time::Duration;

use super::*;

// Under traffic: a connection with bytes in flight at the reload gets all
// of them back; a new client sees the new certificate's fingerprint (the
// one the RELOAD line names); a broken key file is logged and the
// certificate before it stays in use.
#[test]
fn sighup_reloads_certificate_under_traffic() {
    let _turn = one_at_a_time();
    let pki = Pki::new("echo test CA");
    let first = pki.leaf("first");
    let second = pki.leaf("second");
    let cert = pki.dir.join("served.pem");
    let key = pki.dir.join("served.key_pem");
    std::fs::copy(&first.cert_pem, &cert).unwrap();
    std::fs::copy(&first.key_pem, &key).unwrap();
    let (srv, addr) = start_tls(&[
        "--tls-cert",
        s(&cert),
        "--tls-key",
        s(&key),
        "--buffer-size",
        "16K",
    ]);
    let trust = trusting(&pki, None);

    let mut busy = TlsClient::connect(addr, trust.clone(), "localhost").unwrap();
    assert_eq!(
        fingerprint(busy.server_cert().as_ref()),
        fingerprint(first.der.as_ref())
    );
    let data = Rng::new(20).bytes(512 * 1024);
    let sent = busy.write_until_blocked(&data, Duration::from_millis(200));

    std::fs::copy(&second.cert_pem, &cert).unwrap();
    std::fs::copy(&second.key_pem, &key).unwrap();
    let before = srv.line_count();
    srv.signal("HUP");
    let (_, line) = srv.wait_for_line_from(before, |l| l.contains("[RELOAD]"), START_TIMEOUT);
    let new_print = fingerprint(second.der.as_ref());
    assert!(
        line.contains(&format!("new handshakes use certificate {new_print}")),
        "{line}"
    );

    let fresh = TlsClient::connect(addr, trust.clone(), "localhost").unwrap();
    assert_eq!(
        fingerprint(fresh.server_cert().as_ref()),
        new_print,
        "new handshake"
    );
    assert_same(
        &busy.echo(&data, sent, Duration::from_secs(30)),
        &data,
        "across the reload",
    );

    // A key that is not a key: logged, the second certificate stays.
    std::fs::write(&key, b"not a key\n").unwrap();
    let before = srv.line_count();
    srv.signal("HUP");
    let (_, line) = srv.wait_for_line_from(before, |l| l.contains("[RELOAD]"), START_TIMEOUT);
    assert!(line.contains("not reloaded"), "{line}");
    assert!(
        line.contains(&new_print) && line.contains("served.key_pem"),
        "{line}"
    );
    let after_bad = TlsClient::connect(addr, trust, "localhost").unwrap();
    assert_eq!(fingerprint(after_bad.server_cert().as_ref()), new_print);
    assert_same(
        &busy.echo(b"still", 0, Duration::from_secs(10)),
        b"still",
        "still",
    );
}
