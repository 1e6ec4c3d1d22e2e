//! The client's stdout and stderr, written so that no state of either can
//! make it panic or exit with a code `--help` does not list.
//!
//! - A reader of stdout or stderr that has gone away (`echo-client ping |
//!   head`) ends the client by SIGPIPE, like any Unix filter: SIGPIPE keeps
//!   its default action (see [`crate::os::signal::restore_default_sigpipe`]).
//! - Any other failed write to stdout (a full disk, `/dev/full`, a
//!   descriptor not open for writing, or EPIPE when the parent left SIGPIPE
//!   blocked) is reported once on stderr and remembered: later stdout
//!   writes are skipped, ping stops probing, and [`exit_code`] turns a run
//!   that otherwise passed into exit 7.
//! - A failed write to stderr is ignored: there is nowhere left to say it,
//!   and the exit code still tells.
//!
//! A stdout closed outright (`>&-`) takes the output away like
//! `>/dev/null`: the Rust runtime opens `/dev/null` on a standard
//! descriptor that is closed at start. One open but not for writing
//! (`1</dev/null`) fails with EBADF, which is reported.

use std::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::exit;

/// Set by the first failed write to stdout.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes one line on stdout (see the module notes for failures).
pub fn line(args: fmt::Arguments<'_>) {
    stdout_write(args, true);
}

/// Writes `args` on stdout as they are, without adding a newline.
pub fn text(args: fmt::Arguments<'_>) {
    stdout_write(args, false);
}

/// Writes one line on stderr; a failure is ignored.
pub fn err_line(args: fmt::Arguments<'_>) {
    stderr_write(args, true);
}

/// Writes `args` on stderr as they are (a progress line); a failure is
/// ignored.
pub fn err_text(args: fmt::Arguments<'_>) {
    stderr_write(args, false);
}

/// One `--json-stream` line, `{"event": …, "data": document}` (iperf3's
/// shape), `document` being one JSON object already.
pub fn stream_event(event: &str, document: &str) {
    line(format_args!(
        "{{\"event\":\"{event}\",\"data\":{document}}}"
    ));
}

/// Whether a write to stdout has failed: the output is incomplete.
pub fn stdout_failed() -> bool {
    STDOUT_FAILED.load(Ordering::Relaxed)
}

/// The exit code for a run that ended with `code`: [`exit::OTHER`] instead
/// of a pass when its output could not be written, `code` otherwise (a
/// failure of the run itself says more than the lost output).
pub fn exit_code(code: u8) -> u8 {
    if code == exit::OK && stdout_failed() {
        exit::OTHER
    } else {
        code
    }
}

fn stdout_write(args: fmt::Arguments<'_>, newline: bool) {
    if stdout_failed() {
        return;
    }
    // The bench's bulk sender keeps SIGPIPE blocked while it splices; a gone
    // reader must end the process here, as it would anywhere else.
    crate::os::sigpipe::release();
    if let Err(e) = write_all(rustix::stdio::stdout(), &render(args, newline)) {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
        err_line(format_args!(
            "echo-client: cannot write to standard output: {e}"
        ));
    }
}

fn stderr_write(args: fmt::Arguments<'_>, newline: bool) {
    crate::os::sigpipe::release();
    let _ = write_all(rustix::stdio::stderr(), &render(args, newline));
}

fn render(args: fmt::Arguments<'_>, newline: bool) -> String {
    let mut text = fmt::format(args);
    if newline {
        text.push('\n');
    }
    text
}

/// Writes straight to the descriptor: std's stdout and stderr count EBADF
/// (a descriptor not open for writing) as success and drop the output
/// without a word.
fn write_all(fd: BorrowedFd<'_>, text: &str) -> io::Result<()> {
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        match rustix::io::write(fd, rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `println!` for the client: [`line`] with format arguments.
macro_rules! outln {
    () => {
        $crate::client::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::client::output::line(format_args!($($arg)*))
    };
}

/// `eprintln!` for the client: [`err_line`] with format arguments.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::client::output::err_line(format_args!($($arg)*))
    };
}

pub(crate) use errln;
pub(crate) use outln;
