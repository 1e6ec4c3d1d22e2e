//! The server's service modes as the client sees them (`--mode`): what
//! each answers, and the checks of those answers.
//!
//! - [`ServiceMode`]: the names, as `echo-server --mode` takes them.
//! - [`ByteMap`]: modes whose reply is the input with each byte mapped
//!   (echo, upper).
//! - [`framed`]: the `*` / `^…$` protocol: frames, their replies, primes.
//! - [`chargen`]: the RFC 864 stream and its check.
//! - [`bench`]: `bench --mode discard|chargen|framed`.

pub mod bench;
pub mod chargen;
pub mod framed;

use std::fmt;

use clap::ValueEnum;

use super::error::ClientError;

/// What the server at the other end does with the bytes it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ServiceMode {
    /// Sends every byte back unchanged.
    #[default]
    Echo,
    /// Sends every byte back, ASCII letters uppercased.
    Upper,
    /// RFC 863: reads and sends nothing back.
    Discard,
    /// RFC 864: sends 72-character lines of printable ASCII, ignores input.
    Chargen,
    /// `*` on connect, then `^…$` frames answered each byte + 1 and `\n`,
    /// `^P<number>$` answered `prime` or `composite`.
    Framed,
}

impl ServiceMode {
    /// The name, as `--mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Upper => "upper",
            Self::Discard => "discard",
            Self::Chargen => "chargen",
            Self::Framed => "framed",
        }
    }

    /// The usage error for a command that has nothing to check in this
    /// mode, naming the commands that do.
    pub fn unsupported(self, command: &str, supported: &str) -> ClientError {
        ClientError::Usage(format!(
            "{command} --mode {self}: not available; {command} supports --mode {supported}"
        ))
    }
}

impl fmt::Display for ServiceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A reply made of the input with each byte mapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteMap {
    /// Echo: every byte unchanged.
    Same,
    /// Upper: ASCII letters uppercased, every other byte unchanged.
    Upper,
}

impl ByteMap {
    /// What the server sends back for `byte`.
    pub fn apply(self, byte: u8) -> u8 {
        match self {
            Self::Same => byte,
            Self::Upper => byte.to_ascii_uppercase(),
        }
    }

    /// The first index where `got` is not `sent` mapped, over their common
    /// length.
    pub fn first_difference(self, sent: &[u8], got: &[u8]) -> Option<usize> {
        sent.iter().zip(got).position(|(&s, &g)| self.apply(s) != g)
    }

    /// The mode's name in messages.
    pub fn mode(self) -> &'static str {
        match self {
            Self::Same => "echo",
            Self::Upper => "upper",
        }
    }

    /// A failure of a transfer checked with this map, told in the mode's
    /// terms: an upper reply that differs is a [`ClientError::Reply`].
    pub fn relabel(self, error: ClientError) -> ClientError {
        match (self, error) {
            (Self::Upper, ClientError::Mismatch(m)) => ClientError::Reply(
                super::error::ReplyMismatch::from_mismatch("upper", m, 0, String::new()),
            ),
            (_, other) => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_maps_ascii_letters_only() {
        let sent = b"abz AZ \xc3\xa9\x00\r\n{`@[";
        let mapped: Vec<u8> = sent.iter().map(|&b| ByteMap::Upper.apply(b)).collect();
        assert_eq!(mapped, b"ABZ AZ \xc3\xa9\x00\r\n{`@[");
        assert_eq!(ByteMap::Upper.first_difference(b"abc", b"ABc"), Some(2));
        assert_eq!(ByteMap::Upper.first_difference(b"abc", b"AB"), None);
    }
}
