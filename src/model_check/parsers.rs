//! Every parser of untrusted text the crate has: byte sizes, seconds, the
//! server's whole command line, and the client's address parser and
//! command line. (The server has no framing or request parser: it echoes
//! bytes without looking at them.)
//!
//! Checked for any input:
//! - nothing panics (clap included, on arguments that are not UTF-8);
//! - [`parse_size`] and [`parse_seconds`] agree with `str::parse` on plain
//!   digits, ignore surrounding whitespace and letter case, and whatever
//!   they accept prints back to the same value;
//! - a command line clap accepts yields a [`Config`](crate::Config) inside
//!   every documented range; one it rejects is a usage error (exit code
//!   2), or help/version (exit code 0), with a non-empty message; the same
//!   for the client's command line;
//! - everything the programs derive from an accepted command line can be
//!   derived without a panic, by the code that derives it: deadlines
//!   `Instant::now() + duration`, the idle timer's ticks and deadline
//!   instants, the `--rate` schedule's send times over the longest run the
//!   other options allow, and socket addresses that TCP can listen on
//!   (no multicast or broadcast, an interface exactly on link-local IPv6);
//! - a seconds value with a non-zero digit is never accepted as zero;
//! - an address [`parse_target`] accepts has a non-empty host and a port
//!   other than 0, and prints back to text that parses to the same target.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::ffi::OsStringExt;
use std::time::{Duration, Instant};

use clap::error::ErrorKind;
use clap::Parser;
use log::LevelFilter;

use super::Violation;
use crate::client::bench::schedule::RateSchedule;
use crate::client::cli::{ClientCli, Mode};
use crate::client::target::parse_target;
use crate::config::cli::Cli;
use crate::config::units::{parse_seconds, parse_size, MAX_SECONDS};
use crate::config::Config;
use crate::logic::timer::{Expiry, TickClock};
use crate::os::listener::check_listenable;
use crate::server::TICK;

/// What one input did, for tests that check a corpus covers the ground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsersRun {
    /// `parse_size` accepted the text.
    pub size_accepted: bool,
    /// `parse_seconds` accepted the text.
    pub seconds_accepted: bool,
    /// clap accepted the input as a command line.
    pub command_line_accepted: bool,
    /// `parse_target` accepted the text as a client address.
    pub target_accepted: bool,
    /// clap accepted the input as an `echo-client` command line.
    pub client_command_line_accepted: bool,
}

/// Runs the size and seconds parsers on `data` as text, and clap on `data`
/// split at NUL bytes into arguments; see the module docs.
pub fn check_parsers(data: &[u8]) -> Result<ParsersRun, Violation> {
    let text = String::from_utf8_lossy(data);
    Ok(ParsersRun {
        size_accepted: check_size(&text)?,
        seconds_accepted: check_seconds(&text)?,
        command_line_accepted: check_command_line(data)?,
        target_accepted: check_target(&text)?,
        client_command_line_accepted: check_client_command_line(data)?,
    })
}

fn check_target(text: &str) -> Result<bool, Violation> {
    match parse_target(text) {
        Ok(target) => {
            if target.host.is_empty() || target.port == 0 {
                return Err(fail("parse_target", text, format!("accepted {target:?}")));
            }
            let printed = target.to_string();
            match parse_target(&printed) {
                Ok(back) if back == target => Ok(true),
                other => Err(fail(
                    "parse_target",
                    text,
                    format!("{target:?} prints as {printed:?}, which parses as {other:?}"),
                )),
            }
        }
        Err(message) if message.is_empty() => Err(fail("parse_target", text, "empty error text")),
        Err(_) => Ok(false),
    }
}

fn check_client_command_line(data: &[u8]) -> Result<bool, Violation> {
    let args = arguments("echo-client", data);
    match ClientCli::try_parse_from(&args) {
        Ok(cli) => {
            derive_client(&cli);
            Ok(true)
        }
        Err(error) => check_rejection("client command line", &args, &error),
    }
}

