//! `--mode discard` (RFC 863): bytes are read and counted (by the
//! connection, as every mode's are), and nothing is sent. The peer's FIN
//! is answered with FIN when the connection closes after its EOF, as in
//! every mode. Chargen drops its input the same way.

/// Answers one read: with nothing.
pub(super) fn feed(input: &mut [u8]) {
    let _ = input;
}
