//! The open-file limit, which caps how many connections one process holds.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

use crate::os::signal::SERVER_SIGNALS;

/// The soft RLIMIT_NOFILE before and after [`raise_open_file_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// Soft limit found at start (`None`: unlimited).
    pub before: Option<u64>,
    /// Soft limit now in force (`None`: unlimited).
    pub after: Option<u64>,
}

/// Raises the soft open-file limit to the hard limit.
///
/// Shells commonly start programs with a soft limit of 1024 while allowing
/// far more; without this the server would refuse connections long before
/// the 10,000 it is meant to hold. Failure leaves the old limit in force,
/// which `after` then reports.
pub fn raise_open_file_limit() -> FileLimit {
    let current = getrlimit(Resource::Nofile);
    let before = current.current;
    let raised = Rlimit {
        current: current.maximum,
        maximum: current.maximum,
    };
    let after = if raised.current != before && setrlimit(Resource::Nofile, raised).is_ok() {
        raised.current
    } else {
        before
    };
    FileLimit { before, after }
}

/// Most connections that may echo through a pipe at once: streaming
/// clients are few, and each pipe costs two file descriptors.
pub const MAX_PIPES: usize = 256;

/// Descriptors the server holds besides its echo connections and their
/// pipes, when its metrics endpoint may hold `endpoint_clients` client
/// sockets (`None`: no endpoint). Both the warning at start and the pipe
/// budget count these, so that neither promises descriptors the server
/// itself uses.
pub fn reserved_fds(endpoint_clients: Option<usize>) -> u64 {
    /// stdin, stdout and stderr.
    const STDIO: u64 = 3;
    /// The epoll instance and the echo listener.
    const EVENT_LOOP: u64 = 2;
    /// The eventfd that wakes the loop once the log's last lines are
    /// written.
    const LOG_WAKER: u64 = 1;
    /// The socket of a client over `--max-connections`, accepted only to
    /// be closed.
    const TURNED_AWAY: u64 = 1;
    // A socket pair per handled signal.
    let signals = 2 * SERVER_SIGNALS.len() as u64;
    // Its listener and its clients.
    let endpoint = endpoint_clients.map_or(0, |clients| 1 + clients as u64);
    STDIO + EVENT_LOOP + LOG_WAKER + TURNED_AWAY + signals + endpoint
}

/// How many zero-copy pipes the server can afford under the current
/// open-file limit without taking descriptors that `max_connections`
/// connections and the `reserved` others (see [`reserved_fds`]) need.
pub fn pipe_budget(max_connections: usize, reserved: u64) -> usize {
    budget_under(
        getrlimit(Resource::Nofile).current,
        max_connections as u64 + reserved,
    )
}

/// The pipes that fit in `soft_limit` beside `held` other descriptors.
fn budget_under(soft_limit: Option<u64>, held: u64) -> usize {
    let Some(limit) = soft_limit else {
        return MAX_PIPES;
    };
    let spare = limit.saturating_sub(held) / 2;
    usize::try_from(spare).unwrap_or(MAX_PIPES).min(MAX_PIPES)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pipes never eat into the descriptors the connection limit needs.
    #[test]
    fn pipes_fit_beside_the_connection_limit() {
        let held = 10_000 + reserved_fds(None);
        assert_eq!(budget_under(Some(20_000), held), MAX_PIPES);
        assert_eq!(budget_under(Some(10_100), 10_064), 18);
        assert_eq!(budget_under(Some(1024), held), 0);
        assert_eq!(budget_under(None, held), MAX_PIPES);
    }

    // What the server opens besides connections: stdio, epoll, the echo
    // listener, four signals' socket pairs, the log's waker and the one
    // client turned away; with the endpoint, its listener and clients.
    #[test]
    fn reserved_descriptors_count_what_the_server_opens() {
        assert_eq!(reserved_fds(None), 3 + 2 + 8 + 1 + 1);
        assert_eq!(reserved_fds(Some(576)), reserved_fds(None) + 1 + 576);
    }
}
