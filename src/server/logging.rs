//! The log: one line per event, `<UTC time> <LEVEL> [<EVENT>] <details>`,
//! or with `--log-format json` one JSON object per line.
//!
//! The event name (CONNECT, DISCONNECT, DATA, …) is the log target, so it
//! stands in brackets after the level, and users can grep for
//! `[DISCONNECT]`. Timestamps are UTC (RFC 3339 with
//! milliseconds): local offsets are ambiguous across hosts and DST, and a
//! diagnostic log is often compared with another machine's.
//!
//! Events with figures (CONNECT, DISCONNECT, …) also carry them as log
//! key-values; the text format ignores them (its lines stay as they were),
//! the JSON format writes them as typed fields beside `timestamp`, `level`,
//! `event` and `message`, ready for Loki or Elasticsearch.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::kv::{Error as KvError, Key, Value, VisitSource, VisitValue};
use log::{LevelFilter, Log, Metadata, Record, SetLoggerError};

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value as JsonValue;

use crate::logic::json;
use crate::logic::stats::Summary;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `<time> <LEVEL> [<EVENT>] <details>`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The format chosen at start, for the writer's notes about lost lines.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Starts logging to stdout at `level` in `format`, through the log's
/// writer thread ([`crate::os::log_writer`]).
pub fn init(level: LevelFilter, format: LogFormat) -> Result<(), Box<dyn std::error::Error>> {
    let _ = FORMAT.set(format);
    crate::os::log_writer::start(lost_lines_note)?;
    set_logger(level, format)?;
    Ok(())
}

fn set_logger(level: LevelFilter, format: LogFormat) -> Result<(), SetLoggerError> {
    log::set_boxed_logger(Box::new(StdoutLogger { level, format }))?;
    log::set_max_level(level);
    Ok(())
}

/// The line that stands where `n` log lines were lost: a reader that did
/// not keep up, a full disk, or no reader at all.
fn lost_lines_note(n: u64) -> String {
    let fields = [("dropped", n)];
    let args = format_args!(
        "{n} log line(s) dropped here: stdout did not take them \
         (a reader not keeping up, a full disk, or no reader)"
    );
    let record = Record::builder()
        .target("LOG")
        .level(log::Level::Warn)
        .args(args)
        .key_values(&fields)
        .build();
    let now = SystemTime::now();
    match format() {
        LogFormat::Text => text_line(now, &record),
        LogFormat::Json => json_line(now, &record),
    }
}

/// Formats each record as one line, in the chosen format, and queues it
/// for stdout.
///
/// Written here rather than by a logging crate because a line must never
/// be written from the event loop's thread: a reader of stdout that stops
/// reading would stop every client's echo, and `println!`, which
/// simple_logger writes with, panics on a failed write.
#[derive(Debug)]
struct StdoutLogger {
    level: LevelFilter,
    format: LogFormat,
}

impl Log for StdoutLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        // mio is built without its `log` feature; this keeps any other
        // crate's internal lines out too.
        metadata.level() <= self.level && !metadata.target().starts_with("mio")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now();
        crate::os::log_writer::push(match self.format {
            LogFormat::Text => text_line(now, record),
            LogFormat::Json => json_line(now, record),
        });
    }

    /// Nothing to do here: [`crate::os::log_writer::flush_until`] waits, with
    /// a deadline, for what is queued.
    fn flush(&self) {}
}

/// Queues a banner line for stdout after the log's lines; a full queue
/// does not drop it. With `--log-format json` it is an object like every
/// other line (event `BANNER`), so stdout stays one JSON object per line.
pub fn print_line(line: &str) {
    crate::os::log_writer::push_always(match format() {
        LogFormat::Text => line.to_string(),
        LogFormat::Json => json::to_string(&Event {
            timestamp: rfc3339_millis(SystemTime::now()),
            level: "INFO",
            event: "BANNER",
            message: line,
            summary: None,
        }),
    });
}

/// Queues the Summary as [`print_line`] does; in JSON (event `SUMMARY`)
/// it also carries each count as a field.
pub fn print_summary(summary: &Summary<'_>) {
    let text = summary.to_string();
    crate::os::log_writer::push_always(match format() {
        LogFormat::Text => text,
        LogFormat::Json => {
            let s = summary.totals;
            json::to_string(&Event {
                timestamp: rfc3339_millis(SystemTime::now()),
                level: "INFO",
                event: "SUMMARY",
                message: &text,
                summary: Some(SummaryFields {
                    served: s.served,
                    bytes_in: s.bytes_in,
                    bytes_out: s.bytes_out,
                    peak: s.peak,
                    rejected: s.rejected,
                    timed_out: s.timed_out,
                    log_lines_dropped: summary.log_dropped,
                    uptime_s: (summary.uptime.as_secs_f64() * 1e3).round() / 1e3,
                    udp: s.udp.as_ref().map(|u| UdpFields {
                        datagrams_in: u.datagrams_in,
                        datagrams_out: u.datagrams_out,
                        bytes_in: u.bytes_in,
                        bytes_out: u.bytes_out,
                        dropped: u.dropped_total(),
                    }),
                }),
            })
        }
    });
}

fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// A banner or Summary line in JSON, shaped as the log's lines are.
#[derive(Serialize)]
struct Event<'a> {
    timestamp: String,
    level: &'static str,
    event: &'static str,
    message: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    summary: Option<SummaryFields>,
}

/// The Summary's counts as JSON fields.
#[derive(Serialize)]
struct SummaryFields {
    served: u64,
    bytes_in: u64,
    bytes_out: u64,
    peak: usize,
    rejected: u64,
    timed_out: u64,
    log_lines_dropped: u64,
    uptime_s: f64,
    /// With `--udp` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    udp: Option<UdpFields>,
}

/// The Summary's UDP counts (`--udp`).
#[derive(Serialize)]
struct UdpFields {
    datagrams_in: u64,
    datagrams_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    dropped: u64,
}

/// The text line for `record` logged at `now`:
/// `<time> <LEVEL> [<EVENT>] <details>`.
pub fn text_line(now: SystemTime, record: &Record<'_>) -> String {
    format!(
        "{} {:<5} [{}] {}",
        rfc3339_millis(now),
        record.level().as_str(),
        record.target(),
        record.args()
    )
}

/// A record's key-values as typed JSON values, in the record's order.
struct Fields<'a, M>(&'a mut M);

impl<'kvs, M: SerializeMap> VisitSource<'kvs> for Fields<'_, M> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), KvError> {
        let mut null = IsNull(false);
        let _ = value.visit(&mut null);
        let typed = if null.0 {
            JsonValue::Null
        } else if let Some(v) = value.to_u64() {
            JsonValue::from(v)
        } else if let Some(v) = value.to_f64() {
            JsonValue::from(v)
        } else if let Some(v) = value.to_bool() {
            JsonValue::from(v)
        } else {
            JsonValue::from(value.to_string())
        };
        self.0
            .serialize_entry(key.as_str(), &typed)
            .map_err(|_| KvError::msg("JSON"))
    }
}

/// Tells a `None` key-value (JSON `null`) from the others.
struct IsNull(bool);

impl<'v> VisitValue<'v> for IsNull {
    fn visit_any(&mut self, _: Value<'_>) -> Result<(), KvError> {
        Ok(())
    }

    fn visit_null(&mut self) -> Result<(), KvError> {
        self.0 = true;
        Ok(())
    }
}

/// The JSON line for `record` logged at `now`.
pub fn json_line(now: SystemTime, record: &Record<'_>) -> String {
    json::to_string(&JsonLine {
        timestamp: rfc3339_millis(now),
        record,
    })
}

/// `timestamp`, `level`, `event` and `message`, then the record's
/// key-values as fields of their own. Written by hand rather than derived
/// because the key-values differ from event to event.
struct JsonLine<'a> {
    timestamp: String,
    record: &'a Record<'a>,
}

impl Serialize for JsonLine<'_> {
    fn serialize<S: Serializer>(&self, out: S) -> Result<S::Ok, S::Error> {
        let record = self.record;
        let mut map = out.serialize_map(None)?;
        map.serialize_entry("timestamp", &self.timestamp)?;
        map.serialize_entry("level", record.level().as_str())?;
        map.serialize_entry("event", record.target())?;
        map.serialize_entry("message", record.args())?;
        let _ = record.key_values().visit(&mut Fields(&mut map));
        map.end()
    }
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for `t` (UTC), as the text log writes it.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// let t = UNIX_EPOCH + Duration::from_millis(1_795_517_131_998);
/// assert_eq!(echo_server::server::logging::rfc3339_millis(t), "2026-11-24T10:45:31.998Z");
/// ```
pub fn rfc3339_millis(t: SystemTime) -> String {
    // humantime panics before 1970 and fails after 9999; a clock set that
    // far off must not stop the log.
    let t = t.clamp(UNIX_EPOCH, UNIX_EPOCH + LAST_MILLI_OF_9999);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The last millisecond humantime can write.
const LAST_MILLI_OF_9999: Duration = Duration::from_millis(253_402_300_799_999);

#[cfg(test)]
mod tests {
    use super::*;

    // Key-values become typed JSON fields beside the fixed ones.
    #[test]
    fn json_line_carries_fields() {
        let peer = "127.0.0.1:5000";
        let line = json_line(
            UNIX_EPOCH + Duration::from_millis(86_400_000 + 1),
            &Record::builder()
                .target("DISCONNECT")
                .level(log::Level::Info)
                .args(format_args!("{peer} \"quoted\""))
                .key_values(&[("bytes_in", Some(42u64)), ("srtt_ms", None)])
                .build(),
        );
        assert_eq!(
            line,
            r#"{"timestamp":"1970-01-02T00:00:00.001Z","level":"INFO","event":"DISCONNECT","message":"127.0.0.1:5000 \"quoted\"","bytes_in":42,"srtt_ms":null}"#
        );
    }

    // Leap years and ends of months come out right.
    #[test]
    fn timestamps_across_dates() {
        let at = |secs: u64| rfc3339_millis(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_704_067_199), "2023-12-31T23:59:59.000Z");
        // Out of the formatter's range: clamped, not a panic.
        let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(rfc3339_millis(before_1970), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(u64::MAX / 2), "9999-12-31T23:59:59.999Z");
    }
}
