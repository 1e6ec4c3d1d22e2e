//! A benchmark run's failures, the first of each class, and the one the
//! run ends with.
//!
//! A run can fail in several ways at once (one connection corrupted, another
//! closed early). The exit code goes by the most serious class, and the
//! line printed must name a failure of that same class: an exit code of 1
//! with a message about a close would send the user looking for the wrong
//! fault.

use crate::client::error::ClientError;

/// Classes, most serious first.
const CLASSES: usize = 4;

/// The first failure of each class.
#[derive(Debug, Default)]
pub struct Failures {
    first: [Option<ClientError>; CLASSES],
}

impl Failures {
    /// Keeps `error` if it is the first of its class.
    pub fn note(&mut self, error: ClientError) {
        let slot = &mut self.first[class(&error)];
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    /// The failure the run ends with: the first of the most serious class.
    pub fn decisive(&self) -> Option<&ClientError> {
        self.first.iter().flatten().next()
    }

    /// Takes the decisive failure out, for a run that cannot report at all.
    pub fn take_decisive(&mut self) -> Option<ClientError> {
        self.first.iter_mut().find_map(Option::take)
    }
}

/// 0: the echo was wrong; 1: the server closed early; 2: echoes too late;
/// 3: a connection could not be made (or anything else).
fn class(error: &ClientError) -> usize {
    match error {
        ClientError::Mismatch(_) | ClientError::Reply(_) => 0,
        ClientError::ClosedEarly { .. } => 1,
        ClientError::EchoTimeout { .. }
        | ClientError::DrainTimeout { .. }
        | ClientError::Stalled { .. } => 2,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::error::{exit, Mismatch};
    use std::time::Duration;

    #[test]
    fn the_most_serious_class_decides_whatever_came_first() {
        let mut f = Failures::default();
        assert!(f.decisive().is_none());
        f.note(ClientError::Refused("127.0.0.1:1".parse().unwrap()));
        f.note(ClientError::ClosedEarly {
            received: 640,
            expected: 704,
            reset: false,
        });
        f.note(ClientError::Mismatch(Mismatch {
            offset: 6400,
            sent: 1,
            received: Some(2),
        }));
        // A second failure of a class does not replace the first.
        f.note(ClientError::Mismatch(Mismatch {
            offset: 9,
            sent: 1,
            received: Some(2),
        }));
        let decisive = f.decisive().unwrap();
        assert_eq!(decisive.exit_code(), exit::MISMATCH);
        assert!(decisive.to_string().contains("offset 6400"), "{decisive}");

        let mut f = Failures::default();
        f.note(ClientError::DrainTimeout {
            connections: 1,
            bytes: 64,
            after: Duration::from_secs(1),
        });
        f.note(ClientError::ClosedEarly {
            received: 0,
            expected: 64,
            reset: true,
        });
        assert_eq!(f.take_decisive().unwrap().exit_code(), exit::CLOSED);
        assert_eq!(f.take_decisive().unwrap().exit_code(), exit::TIMEOUT);
        assert!(f.take_decisive().is_none());
    }
}
