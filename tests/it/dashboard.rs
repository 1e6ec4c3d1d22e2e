//! The HTML dashboard in a real headless Chromium, while the test's own
//! traffic flows: the figures it shows, each connection's state and rate,
//! the order of the rows, the charts' data, and the screenshot of a run
//! with mixed traffic.

use crate::support::browser::{attr, chromium, element, element_text, elements, opening_tag};
use crate::support::endpoint::{get, start};
use crate::support::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// No traffic thread runs longer than this, whatever the test does.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(120);

/// `/stats.json` of the endpoint at `maddr`.
fn stats(maddr: SocketAddr) -> Value {
    serde_json::from_slice(&get(maddr, "/stats.json").body).expect("valid JSON")
}

/// The listed connection of the client whose local address is `peer`.
fn listed(doc: &Value, peer: SocketAddr) -> Option<&Value> {
    doc["active_connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer"] == peer.to_string().as_str())
}

/// A client exchanging `chunk` bytes with the server every `every` until
/// `stop`; it checks every echo.
fn paced(
    addr: SocketAddr,
    chunk: usize,
    every: Duration,
    stop: &Arc<AtomicBool>,
) -> (SocketAddr, JoinHandle<()>) {
    let mut c = connect(addr);
    let local = c.local_addr().unwrap();
    let stop = stop.clone();
    let worker = thread::spawn(move || {
        let started = Instant::now();
        let data = Rng::new(chunk as u64).bytes(chunk);
        while !stop.load(Ordering::Relaxed) && started.elapsed() < TRAFFIC_LIMIT {
            echo_roundtrip(&mut c, &data);
            thread::sleep(every);
        }
    });
    (local, worker)
}

/// A client that streams (so the server echoes it through a kernel pipe):
/// 4 MiB read late, then 128 KiB every 20 ms until `stop`; it reads the
/// whole echo back and checks it.
fn streaming(addr: SocketAddr, stop: &Arc<AtomicBool>) -> (SocketAddr, JoinHandle<()>) {
    // A small receive window and a late reader make the echo back up, so
    // the server's reads fill its buffer (see tests/it/zero_copy.rs).
    let mut c = connect_with_rcvbuf(addr, 16 * 1024);
    let local = c.local_addr().unwrap();
    let mut w = c.try_clone().unwrap();
    let stop = stop.clone();
    let writer = thread::spawn(move || {
        let started = Instant::now();
        w.write_all(&vec![5u8; 4 << 20]).unwrap();
        let mut sent = 4u64 << 20;
        let chunk = vec![5u8; 128 * 1024];
        while !stop.load(Ordering::Relaxed) && started.elapsed() < TRAFFIC_LIMIT {
            w.write_all(&chunk).unwrap();
            sent += chunk.len() as u64;
            thread::sleep(Duration::from_millis(20));
        }
        w.shutdown(std::net::Shutdown::Write).unwrap();
        sent
    });
    let reader = thread::spawn(move || {
        thread::sleep(Duration::from_millis(200));
        let mut got = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = c.read(&mut buf).expect("echo of the stream");
            if n == 0 {
                break;
            }
            assert!(buf[..n].iter().all(|&b| b == 5), "echo corrupted");
            got += n as u64;
        }
        assert_eq!(got, writer.join().unwrap(), "the whole stream echoed");
    });
    (local, reader)
}

/// A value of the dashboard's RTT format ("76 µs", "4.20 ms"), in µs.
fn micros(text: &str) -> f64 {
    let (v, unit) = text.trim().split_once(' ').unwrap_or((text, ""));
    let v: f64 = v.parse().unwrap_or_else(|_| panic!("RTT {text:?}"));
    match unit {
        "µs" => v,
        "ms" => v * 1000.0,
        _ => panic!("RTT unit in {text:?}"),
    }
}

/// The rows of the connection table, in the order shown.
fn rows(dom: &str) -> Vec<&str> {
    elements(element(dom, "conns"), "tr")
}

/// Attribute `name` of a row, parsed.
fn row_attr<T: std::str::FromStr>(row: &str, name: &str) -> T {
    let tag = &row[..row.find('>').unwrap() + 1];
    let value = attr(tag, name).unwrap_or_else(|| panic!("no {name} in {tag}"));
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}={value:?} in {tag}"))
}

