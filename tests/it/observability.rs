//! The metrics endpoint (issue #5): `/metrics` through the reference
//! Prometheus parser, `/stats.json`, JSON logs, HTTP hardening, scrapes
//! under echo load, and the Grafana dashboard's metric names (the HTML
//! dashboard's tests are in dashboard.rs). Every figure is checked against
//! traffic the test itself generated.

use crate::support::endpoint::{get, read_reply, start};
use crate::support::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const LOG_WAIT: Duration = Duration::from_secs(10);
/// The endpoint's `HTTP_TIMEOUT` (src/server/endpoint.rs); the server
/// closes a client within one 100 ms timer tick after it.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `request` and reads everything until the server closes.
fn exchange_to_close(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    String::from_utf8_lossy(&read_to_eof(&mut s)).into_owned()
}

/// The test traffic: 7 echo connections and 1234 bytes in all; the first
/// five close (1034 bytes between them), the last two stay open with 100
/// bytes each. Returns the open ones.
fn seven_connections_1234_bytes(srv: &Server) -> Vec<TcpStream> {
    let sizes = [207usize, 207, 207, 207, 206];
    assert_eq!(sizes.iter().sum::<usize>() + 200, 1234);
    for (i, n) in sizes.into_iter().enumerate() {
        let mut c = connect(srv.addr());
        let local = c.local_addr().unwrap();
        echo_roundtrip(&mut c, &Rng::new(i as u64).bytes(n));
        drop(c);
        srv.wait_disconnect(local, LOG_WAIT);
    }
    (0..2)
        .map(|i| {
            let mut c = connect(srv.addr());
            echo_roundtrip(&mut c, &Rng::new(100 + i).bytes(100));
            c
        })
        .collect()
}

/// Parses exposition text with prometheus_client's parser; None (after a
/// SKIP line) when python3 or the module is missing.
fn prometheus_parse(test: &str, text: &str) -> Option<Value> {
    if !require_tool(test, "python3") {
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/support/prom_parse.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script);
    let exit = run_with_input(cmd, text.as_bytes(), Duration::from_secs(60));
    match exit.code() {
        Some(0) => Some(serde_json::from_str(&exit.stdout.join("\n")).expect("parser JSON")),
        Some(3) => {
            skip(test, "python module prometheus_client not installed");
            None
        }
        _ => panic!(
            "the Prometheus parser rejected /metrics:\n{}\n{text}",
            exit.describe()
        ),
    }
}

/// The value of the sample `name` with `labels` in parsed families.
fn sample(families: &Value, name: &str, labels: &[(&str, &str)]) -> f64 {
    for family in families.as_object().unwrap().values() {
        for s in family["samples"].as_array().unwrap() {
            let matches = s["name"] == name
                && labels
                    .iter()
                    .all(|(k, v)| s["labels"][*k].as_str() == Some(*v));
            if matches {
                return s["value"].as_f64().unwrap();
            }
        }
    }
    panic!("no sample {name}{labels:?} in {families}");
}