/// What the client computes from its options, the way it computes it: a
/// value it cannot represent panics here as it would in the run.
fn derive_client(cli: &ClientCli) {
    let now = Instant::now();
    match &cli.mode {
        None => {
            let _ = now + cli.send.timeout;
        }
        Some(Mode::Send(send)) => {
            let _ = now + send.timeout;
        }
        Some(Mode::Ping(ping)) => {
            let _ = now + ping.interval + ping.timeout;
        }
        // The script comes from the definition alone: no option to derive.
        Some(Mode::Completions(_)) => {}
        Some(Mode::Probe(probe)) => {
            // The last probe starts at the time limit and may resend
            // every retry's timeout.
            let _ = now + probe.max_time + probe.timeout * (probe.retries + 1) * 2;
        }
        Some(Mode::Bench(bench)) => {
            let window_start = now + bench.warmup();
            let _ = window_start + bench.duration + bench.timeout;
            if let Some(rate) = bench.rate {
                let mut schedule = RateSchedule::new(now, rate, bench.connections as usize);
                let _ = schedule.next_due();
                let _ = schedule.due_at(1);
                // The latest instant the run looks at: the end of the
                // measured window plus the wait for the last echoes.
                let last = window_start + bench.duration + bench.timeout;
                let fell = schedule.advance(last);
                let _ = schedule.next_due();
                let _ = schedule.due_at(fell.start);
                for conn in schedule.connections_of(fell).take(2) {
                    let due = schedule.due_on(conn);
                    let _ = schedule.intended(conn, due.saturating_sub(1));
                    let _ = schedule.intended(conn, due);
                }
            }
        }
    }
}

/// What the server computes from its [`Config`], the way it computes it;
/// the addresses must be ones a client can connect to.
fn derive_server(config: &Config) -> Result<(), String> {
    let now = Instant::now();
    let clock = TickClock::new(now, TICK);
    if let Some(idle) = config.idle_timeout {
        // A connection accepted now, its timer fired at once: the rule
        // must not close it before any time has passed.
        let deadline = clock.deadline(now, idle);
        if clock.expiry(now, idle, clock.floor(now)) != Expiry::Rearm(deadline) {
            return Err(format!("idle timeout {idle:?} closes a fresh connection"));
        }
        let _ = clock.instant_of(deadline);
    }
    if let Some(every) = config.stats_interval {
        let _ = now + every + every;
    }
    let _ = now + config.shutdown_timeout;
    for (what, addr) in [
        ("--bind", Some(config.listen)),
        ("--metrics", config.metrics),
    ] {
        let Some(addr) = addr else { continue };
        check_listenable(addr.ip()).map_err(|e| format!("{what} accepted: {e}"))?;
        let link_local = matches!(addr.ip(), IpAddr::V6(ip) if ip.segments()[0] & 0xffc0 == 0xfe80);
        let scope = match addr {
            SocketAddr::V6(v6) => v6.scope_id(),
            SocketAddr::V4(_) => 0,
        };
        if link_local != (scope != 0) {
            return Err(format!(
                "{what} {addr}: link-local {link_local}, scope {scope}"
            ));
        }
        let _ = socket2::SockAddr::from(addr);
    }
    Ok(())
}

fn fail(what: &str, text: &str, message: impl std::fmt::Display) -> Violation {
    Violation::new(0, format!("{what}({text:?}): {message}"))
}

