//! `--mode upper`: ASCII letters uppercased; every other byte (UTF-8
//! continuation bytes, NUL, CR, LF) goes back as it came.

use super::Output;

/// Answers one read: the same bytes, ASCII letters uppercased.
pub(super) fn feed(input: &mut [u8], out: &mut Output<'_>) {
    input.make_ascii_uppercase();
    out.send(input);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::buffer::PendingBuffer;

    // Letters only: UTF-8 (é is C3 A9), NUL and CRLF are untouched.
    #[test]
    fn uppercases_ascii_letters_only() {
        let mut pending = PendingBuffer::new(64);
        let mut held = 0;
        let mut input = "héllo, wörld\0\r\n{}".as_bytes().to_vec();
        feed(&mut input, &mut Output::new(&mut pending, &mut held));
        assert_eq!(pending.readable(), "HéLLO, WöRLD\0\r\n{}".as_bytes());
    }
}
