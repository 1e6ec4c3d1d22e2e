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

/// With more than one listener, refuses to start when the listeners, the
/// `reserved` descriptors and `max_connections` connections do not fit the
/// open-file limit: a server on many ports is otherwise one that refuses
/// clients as soon as it is busy. (One listener keeps the warning at start,
/// as it always had.)
pub fn check_listener_fds(
    listeners: usize,
    max_connections: usize,
    reserved: u64,
) -> Result<(), String> {
    fits(
        getrlimit(Resource::Nofile).current,
        listeners,
        max_connections,
        reserved,
    )
}

fn fits(
    limit: Option<u64>,
    listeners: usize,
    max_connections: usize,
    reserved: u64,
) -> Result<(), String> {
    let (Some(limit), true) = (limit, listeners > 1) else {
        return Ok(());
    };
    // `reserved` already counts the listeners.
    let need = reserved + max_connections as u64;
    if need <= limit {
        return Ok(());
    }
    Err(format!(
        "{listeners} listeners and --max-connections {max_connections} need {need} file \
         descriptors, more than the open file limit of {limit}; raise it (`ulimit -n`), \
         lower --max-connections, or listen on fewer ports"
    ))
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

    // Many listeners and the connection limit must fit the open-file
    // limit; one listener is only warned about at start.
    #[test]
    fn listeners_and_connections_must_fit_the_limit() {
        let reserved = reserved_fds(None) + 999;
        assert!(fits(Some(1024), 1000, 10_000, reserved).is_err());
        let error = fits(Some(1024), 1000, 20, reserved).unwrap_err();
        assert!(error.contains("1000 listeners"), "{error}");
        assert!(error.contains("open file limit of 1024"), "{error}");
        assert!(fits(Some(20_000), 1000, 10_000, reserved).is_ok());
        assert!(fits(None, 1000, 10_000, reserved).is_ok());
        assert!(fits(Some(100), 1, 10_000, reserved_fds(None)).is_ok());
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