#[test]
fn dashboard_in_headless_chromium_shows_the_traffic() {
    // Proves: the dashboard, loaded in a real headless Chromium while 3
    // clients keep connections open, refreshes from /stats.json and shows
    // their number, the totals and each connection's peer and bytes.
    let test = "dashboard_in_headless_chromium_shows_the_traffic";
    let (srv, maddr) = start(&[]);
    let open: Vec<TcpStream> = [111usize, 222, 333]
        .iter()
        .map(|&n| {
            let mut c = connect(srv.addr());
            echo_roundtrip(&mut c, &Rng::new(n as u64).bytes(n));
            c
        })
        .collect();
    let answered = |text: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with("echo_http_requests_total{code=\"200\"} "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let before = answered(&get(maddr, "/metrics").text());
    let url = format!("http://{maddr}/");
    let budget = "--virtual-time-budget=3000".to_string();
    let Some(exit) = chromium(test, &url, &[budget, "--dump-dom".to_string()]) else {
        return;
    };
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let dom = exit.stdout.join("\n");
    assert_eq!(element_text(&dom, "active"), "3", "{dom}");
    assert_eq!(element_text(&dom, "accepted"), "3");
    assert_eq!(element_text(&dom, "bytes-in"), "666");
    assert_eq!(element_text(&dom, "bytes-out"), "666");
    assert!(
        element_text(&dom, "status").starts_with("updated "),
        "{dom}"
    );
    for (c, n) in open.iter().zip([111, 222, 333]) {
        let peer = c.local_addr().unwrap().to_string();
        let row_start = dom.find(&format!("<td>{peer}</td>")).unwrap_or_else(|| {
            panic!("no row for {peer}:\n{dom}");
        });
        let row = &dom[row_start..dom[row_start..].find("</tr>").unwrap() + row_start];
        assert!(row.contains(&format!("<td>{n}</td><td>{n}</td>")), "{row}");
    }
    // The page's own fetches were served by the endpoint, not echo, and
    // it refreshed: the page plus at least two /stats.json.
    let after = answered(&get(maddr, "/metrics").text());
    // (+1: the /metrics request that read `before`, answered after it.)
    assert!(
        after >= before + 1 + 1 + 2,
        "{before} → {after}: no refresh"
    );
    let doc = stats(maddr);
    assert_eq!(doc["connections"]["accepted"], 3);
    drop(open);
}

#[test]
fn dashboard_first_render_has_rates_and_charts() {
    // Proves: on its first render (a virtual-time budget too short for a
    // second refresh), the dashboard already shows the throughput cards
    // and a throughput chart of several points, from the server's own
    // counters, instead of "–" until the page has two samples of its own.
    let test = "dashboard_first_render_has_rates_and_charts";
    let (srv, maddr) = start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let (_, client) = paced(srv.addr(), 1000, Duration::from_millis(50), &stop);
    let ready = wait_until(Duration::from_secs(15), || {
        let doc = stats(maddr);
        doc["history"]["t"].as_array().unwrap().len() >= 2
            && doc["rates"]["in_bps"].as_f64().is_some_and(|r| r > 0.0)
    });
    assert!(ready, "no history: {}", stats(maddr));
    let url = format!("http://{maddr}/");
    let one_render = [
        "--virtual-time-budget=300".to_string(),
        "--dump-dom".to_string(),
    ];
    let exit = chromium(test, &url, &one_render);
    stop.store(true, Ordering::Relaxed);
    client.join().expect("paced client's echoes");
    let Some(exit) = exit else {
        return;
    };
    assert_eq!(exit.code(), Some(0), "{}", exit.describe());
    let dom = exit.stdout.join("\n");
    assert!(
        element_text(&dom, "status").starts_with("updated "),
        "{dom}"
    );
    for card in ["rate-in", "rate-out"] {
        let text = element_text(&dom, card);
        let value: f64 = text
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("#{card} shows {text:?} on the first render"));
        assert!(value > 0.0 && text.ends_with("B/s"), "#{card}: {text}");
    }
    let chart = opening_tag(&dom, "chart-throughput");
    let points: usize = attr(chart, "data-points").unwrap().parse().unwrap();
    assert!(points >= 1, "{chart}");
}