#[test]
fn metrics_counters_match_generated_traffic() {
    // Proves: /metrics parses with the reference Prometheus parser, every
    // family has HELP and TYPE, and after 7 connections and 1234 bytes the
    // counters say exactly 7 and 1234 (HTTP scrapes not counted).
    let (srv, maddr) = start(&[]);
    let _open = seven_connections_1234_bytes(&srv);
    let reply = get(maddr, "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = reply.text();
    let Some(families) = prometheus_parse("metrics_counters_match_generated_traffic", &text) else {
        return;
    };
    let count = |name, labels: &[(&str, &str)]| sample(&families, name, labels);
    assert_eq!(count("echo_connections_accepted_total", &[]), 7.0);
    assert_eq!(count("echo_bytes_received_total", &[]), 1234.0);
    assert_eq!(count("echo_bytes_sent_total", &[]), 1234.0);
    assert_eq!(count("echo_connections_active", &[]), 2.0);
    assert_eq!(count("echo_connections_peak", &[]), 2.0);
    assert_eq!(count("echo_bytes_buffered", &[]), 0.0);
    assert_eq!(
        count("echo_connections_closed_total", &[("reason", "peer")]),
        5.0
    );
    assert_eq!(
        count("echo_connections_closed_total", &[("reason", "reset")]),
        0.0
    );
    assert_eq!(
        count("echo_connections_rejected_total", &[("reason", "limit")]),
        0.0
    );
    assert_eq!(count("echo_connection_duration_seconds_count", &[]), 5.0);
    assert_eq!(count("echo_connection_received_bytes_count", &[]), 5.0);
    assert_eq!(count("echo_connection_received_bytes_sum", &[]), 1034.0);
    assert_eq!(
        count("echo_connection_received_bytes_bucket", &[("le", "+Inf")]),
        5.0
    );
    assert_eq!(count("echo_tcp_srtt_seconds_count", &[]), 5.0);
    assert_eq!(count("echo_tcp_retransmitted_segments_total", &[]), 0.0);
    assert!(count("process_resident_memory_bytes", &[]) > 1e6);
    assert!(count("process_open_fds", &[]) >= 5.0);
    let start = count("process_start_time_seconds", &[]);
    assert!(
        (start - now_millis() as f64 / 1000.0).abs() < 600.0,
        "{start}"
    );
    assert!(count("process_cpu_seconds_total", &[]) >= 0.0);
    // Every family came with HELP and a TYPE the parser understood.
    for (name, family) in families.as_object().unwrap() {
        assert!(!family["help"].as_str().unwrap().is_empty(), "{name}");
        assert_ne!(family["type"], "unknown", "{name}");
    }
    assert!(text.contains("# TYPE echo_connection_duration_seconds histogram"));
}

#[test]
fn metrics_carry_build_info_max_fds_and_fine_srtt_buckets() {
    // Proves: /metrics names the server's version (echo_server_build_info),
    // its open-files limit (process_max_fds, as the kernel reports it for
    // the process), and the srtt histogram starts at 10 µs with the
    // buckets a loopback or LAN connection needs; closed connections are
    // counted in it.
    let test = "metrics_carry_build_info_max_fds_and_fine_srtt_buckets";
    let (srv, maddr) = start(&[]);
    for i in 0..3 {
        let mut c = connect(srv.addr());
        let local = c.local_addr().unwrap();
        echo_roundtrip(&mut c, &Rng::new(i).bytes(100));
        drop(c);
        srv.wait_disconnect(local, LOG_WAIT);
    }
    let text = get(maddr, "/metrics").text();
    let Some(families) = prometheus_parse(test, &text) else {
        return;
    };
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        sample(&families, "echo_server_build_info", &[("version", version)]),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(&families, "process_max_fds", &[]),
        srv.nofile_soft_limit() as f64
    );
    let mut bounds = Vec::new();
    for s in families["echo_tcp_srtt_seconds"]["samples"]
        .as_array()
        .unwrap()
    {
        if s["name"] == "echo_tcp_srtt_seconds_bucket" {
            let le = s["labels"]["le"].as_str().unwrap();
            if le != "+Inf" {
                bounds.push(le.parse::<f64>().unwrap());
            }
        }
    }
    let micros: Vec<u64> = bounds.iter().map(|b| (b * 1e6).round() as u64).collect();
    assert_eq!(
        micros,
        [
            10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000,
            250_000, 500_000, 1_000_000
        ],
        "{text}"
    );
    assert_eq!(
        sample(&families, "echo_tcp_srtt_seconds_bucket", &[("le", "+Inf")]),
        3.0
    );
}

