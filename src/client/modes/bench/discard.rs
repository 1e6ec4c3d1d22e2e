//! discard (RFC 863): write as fast as the server takes the bytes; any
//! byte it sends back is a mismatch.

use mio::net::TcpStream;

use super::{both, read_some, write_some, Counters, Driver, Step, TURN_BUDGET};
use crate::client::error::{ClientError, ReplyMismatch};
use crate::client::modes::ServiceMode;

/// One discard connection.
pub struct Discard {
    /// What each write sends (a window of the shared pattern table).
    pub payload: &'static [u8],
}

impl Driver for Discard {
    fn turn(
        &mut self,
        stream: &mut TcpStream,
        scratch: &mut [u8],
        sending: bool,
        counters: &mut Counters,
    ) -> Result<Step, ClientError> {
        let read = read_some(ServiceMode::Discard, stream, scratch, |data| {
            Err(ClientError::Reply(ReplyMismatch {
                mode: "discard",
                offset: 0,
                expected: None,
                received: Some(data[0]),
                context: "RFC 863 sends nothing back".into(),
            }))
        })?;
        let mut write = Step::Wait;
        if sending {
            write = Step::Again;
            for _ in 0..TURN_BUDGET {
                let n = write_some(ServiceMode::Discard, stream, self.payload)?;
                counters.up += n as u64;
                if n < self.payload.len() {
                    write = Step::Wait;
                    break;
                }
            }
        }
        Ok(both(read, write))
    }
}