#[test]
fn dashboard_with_mixed_traffic_shows_states_rates_order_and_charts() {
    // Proves, in headless Chromium at 1280x900 while an idle client, a
    // paced ping-pong client and a streaming (zero-copy) client are
    // connected, beside 30 more idle ones:
    // - each connection's state: idle, echoing, zero-copy;
    // - each connection's own rate (bytes/s measured by the server over the
    //   last second, not the kernel's delivery-rate estimate): 0 for the
    //   idle ones, at most what the paced client can send;
    // - the busiest first, and #sort=age puts the oldest first;
    // - the table scrolls within its box instead of running off the page;
    // - the headline RTT is the median min_rtt of the connections, and is
    //   not above their median srtt;
    // - the charts' data: throughput and connections over time (the last
    //   point is the connections open now), the RTT distribution counting
    //   every listed connection;
    // - the service mode.
    // A screenshot of it is saved (target/tmp/dashboard.png).
    let test = "dashboard_with_mixed_traffic_shows_states_rates_order_and_charts";
    let _turn = one_at_a_time();
    let (srv, maddr) = start(&["--splice-backlog", "0"]);
    let stop = Arc::new(AtomicBool::new(false));
    let idle: Vec<TcpStream> = (0..31)
        .map(|i| {
            let mut c = connect(srv.addr());
            echo_roundtrip(&mut c, &Rng::new(i).bytes(111));
            c
        })
        .collect();
    let idle_peer = idle[0].local_addr().unwrap();
    // 4 KiB each way every 20 ms at most: 2 × 4096 × 50 B/s.
    const PACED_MAX_BPS: f64 = 2.0 * 4096.0 * 50.0;
    // Apart enough in age for #sort=age to tell them apart (ms rounding).
    thread::sleep(Duration::from_millis(50));
    let (paced_peer, paced_client) = paced(srv.addr(), 4096, Duration::from_millis(20), &stop);
    thread::sleep(Duration::from_millis(50));
    let (stream_peer, stream_client) = streaming(srv.addr(), &stop);
    let settled = wait_until(Duration::from_secs(20), || {
        let doc = stats(maddr);
        let activity = |peer| listed(&doc, peer).map(|c| c["activity"].clone());
        let rate = |peer| listed(&doc, peer).and_then(|c| c["rate_in_bps"].as_f64());
        doc["history"]["t"].as_array().unwrap().len() >= 3
            && activity(idle_peer) == Some("idle".into())
            && rate(idle_peer) == Some(0.0)
            && activity(paced_peer) == Some("echoing".into())
            && activity(stream_peer) == Some("zero-copy".into())
            && rate(stream_peer).is_some_and(|r| r > 0.0)
    });
    let url = format!("http://{maddr}/");
    let window = "--window-size=1280,900".to_string();
    let budget = "--virtual-time-budget=3000".to_string();
    let dump = |url: &str| {
        chromium(
            test,
            url,
            &[budget.clone(), window.clone(), "--dump-dom".to_string()],
        )
    };
    let by_rate = dump(&url);
    let by_age = by_rate.as_ref().and(dump(&format!("{url}#sort=age")));
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    let screenshot = by_rate.as_ref().and(chromium(
        test,
        &url,
        &[
            budget.clone(),
            window.clone(),
            format!("--screenshot={}", shot.display()),
        ],
    ));
    let last_doc = stats(maddr);
    stop.store(true, Ordering::Relaxed);
    paced_client.join().expect("paced client's echoes");
    stream_client.join().expect("streaming client's echo");
    assert!(settled, "traffic did not settle: {last_doc}");
    let (Some(by_rate), Some(by_age), Some(screenshot)) = (by_rate, by_age, screenshot) else {
        return;
    };

    assert_eq!(by_rate.code(), Some(0), "{}", by_rate.describe());
    let dom = by_rate.stdout.join("\n");
    assert_eq!(element_text(&dom, "mode"), "mode echo");
    assert_eq!(element_text(&dom, "active"), "33", "{dom}");
    let table = rows(&dom);
    assert_eq!(table.len(), 33, "{dom}");
    let rates: Vec<f64> = table.iter().map(|r| row_attr(r, "data-rate")).collect();
    assert!(
        rates.windows(2).all(|w| w[0] >= w[1]),
        "not busiest first: {rates:?}"
    );
    let peer_of = |row: &str| row_attr::<SocketAddr>(row, "data-peer");
    let state_of = |row: &str| row_attr::<String>(row, "data-state");
    assert_eq!(peer_of(table[0]), stream_peer, "{dom}");
    assert_eq!(state_of(table[0]), "zero-copy");
    assert_eq!(peer_of(table[1]), paced_peer);
    assert_eq!(state_of(table[1]), "echoing");
    let paced_rate = rates[1];
    assert!(
        paced_rate > 0.0 && paced_rate <= PACED_MAX_BPS * 1.1,
        "paced client's rate {paced_rate} B/s (at most {PACED_MAX_BPS})"
    );
    for row in &table[2..] {
        assert_eq!(state_of(row), "idle", "{row}");
        assert_eq!(row_attr::<f64>(row, "data-rate"), 0.0, "{row}");
    }
    assert!(table.iter().any(|r| peer_of(r) == idle_peer));
    let th = dom.find(">rate in</th>").unwrap();
    assert!(dom[..th].ends_with("class=\"sorted\""), "{dom}");
    let kernel_column = dom.contains("<th title=\"TCP's estimate from its latest burst");
    assert!(kernel_column && dom.contains("kernel delivery rate</th>"));
    // 33 rows do not fit a 900-px window: the box scrolls.
    let class = attr(opening_tag(&dom, "table-box"), "class").unwrap();
    assert!(class.split(' ').any(|c| c == "scrolls"), "{class}");

    // The headline: the paths' min_rtt, srtt beside it.
    assert_eq!(element_text(&dom, "rtt-n"), "33");
    let path = micros(&element_text(&dom, "path-rtt"));
    let srtt = element_text(&dom, "srtt-median");
    let srtt = micros(srtt.strip_prefix("median ").unwrap());
    assert!(
        path > 0.0 && path <= srtt,
        "min_rtt {path} µs, srtt {srtt} µs"
    );

    // The charts' data.
    let through = element(&dom, "chart-throughput");
    let points: usize = attr(opening_tag(&dom, "chart-throughput"), "data-points")
        .unwrap()
        .parse()
        .unwrap();
    assert!(points >= 2, "{through}");
    let lines = elements(through, "polyline");
    assert_eq!(lines.len(), 2, "{through}");
    for line in &lines {
        let xy = attr(line, "points").unwrap().split(' ').count();
        assert_eq!(xy, points, "{line}");
    }
    let last_in: f64 = attr(lines[0], "data-last").unwrap().parse().unwrap();
    assert!(
        attr(lines[0], "class") == Some("in") && last_in > 0.0,
        "{through}"
    );
    let conns = element(&dom, "chart-conns");
    let line = elements(conns, "polyline")[0];
    assert_eq!(attr(line, "data-last"), Some("33"), "{conns}");
    let rtt_chart = opening_tag(&dom, "chart-rtt");
    assert_eq!(attr(rtt_chart, "data-min-rtt"), Some("33"), "{rtt_chart}");
    assert_eq!(attr(rtt_chart, "data-srtt"), Some("33"), "{rtt_chart}");
    let bars: u64 = elements(element(&dom, "chart-rtt"), "rect")
        .iter()
        .filter(|r| attr(r, "class") == Some("in"))
        .map(|r| attr(r, "data-count").unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(bars, 33);

    // #sort=age: the oldest first, the streaming client (the newest) last.
    assert_eq!(by_age.code(), Some(0), "{}", by_age.describe());
    let dom = by_age.stdout.join("\n");
    let table = rows(&dom);
    let ages: Vec<f64> = table.iter().map(|r| row_attr(r, "data-age")).collect();
    assert!(ages.windows(2).all(|w| w[0] >= w[1]), "{ages:?}");
    assert_eq!(peer_of(table[32]), stream_peer, "{ages:?}");
    assert_eq!(peer_of(table[31]), paced_peer);

    assert_eq!(screenshot.code(), Some(0), "{}", screenshot.describe());
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {}", shot.display());
    drop(idle);
}