#[test]
fn favicon_is_answered_and_not_counted_as_not_found() {
    // Proves: the icon a browser asks for on its own is answered 200 with
    // an icon, so a dashboard viewer adds no 404s to
    // echo_http_requests_total.
    let (_srv, maddr) = start(&[]);
    for _ in 0..2 {
        let reply = get(maddr, "/favicon.ico");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["content-type"], "image/x-icon");
        // ICONDIR: reserved 0, type 1 (icon), at least one image.
        assert_eq!(&reply.body[..4], &[0, 0, 1, 0]);
        assert!(reply.body.len() > 22);
    }
    let text = get(maddr, "/metrics").text();
    assert!(
        text.contains("\necho_http_requests_total{code=\"404\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("\necho_http_requests_total{code=\"200\"} 2\n"),
        "{text}"
    );
}

#[test]
fn stats_json_matches_generated_traffic() {
    // Proves: /stats.json has the same totals and lists the active
    // connections with their peer, age, bytes, buffered, state and TCP_INFO.
    let (srv, maddr) = start(&[]);
    let open = seven_connections_1234_bytes(&srv);
    let reply = get(maddr, "/stats.json");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/json");
    let doc: Value = serde_json::from_slice(&reply.body).expect("valid JSON");
    assert_eq!(doc["connections"]["accepted"], 7);
    assert_eq!(doc["connections"]["active"], 2);
    assert_eq!(doc["connections"]["closed"]["peer"], 5);
    assert_eq!(doc["bytes"]["received"], 1234);
    assert_eq!(doc["bytes"]["sent"], 1234);
    assert_eq!(doc["bytes"]["buffered"], 0);
    let list = doc["active_connections"].as_array().unwrap();
    let peers: BTreeSet<String> = list
        .iter()
        .map(|c| c["peer"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = open
        .iter()
        .map(|c| c.local_addr().unwrap().to_string())
        .collect();
    assert_eq!(peers, want);
    for c in list {
        assert_eq!(
            (c["bytes_in"].as_u64(), c["bytes_out"].as_u64()),
            (Some(100), Some(100))
        );
        assert_eq!(c["buffered"], 0);
        assert_eq!(c["state"], "echoing");
        assert!(c["age_s"].as_f64().unwrap() >= 0.0);
        let tcp = &c["tcp"];
        let srtt = tcp["srtt_ms"].as_f64().expect("srtt sampled on request");
        assert!(srtt > 0.0 && srtt < 1000.0, "{tcp}");
        assert!(tcp["cwnd"].as_u64().unwrap() > 0);
        assert_eq!(tcp["retransmits"], 0);
    }
}

#[test]
fn streaming_connections_show_as_zero_copy() {
    // Proves: a client that streams (here any read that fills the buffer
    // switches) is counted by echo_connections_zero_copy_total and flagged
    // zero_copy in /stats.json, while a ping-pong client is not.
    const TOTAL: usize = 4 << 20;
    let (srv, maddr) = start(&["--splice-backlog", "0"]);
    let mut ping = connect(srv.addr());
    echo_roundtrip(&mut ping, b"small");
    // A small receive window and a late reader make the echo back up, so
    // the server's reads fill its buffer (see tests/it/zero_copy.rs).
    let mut bulk = connect_with_rcvbuf(srv.addr(), 16 * 1024);
    let mut w = bulk.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&vec![5u8; TOTAL]).unwrap());
    std::thread::sleep(std::time::Duration::from_millis(200));
    let echo = read_exactly(&mut bulk, TOTAL);
    writer.join().unwrap();
    assert!(echo.iter().all(|&b| b == 5));

    let doc: Value = serde_json::from_slice(&get(maddr, "/stats.json").body).unwrap();
    assert_eq!(doc["connections"]["zero_copy"], 1);
    let flag_of = |s: &TcpStream| {
        let peer = s.local_addr().unwrap().to_string();
        let list = doc["active_connections"].as_array().unwrap();
        let conn = list.iter().find(|c| c["peer"] == peer.as_str()).unwrap();
        conn["zero_copy"].clone()
    };
    assert_eq!(flag_of(&bulk), true);
    assert_eq!(flag_of(&ping), false);
    let text = get(maddr, "/metrics").text();
    assert!(
        text.contains("\necho_connections_zero_copy_total 1\n"),
        "{text}"
    );
}