fn check_size(text: &str) -> Result<bool, Violation> {
    let result = parse_size(text);
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let plain = trimmed.parse::<usize>().ok();
        if result.clone().ok() != plain {
            return Err(fail(
                "parse_size",
                text,
                format!("{result:?}, str::parse gives {plain:?}"),
            ));
        }
    }
    let padded = parse_size(&format!(" \t{text}\n "));
    let upper = parse_size(&text.to_ascii_uppercase());
    let lower = parse_size(&text.to_ascii_lowercase());
    for (variant, other) in [
        ("padded", &padded),
        ("upper-case", &upper),
        ("lower-case", &lower),
    ] {
        if other.is_ok() != result.is_ok() || other.as_ref().ok() != result.as_ref().ok() {
            return Err(fail(
                "parse_size",
                text,
                format!("{result:?} but {variant}: {other:?}"),
            ));
        }
    }
    match result {
        Ok(n) => {
            let back = parse_size(&n.to_string());
            if back != Ok(n) {
                return Err(fail(
                    "parse_size",
                    text,
                    format!("{n} prints back as {back:?}"),
                ));
            }
            Ok(true)
        }
        Err(message) if message.is_empty() => Err(fail("parse_size", text, "empty error text")),
        Err(_) => Ok(false),
    }
}

fn check_seconds(text: &str) -> Result<bool, Violation> {
    let result = parse_seconds(text);
    let trimmed = text.trim();
    if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        let plain = trimmed
            .parse::<u64>()
            .ok()
            .filter(|&s| s <= MAX_SECONDS)
            .map(Duration::from_secs);
        if result.clone().ok() != plain {
            return Err(fail(
                "parse_seconds",
                text,
                format!("{result:?}, expected {plain:?}"),
            ));
        }
    }
    let padded = parse_seconds(&format!(" {text}\t"));
    if padded.as_ref().ok() != result.as_ref().ok() {
        return Err(fail(
            "parse_seconds",
            text,
            format!("{result:?} but padded: {padded:?}"),
        ));
    }
    match result {
        Ok(d) => {
            if d > Duration::from_secs(MAX_SECONDS) {
                return Err(fail(
                    "parse_seconds",
                    text,
                    format!("{d:?} is over the maximum"),
                ));
            }
            if d.is_zero() && trimmed.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
                return Err(fail("parse_seconds", text, "a non-zero value became 0"));
            }
            let printed = format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
            let back = parse_seconds(&printed);
            if back != Ok(d) {
                return Err(fail(
                    "parse_seconds",
                    text,
                    format!("{d:?} prints back as {back:?}"),
                ));
            }
            Ok(true)
        }
        Err(message) if message.is_empty() => Err(fail("parse_seconds", text, "empty error text")),
        Err(_) => Ok(false),
    }
}

fn check_command_line(data: &[u8]) -> Result<bool, Violation> {
    let args = arguments("echo-server", data);
    let shown = || format!("{args:?}");
    match Cli::try_parse_from(&args) {
        Ok(cli) => {
            let config = cli.into_config();
            let max = Duration::from_secs(MAX_SECONDS);
            let in_range = (1..=16 << 20).contains(&config.buffer_size)
                && (1..=1_000_000).contains(&config.max_connections)
                && (1..=65_535).contains(&config.backlog)
                && config
                    .idle_timeout
                    .map_or(true, |d| !d.is_zero() && d <= max)
                && config
                    .stats_interval
                    .map_or(true, |d| !d.is_zero() && d <= max)
                && config.shutdown_timeout <= max
                && [LevelFilter::Error, LevelFilter::Info, LevelFilter::Debug]
                    .contains(&config.log_level);
            if !in_range {
                return Err(fail(
                    "command line",
                    &shown(),
                    format!("out of range: {config:?}"),
                ));
            }
            derive_server(&config).map_err(|e| fail("command line", &shown(), e))?;
            Ok(true)
        }
        Err(error) => check_rejection("command line", &args, &error),
    }
}

/// `program` followed by `data` split at NUL bytes, as a command line.
fn arguments(program: &str, data: &[u8]) -> Vec<OsString> {
    std::iter::once(OsString::from(program))
        .chain(
            data.split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| OsString::from_vec(a.to_vec())),
        )
        .collect()
}

