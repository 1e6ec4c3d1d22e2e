//! The log: one line per event, `<UTC time> <LEVEL> [<EVENT>] <details>`.
//!
//! The event name (CONNECT, DISCONNECT, DATA, …) is the log target, so it
//! stands in brackets where simple_logger prints the target, and users can
//! grep for `[DISCONNECT]`. Timestamps are UTC (RFC 3339 with
//! milliseconds): local offsets are ambiguous across hosts and DST, and a
//! diagnostic log is often compared with another machine's.

use log::{LevelFilter, SetLoggerError};
use simple_logger::SimpleLogger;

/// Starts logging to stdout at `level`.
pub fn init(level: LevelFilter) -> Result<(), SetLoggerError> {
    SimpleLogger::new()
        .with_level(level)
        .with_utc_timestamps()
        // mio is built without its `log` feature; this keeps any other
        // crate's internal lines out too.
        .with_module_level("mio", LevelFilter::Off)
        .init()
}