#[test]
fn json_logs_carry_the_fields() {
    // Proves: --log-format json writes one JSON object per line with
    // timestamp, level, event, peer, bytes, duration and reason; the text
    // format's DISCONNECT line gains srtt and retransmits after its fields;
    // DATA (-v) and STATS lines carry their figures too.
    let mut srv = Server::start(&["--log-format", "json", "-v", "--stats-interval", "0.2"]);
    let mut c = connect(srv.addr());
    let local = c.local_addr().unwrap();
    echo_roundtrip(&mut c, &[7u8; 42]);
    drop(c);
    let line = srv.wait_for_line(
        |l| l.contains("\"event\":\"DISCONNECT\"") && l.contains(&local.to_string()),
        LOG_WAIT,
    );
    // Every line on stdout is one JSON object, the banner's too.
    let log_lines: Vec<String> = srv.lines();
    assert!(log_lines.len() >= 3, "{}", srv.dump());
    let banner: Vec<String> = log_lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|v| v["event"] == "BANNER")
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    assert!(banner[0].starts_with("Echo Server v"), "{banner:?}");
    assert!(
        banner.iter().any(|l| l.starts_with("Listening on ")),
        "{banner:?}"
    );
    for l in &log_lines {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        let ts = v["timestamp"].as_str().unwrap();
        assert!(parse_ts_millis(ts).is_some(), "{ts}");
        assert!(v["level"].is_string() && v["event"].is_string() && v["message"].is_string());
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["peer"], local.to_string());
    assert_eq!(
        (v["bytes_in"].as_u64(), v["bytes_out"].as_u64()),
        (Some(42), Some(42))
    );
    assert!(v["duration_s"].as_f64().unwrap() >= 0.0);
    assert_eq!(v["reason"], "peer closed");
    assert!(v["srtt_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(v["retransmits"], 0);
    let connect_line = log_lines
        .iter()
        .find(|l| l.contains("\"event\":\"CONNECT\""))
        .unwrap();
    let v: Value = serde_json::from_str(connect_line).unwrap();
    assert_eq!(v["peer"], local.to_string());
    // The DATA lines of that connection add up to its 42 bytes each way.
    let data: Vec<Value> = log_lines
        .iter()
        .filter(|l| l.contains("\"event\":\"DATA\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["peer"] == local.to_string())
        .collect();
    let sum = |key: &str| data.iter().map(|v| v[key].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("bytes_in"), sum("bytes_out")), (42, 42), "{data:?}");
    let stats = srv.wait_for_line(
        |l| l.contains("\"event\":\"STATS\"") && l.contains("\"connections_total\":1"),
        LOG_WAIT,
    );
    let v: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        (
            v["bytes_in"].as_u64(),
            v["bytes_out"].as_u64(),
            v["connections_active"].as_u64()
        ),
        (Some(42), Some(42), Some(0)),
        "{stats}"
    );
    // The Summary is an object too, its counts as fields.
    let exit = srv.stop("INT", LOG_WAIT);
    for l in &exit.stdout {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{l}: {e}"));
    }
    let summary: Value = serde_json::from_str(exit.stdout.last().unwrap()).unwrap();
    assert_eq!(summary["event"], "SUMMARY");
    assert_eq!(
        (summary["served"].as_u64(), summary["bytes_in"].as_u64()),
        (Some(1), Some(42))
    );
    assert!(summary["uptime_s"].as_f64().unwrap() > 0.0);
    assert!(summary["message"]
        .as_str()
        .unwrap()
        .starts_with("Summary: 1 connections served"));

    // Text format: unchanged fields, then the path's figures.
    let srv = Server::start(&[]);
    let mut c = connect(srv.addr());
    let local = c.local_addr().unwrap();
    echo_roundtrip(&mut c, b"hello");
    drop(c);
    let d = srv.wait_disconnect(local, LOG_WAIT);
    assert_eq!((d.rx, d.tx, d.reason.as_str()), (5, 5, "peer closed"));
    let line = srv.wait_for(&format!("[DISCONNECT] {local}"), LOG_WAIT);
    let tail = line.rsplit_once(')').unwrap().1;
    assert!(
        tail.starts_with(" srtt: ") && tail.contains(" ms, rttvar: "),
        "{line}"
    );
    assert!(tail.ends_with(", retransmits: 0"), "{line}");
}

#[test]
fn http_errors_keep_alive_and_no_echo_accounting() {
    // Proves: malformed → 400 and close, oversized → 431 and close, other
    // methods → 405 with Allow, unknown path → 404 on a kept-alive
    // connection, HEAD and /healthz work, several requests share one
    // connection, and none of it counts as an echo connection.
    let (srv, maddr) = start(&[]);
    let bad = exchange_to_close(maddr, b"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
    assert!(bad.contains("Connection: close\r\n"));
    let mut huge = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 20_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let big = exchange_to_close(maddr, &huge);
    assert!(big.starts_with("HTTP/1.1 431 "), "{big}");

    let mut s = connect(maddr);
    s.write_all(b"POST /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let r = read_reply(&mut s);
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET, HEAD");
    s.write_all(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert_eq!(read_reply(&mut s).status, 404);
    // Pipelined: both answered, in order, on the same connection.
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /healthz?probe=1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    for _ in 0..2 {
        let r = read_reply(&mut s);
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    }
    s.write_all(b"HEAD /stats.json HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1);
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("Content-Length: "));
    // HEAD sent no body: the next response starts right after.
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let page = String::from_utf8_lossy(&read_to_eof(&mut s)).into_owned();
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains("text/html") && page.contains("/stats.json"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "external asset"
    );

    let doc: Value = serde_json::from_slice(&get(maddr, "/stats.json").body).unwrap();
    assert_eq!(doc["connections"]["accepted"], 0, "HTTP counted as echo");
    assert_eq!(
        doc["http"]["accepted"], 4,
        "three exchanges and this request"
    );
    assert!(srv.events("CONNECT").is_empty(), "{}", srv.dump());
}

#[test]
fn slow_and_idle_http_clients_are_closed_by_the_timer() {
    // Proves: a client dribbling a request one byte every 300 ms, and an
    // idle keep-alive client, are both closed about HTTP_TIMEOUT after their
    // last complete request, while the echo side keeps working.
    let (srv, maddr) = start(&[]);
    let started = Instant::now();
    let mut idle = connect(maddr);
    write!(idle, "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    assert_eq!(read_reply(&mut idle).status, 200);
    let idle_answered = Instant::now();
    let mut slow = connect(maddr);
    slow.set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let slow_started = Instant::now();
    let request =
        b"GET /metrics HTTP/1.1\r\nHost: slow-client.localhost\r\nX-Pad: ...............\r\n\r\n";
    let mut closed_after = None;
    for b in request.iter().take(60) {
        if slow.write_all(&[*b]).is_err() {
            closed_after = Some(slow_started.elapsed());
            break;
        }
        thread::sleep(Duration::from_millis(300));
        if slow_started.elapsed() > HTTP_TIMEOUT + Duration::from_secs(3) {
            break;
        }
    }
    let slow_closed = match closed_after {
        Some(t) => t,
        None => {
            // The write may still have been accepted locally: the read
            // side shows the close.
            assert_eq!(
                expect_closed(&mut slow, Duration::from_secs(3)),
                Closed::Eof
            );
            slow_started.elapsed()
        }
    };
    assert!(
        slow_closed >= HTTP_TIMEOUT && slow_closed < HTTP_TIMEOUT + Duration::from_secs(3),
        "slow client closed after {slow_closed:?}"
    );
    assert_eq!(
        expect_closed(&mut idle, Duration::from_secs(3)),
        Closed::Eof
    );
    let idle_closed = idle_answered.elapsed();
    assert!(
        idle_closed >= HTTP_TIMEOUT - Duration::from_millis(200),
        "{idle_closed:?}"
    );
    // The echo side was never disturbed.
    let mut c = connect(srv.addr());
    echo_roundtrip(&mut c, b"still here");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn hundreds_of_concurrent_scrapes_during_echo_traffic() {
    // Proves: 300 concurrent /metrics scrapes (and 300 more on kept-alive
    // connections) are all answered while 4 clients stream 2 MiB each, and
    // the echo byte counters stay exact.
    let (srv, maddr) = start(&[]);
    const STREAMS: u64 = 4;
    const BYTES: u64 = 2 << 20;
    let echo = thread::spawn({
        let addr = srv.addr();
        move || {
            let workers: Vec<_> = (0..STREAMS)
                .map(|seed| {
                    thread::spawn(move || {
                        let mut c = connect(addr);
                        let mut w = c.try_clone().unwrap();
                        let writer =
                            thread::spawn(move || write_pattern(&mut w, seed, BYTES).unwrap());
                        read_pattern(&mut c, seed, BYTES).unwrap();
                        writer.join().unwrap();
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        }
    });
    let mut scrapers: Vec<TcpStream> = (0..300).map(|_| connect(maddr)).collect();
    for round in 0..2 {
        for s in &mut scrapers {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
        }
        for (i, s) in scrapers.iter_mut().enumerate() {
            let r = read_reply(s);
            assert_eq!(r.status, 200, "round {round}, scraper {i}");
            assert!(r.text().contains("echo_bytes_received_total "));
        }
    }
    echo.join().expect("echo traffic verified");
    drop(scrapers);
    let total = STREAMS * BYTES;
    assert!(wait_until(Duration::from_secs(10), || {
        let text = get(maddr, "/metrics").text();
        text.contains(&format!("echo_bytes_received_total {total}\n"))
            && text.contains(&format!("echo_bytes_sent_total {total}\n"))
    }));
    let doc: Value = serde_json::from_slice(&get(maddr, "/stats.json").body).unwrap();
    assert_eq!(doc["connections"]["accepted"], STREAMS);
    assert_eq!(doc["bytes"]["received"], total);
}

#[test]
fn grafana_dashboard_uses_only_exported_metrics() {
    // Proves: every metric the shipped Grafana dashboard queries is one the
    // server exports (names taken from a live /metrics), the dashboard and
    // the scrape config are well-formed, and its axes and legends are as
    // grafana_axes_and_legends says.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring");
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("grafana-dashboard.json")).unwrap(),
    )
    .expect("Grafana dashboard is JSON");
    let mut exprs = Vec::new();
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if k == "expr" {
                        out.push(v.as_str().unwrap().to_string());
                    } else {
                        collect(v, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dash["panels"], &mut exprs);
    assert!(exprs.len() >= 6, "only {} queries", exprs.len());

    let (_srv, maddr) = start(&[]);
    let text = get(maddr, "/metrics").text();
    let exported: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let words = expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
        for word in words.filter(|w| w.starts_with("echo_") || w.starts_with("process_")) {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| word.strip_suffix(s).filter(|b| exported.contains(*b)))
                .unwrap_or(word);
            assert!(exported.contains(base), "{expr}: {word} is not exported");
            used.insert(base.to_string());
        }
    }
    for core in [
        "echo_connections_active",
        "echo_connections_accepted_total",
        "echo_bytes_received_total",
        "echo_tcp_srtt_seconds",
        "echo_server_mode",
        "process_max_fds",
    ] {
        assert!(used.contains(core), "the dashboard does not chart {core}");
    }
    grafana_axes_and_legends(&dash);
    let scrape = std::fs::read_to_string(root.join("prometheus.yml")).unwrap();
    assert!(scrape.contains("scrape_configs:") && scrape.contains("9187"));
}

/// The Grafana dashboard's axes and legends: CPU cores and descriptor
/// counts never share an axis; every series names its instance or says it
/// sums all of them; throughput and connection rates carry the service
/// mode; the figures an operator adds up over replicas are summed.
fn grafana_axes_and_legends(dash: &Value) {
    let mut summed = BTreeSet::new();
    let mut moded = BTreeSet::new();
    for panel in dash["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        let exprs: Vec<&str> = targets
            .iter()
            .map(|t| t["expr"].as_str().unwrap())
            .collect();
        let uses = |metric: &str| exprs.iter().any(|e| e.contains(metric));
        let axis = panel["fieldConfig"]["defaults"]["custom"]["axisLabel"].as_str();
        if uses("process_cpu_seconds_total") {
            assert!(!uses("_fds"), "{title}: CPU cores and fds share an axis");
            assert_eq!(axis, Some("CPU cores"), "{title}");
        }
        if uses("process_open_fds") {
            assert!(
                uses("process_max_fds"),
                "{title}: no limit beside the count"
            );
            assert_eq!(axis, Some("descriptors"), "{title}");
        }
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let legend = target["legendFormat"].as_str().unwrap();
            let aggregate = ["sum(", "sum by", "histogram_quantile("]
                .iter()
                .any(|f| expr.starts_with(f));
            if aggregate {
                assert!(
                    legend.starts_with("all instances"),
                    "{title}: {legend:?} for {expr}"
                );
            } else {
                assert!(
                    legend.contains("{{instance}}"),
                    "{title}: {legend:?} for {expr}"
                );
            }
            let metric = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .find(|w| w.starts_with("echo_") || w.starts_with("process_"))
                .unwrap();
            if expr.starts_with("sum(") {
                summed.insert(metric.to_string());
            }
            if legend.contains("{{mode}}") {
                assert!(
                    expr.ends_with("group_left (mode) echo_server_mode{job=~\"$job\"}"),
                    "{title}: {{{{mode}}}} without the mode joined: {expr}"
                );
                moded.insert(metric.to_string());
            }
        }
    }
    for metric in [
        "echo_bytes_received_total",
        "echo_bytes_sent_total",
        "echo_connections_active",
        "echo_connections_accepted_total",
        "process_cpu_seconds_total",
    ] {
        assert!(
            summed.contains(metric),
            "{metric} not summed over instances"
        );
    }
    for metric in [
        "echo_bytes_received_total",
        "echo_bytes_sent_total",
        "echo_connections_accepted_total",
    ] {
        assert!(moded.contains(metric), "{metric} not labelled by mode");
    }
}

#[test]
fn metrics_port_in_use_is_a_clear_start_error() {
    // Proves: when the metrics address is taken the server does not start:
    // exit 1, a message naming --metrics and the address, no banner.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let mut args = LOOPBACK_ARGS.to_vec();
    args.extend(["--metrics", addr.as_str()]);
    let exit = run_to_exit(&args, Duration::from_secs(10));
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr.contains("--metrics") && exit.stderr.contains(&addr),
        "{}",
        exit.describe()
    );
    assert!(exit.stderr.contains("address already in use"));
    // The advice names the option that sets that port.
    assert!(
        exit.stderr.contains("choose another port with --metrics")
            && !exit.stderr.contains("--port"),
        "{}",
        exit.describe()
    );
    assert!(!exit.stdout.iter().any(|l| l.starts_with("Listening on")));
    assert_no_panic(&exit.stderr);

    // The same port as the echo listener: said as such.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port().to_string();
    drop(free);
    let metrics = format!("127.0.0.1:{port}");
    let exit = run_to_exit(
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--metrics",
            &metrics,
        ],
        Duration::from_secs(10),
    );
    assert_eq!(exit.code(), Some(1), "{}", exit.describe());
    assert!(
        exit.stderr.contains(&format!(
            "the echo port is {port}; give --metrics another port"
        )),
        "{}",
        exit.describe()
    );
}