/// A command line clap refused: a usage error (exit 2) or help/version
/// (exit 0), with a message.
fn check_rejection(what: &str, args: &[OsString], error: &clap::Error) -> Result<bool, Violation> {
    let expected_code = match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
        _ => 2,
    };
    if error.exit_code() != expected_code {
        return Err(fail(
            what,
            &format!("{args:?}"),
            format!("{:?} exits {}", error.kind(), error.exit_code()),
        ));
    }
    if error.to_string().trim().is_empty() {
        return Err(fail(what, &format!("{args:?}"), "empty error message"));
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    // Representative inputs: accepted and rejected values and command lines.
    #[test]
    fn known_inputs() {
        let run = check_parsers(b"64K").unwrap();
        assert!(run.size_accepted && !run.seconds_accepted && !run.command_line_accepted);
        let run = check_parsers(b"0.5").unwrap();
        assert!(!run.size_accepted && run.seconds_accepted);
        let run = check_parsers(b"--buffer-size\x0016K\x00-p\x000").unwrap();
        assert!(run.command_line_accepted);
        let run = check_parsers(b"--help").unwrap();
        assert!(!run.command_line_accepted);
        let run = check_parsers(b"--port\x00\xff\xfe").unwrap();
        assert!(!run.command_line_accepted);
        // The values of issue 16: refused, or accepted and usable.
        let run = check_parsers(b"bench\x00--rate\x001e-20").unwrap();
        assert!(!run.client_command_line_accepted);
        let run = check_parsers(b"bench\x00--rate\x003.18e-8\x00--duration\x0031536000").unwrap();
        assert!(run.client_command_line_accepted);
        let run = check_parsers(b"bench\x00--rate\x001e9\x00-n\x0018446744073709551615").unwrap();
        assert!(run.client_command_line_accepted);
        let run = check_parsers(b"--idle-timeout\x000.0000000001").unwrap();
        assert!(run.command_line_accepted);
        let run = check_parsers(b"0.0000000001").unwrap();
        assert!(run.seconds_accepted);
        for rejected in [
            &b"--idle-timeout\x001e300"[..],
            b"--shutdown-timeout\x001e20",
            b"--bind\x00224.0.0.1",
            b"--bind\x00255.255.255.255",
            b"--metrics\x00[ff02::1]:80",
        ] {
            assert!(!check_parsers(rejected).unwrap().command_line_accepted);
        }
        let run = check_parsers(b"--bind\x00fe80::1%lo\x00--metrics\x00[fe80::2%1]:0").unwrap();
        assert!(run.command_line_accepted);
    }

    // Generated inputs built from the vocabulary of the command line pass.
    #[test]
    fn generated_inputs_pass() {
        const WORDS: [&[u8]; 36] = [
            b"--port",
            b"-p",
            b"--bind",
            b"-b",
            b"--backlog",
            b"--buffer-size",
            b"--idle-timeout",
            b"--max-connections",
            b"--shutdown-timeout",
            b"--stats-interval",
            b"-v",
            b"-q",
            b"0",
            b"65535",
            b"99999999999999999999",
            b"16M",
            b"17m",
            b"1.5",
            b"-1",
            b"::1",
            b"127.0.0.1",
            b"31536000",
            b"\xff",
            b"K",
            b"bench",
            b"ping",
            b"--rate",
            b"--interval",
            b"--warmup",
            b"1e-20",
            b"3.18e-8",
            b"0.0000000001",
            b"224.0.0.1",
            b"255.255.255.255",
            b"fe80::1%lo",
            b"--metrics",
        ];
        let mut rng = Rng(0xABCD_EF01_2345_6789);
        let mut accepted = 0;
        for _ in 0..3_000 {
            let mut data = Vec::new();
            for _ in 0..rng.next() % 6 {
                data.extend_from_slice(WORDS[(rng.next() % WORDS.len() as u64) as usize]);
                data.push(if rng.next() % 8 == 0 { b' ' } else { 0 });
            }
            let run = check_parsers(&data).unwrap_or_else(|v| panic!("{data:?}: {v}"));
            accepted += usize::from(run.command_line_accepted);
        }
        assert!(accepted > 100, "only {accepted} command lines accepted");
    }
}
