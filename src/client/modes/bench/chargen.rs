//! chargen (RFC 864): read as fast as the server sends, checking every
//! byte against the pattern.

use mio::net::TcpStream;

use super::{read_some, Counters, Driver, Step};
use crate::client::error::ClientError;
use crate::client::modes::chargen::ChargenCheck;
use crate::client::modes::ServiceMode;

/// One chargen connection.
pub struct Chargen {
    check: ChargenCheck,
    /// Read size.
    size: usize,
}

impl Chargen {
    /// A connection reading `size` bytes at a time.
    pub fn new(size: usize) -> Self {
        Self {
            check: ChargenCheck::default(),
            size,
        }
    }
}

impl Driver for Chargen {
    fn turn(
        &mut self,
        stream: &mut TcpStream,
        scratch: &mut [u8],
        _sending: bool,
        counters: &mut Counters,
    ) -> Result<Step, ClientError> {
        let size = self.size.min(scratch.len());
        let check = &mut self.check;
        read_some(ServiceMode::Chargen, stream, &mut scratch[..size], |data| {
            check.check(data).map_err(ClientError::Reply)?;
            counters.down += data.len() as u64;
            Ok(())
        })
    }
}
