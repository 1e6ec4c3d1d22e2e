//! The server's output as data: log lines (contract:
//! `<timestamp> <LEVEL padded to 5> [<EVENT>] <details>`), the DISCONNECT
//! details, the Summary and STATS lines.

use std::time::{SystemTime, UNIX_EPOCH};

use super::process::Exit;

#[derive(Debug, Clone)]
pub struct LogLine {
    pub ts: String,
    pub level: String,
    pub event: String,
    pub details: String,
}

/// Parses a log line; None when the line is not a log line in the contract format.
pub fn parse_log(line: &str) -> Option<LogLine> {
    let (ts, rest) = line.split_once(' ')?;
    parse_ts_millis(ts)?;
    if rest.len() < 7 || !rest.is_char_boundary(5) || rest.as_bytes()[5] != b' ' {
        return None;
    }
    let level = rest[..5].trim_end();
    if !["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level) {
        return None;
    }
    let rest = rest[6..].strip_prefix('[')?;
    let (event, details) = rest.split_once(']')?;
    let details = details.strip_prefix(' ').unwrap_or(details);
    Some(LogLine {
        ts: ts.to_string(),
        level: level.to_string(),
        event: event.to_string(),
        details: details.to_string(),
    })
}

/// All log lines of `event`.
pub fn events(lines: &[String], event: &str) -> Vec<LogLine> {
    lines
        .iter()
        .filter_map(|l| parse_log(l))
        .filter(|l| l.event == event)
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) -> milliseconds since the Unix epoch.
pub fn parse_ts_millis(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    if b.len() != 24 {
        return None;
    }
    let shape_ok = b.iter().enumerate().all(|(i, &c)| match i {
        4 | 7 => c == b'-',
        10 => c == b'T',
        13 | 16 => c == b':',
        19 => c == b'.',
        23 => c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !shape_ok {
        return None;
    }
    let num = |r: std::ops::Range<usize>| ts[r].parse::<i64>().unwrap();
    let (y, mo, d) = (num(0..4), num(5..7), num(8..10));
    let (h, mi, s, ms) = (num(11..13), num(14..16), num(17..19), num(20..23));
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((((days * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms)
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[derive(Debug, Clone, PartialEq)]
pub struct Disconnect {
    pub addr: String,
    pub secs: f64,
    pub rx: u64,
    pub tx: u64,
    pub reason: String,
}

/// `<ip:port> (<secs>s connected, RX: <n> bytes, TX: <m> bytes, reason: <reason>)`
pub fn parse_disconnect(details: &str) -> Option<Disconnect> {
    let (addr, rest) = details.split_once(" (")?;
    // The TCP figures (srtt, rttvar, retransmits) follow the parenthesis.
    let (rest, _tcp) = rest.rsplit_once(')')?;
    let (secs, rest) = rest.split_once("s connected, RX: ")?;
    let (rx, rest) = rest.split_once(" bytes, TX: ")?;
    let (tx, reason) = rest.split_once(" bytes, reason: ")?;
    Some(Disconnect {
        addr: addr.to_string(),
        secs: secs.parse().ok()?,
        rx: rx.parse().ok()?,
        tx: tx.parse().ok()?,
        reason: reason.to_string(),
    })
}

/// Every unsigned integer in `s`, in order.
pub fn numbers(s: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cur: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            cur = Some(cur.unwrap_or(0) * 10 + d as u64);
        } else if let Some(v) = cur.take() {
            out.push(v);
        }
    }
    out.extend(cur);
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub served: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub peak: u64,
    pub rejected: u64,
    pub timed_out: u64,
}

/// Parses the plain `Summary: ...` line, checking its exact shape:
/// `Summary: S connections served, I bytes in[ (x.y KiB)], O bytes out[ (…)],
/// peak P concurrent, R rejected, T timed out[, D log lines dropped], up U`.
pub fn parse_summary(line: &str) -> Option<Summary> {
    let rest = line.strip_prefix("Summary: ")?;
    let (counts, uptime) = rest.rsplit_once(", up ")?;
    let uptime_ok = uptime.ends_with('s') || uptime.ends_with('m');
    let parts: Vec<&str> = counts.split(", ").collect();
    let number = |part: &str, before: &str, after: &str| -> Option<u64> {
        part.strip_prefix(before)?.strip_suffix(after)?.parse().ok()
    };
    // "1234 bytes in (1.2 KiB)": the exact count, then a unit where large.
    let bytes = |part: &str, dir: &str| -> Option<u64> {
        let (count, tail) = part.split_once(&format!(" bytes {dir}"))?;
        let n: u64 = count.parse().ok()?;
        let unit_ok = if n < 1024 {
            tail.is_empty()
        } else {
            tail.starts_with(" (") && tail.ends_with("iB)")
        };
        unit_ok.then_some(n)
    };
    if !(6..=7).contains(&parts.len()) || !uptime_ok {
        return None;
    }
    if parts.len() == 7 {
        number(parts[6], "", " log lines dropped")?;
    }
    Some(Summary {
        served: number(parts[0], "", " connections served")?,
        bytes_in: bytes(parts[1], "in")?,
        bytes_out: bytes(parts[2], "out")?,
        peak: number(parts[3], "peak ", " concurrent")?,
        rejected: number(parts[4], "", " rejected")?,
        timed_out: number(parts[5], "", " timed out")?,
    })
}

/// Finds and parses the Summary line in a finished server's stdout.
pub fn summary_of(exit: &Exit) -> Summary {
    let line = exit
        .stdout
        .iter()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| panic!("no Summary line\n{}", exit.describe()));
    parse_summary(line).unwrap_or_else(|| panic!("malformed Summary line: {line:?}"))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub total: u64,
    pub active: u64,
    pub peak: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rejected: u64,
    pub timed_out: u64,
}

/// `connections: <total> total, <active> active, <peak> peak; bytes: <in> in, <out> out; rejected: <r>; timed out: <t>`
pub fn parse_stats(details: &str) -> Option<Stats> {
    let n = numbers(details);
    if n.len() != 7 {
        return None;
    }
    let s = Stats {
        total: n[0],
        active: n[1],
        peak: n[2],
        bytes_in: n[3],
        bytes_out: n[4],
        rejected: n[5],
        timed_out: n[6],
    };
    let canon = format!(
        "connections: {} total, {} active, {} peak; bytes: {} in, {} out; rejected: {}; timed out: {}",
        s.total, s.active, s.peak, s.bytes_in, s.bytes_out, s.rejected, s.timed_out
    );
    (canon == details).then_some(s)
}

/// Number of rejects one REJECT line stands for: itself plus the suppressed
/// ones it reports, or the held-back ones it reports on its own.
pub fn rejects_in(details: &str) -> u64 {
    const SUFFIX: &str = " more rejected since the last report)";
    const HELD: &str = " more connection(s) rejected over the connection limit of ";
    if let Some((k, _)) = details.split_once(HELD) {
        k.parse()
            .unwrap_or_else(|_| panic!("malformed REJECT count: {details:?}"))
    } else if let Some(head) = details.strip_suffix(SUFFIX) {
        let (_, k) = head
            .rsplit_once(" (")
            .unwrap_or_else(|| panic!("malformed REJECT line: {details:?}"));
        1 + k
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("malformed REJECT count: {details:?}"))
    } else {
        1
    }
}
