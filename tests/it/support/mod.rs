//! What the tests share: running the real binaries and observing them
//! from the outside. Every wait has a deadline.

pub mod browser;
pub mod client;
pub mod endpoint;
mod log;
pub mod peers;
mod process;
mod rng;
mod server;
mod sockets;
pub mod tls;
pub mod udp;

pub use log::*;
pub use process::*;
pub use rng::*;
pub use server::*;
pub use sockets::*;

use std::thread;
use std::time::{Duration, Instant};

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p).any(|d| {
                let f = d.join(tool);
                std::fs::metadata(&f)
                    .map(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.is_file() && m.permissions().mode() & 0o111 != 0
                    })
                    .unwrap_or(false)
            })
        })
        .unwrap_or(false)
}

/// True when the tests must not skip (CI sets ECHO_SERVER_REQUIRE_TOOLS=1).
pub fn tools_required() -> bool {
    std::env::var("ECHO_SERVER_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Reports a skip (or panics when skips are forbidden). Always returns false.
pub fn skip(test: &str, what: &str) -> bool {
    let msg = format!("SKIP: {test}: {what}");
    if tools_required() {
        panic!("{msg} (ECHO_SERVER_REQUIRE_TOOLS=1)");
    }
    eprintln!("{msg}");
    false
}

/// Returns true when `tool` is installed; otherwise prints the SKIP line (or panics
/// when ECHO_SERVER_REQUIRE_TOOLS=1) and returns false.
pub fn require_tool(test: &str, tool: &str) -> bool {
    if on_path(tool) {
        true
    } else {
        skip(test, &format!("{tool} not installed"))
    }
}

/// Raises this process's soft RLIMIT_NOFILE to at least `want` (and the hard limit
/// too when running as root). Returns the resulting soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let soft = cur.current.unwrap_or(u64::MAX);
    let hard = cur.maximum.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    if hard >= want {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: cur.maximum,
            },
        );
    } else if rustix::process::geteuid().is_root() {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: Some(want),
            },
        );
    } else {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(hard),
                maximum: cur.maximum,
            },
        );
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Polls `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True when `ECHO_SERVER_FULL_FAULTS=1`: the fault suite then runs the sizes
/// RELIABILITY.md's fault table gives as "full" instead of the reduced ones that keep CI within minutes.
pub fn full_faults() -> bool {
    std::env::var("ECHO_SERVER_FULL_FAULTS").is_ok_and(|v| v == "1")
}

/// `full` under `ECHO_SERVER_FULL_FAULTS=1`, else `ci`; prints the choice so a
/// `--nocapture` run says which size it measured.
pub fn fault_size<T: Copy + std::fmt::Debug>(what: &str, ci: T, full: T) -> T {
    let (size, which) = if full_faults() {
        (full, "full")
    } else {
        (ci, "CI")
    };
    eprintln!("{what}: {size:?} ({which} size; CI {ci:?}, full {full:?})");
    size
}

/// The `p`-th percentile (0..=100) of `samples`, which it sorts.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    assert!(!samples.is_empty(), "percentile of no samples");
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}

/// Held for its whole run by each test that loads the machine (thousands
/// of connections, streams of many MiB) or whose bounds are timings or
/// CPU and memory figures that such load would skew: no two of them run at
/// once, while the light tests run beside them as usual.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    // A test that failed while holding it poisoned it; the next may go on.
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}
