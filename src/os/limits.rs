//! The open-file limit, which caps how many connections one process holds.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

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

/// Descriptors kept for everything that is not a connection (stdio,
/// listeners, poll, signal pipes, endpoint clients).
const OTHER_FDS: u64 = 64;

/// How many zero-copy pipes the server can afford under the current
/// open-file limit without taking descriptors that `max_connections`
/// connections need.
pub fn pipe_budget(max_connections: usize) -> usize {
    budget_under(getrlimit(Resource::Nofile).current, max_connections)
}

fn budget_under(soft_limit: Option<u64>, max_connections: usize) -> usize {
    let Some(limit) = soft_limit else {
        return MAX_PIPES;
    };
    let spare = limit.saturating_sub(max_connections as u64 + OTHER_FDS) / 2;
    usize::try_from(spare).unwrap_or(MAX_PIPES).min(MAX_PIPES)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pipes never eat into the descriptors the connection limit needs.
    #[test]
    fn pipes_fit_beside_the_connection_limit() {
        assert_eq!(budget_under(Some(20_000), 10_000), MAX_PIPES);
        assert_eq!(budget_under(Some(10_100), 10_000), 18);
        assert_eq!(budget_under(Some(1024), 10_000), 0);
        assert_eq!(budget_under(None, 10_000), MAX_PIPES);
    }
}
