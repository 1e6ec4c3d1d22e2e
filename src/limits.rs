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
