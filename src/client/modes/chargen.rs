//! The character generator's stream (RFC 864) and its check.
//!
//! RFC 864 suggests 72-character lines of the printing ASCII characters,
//! each line starting one character further along a ring, each ending in
//! CRLF. The ring differs between implementations: BSD inetd (and
//! `echo-server --mode chargen`) uses all 95 printing characters, space to
//! `~`; xinetd uses the 93 from `!` to `}`, and its lines start over after
//! 95 of them. The check accepts either, at
//! any starting line: the first byte says where each ring would be, and a
//! ring is dropped at its first wrong byte. Each chunk costs one `memcmp`
//! per ring still standing (one, after the first ring wrap).

use std::sync::OnceLock;

use crate::client::error::ReplyMismatch;
use crate::client::pattern::first_difference;

/// Characters per line, CRLF excluded.
pub const LINE: usize = 72;
/// Bytes per line, CRLF included.
const LINE_BYTES: usize = LINE + 2;
/// The rings as (first, last) character, and the lines before the stream
/// repeats.
const RINGS: [(u8, u8, usize); 2] = [(b' ', b'~', 95), (b'!', b'}', 95)];

/// One full cycle of each ring's stream, from its first line.
static CYCLES: OnceLock<[Box<[u8]>; 2]> = OnceLock::new();

/// The stream of a ring from `first` to `last`, one cycle of `lines`.
pub fn cycle(first: u8, last: u8, lines: usize) -> Vec<u8> {
    let ring: Vec<u8> = (first..=last).collect();
    let mut out = Vec::with_capacity(lines * LINE_BYTES);
    for line in 0..lines {
        out.extend((0..LINE).map(|i| ring[(line + i) % ring.len()]));
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn cycles() -> &'static [Box<[u8]>; 2] {
    CYCLES.get_or_init(|| {
        RINGS.map(|(first, last, lines)| cycle(first, last, lines).into_boxed_slice())
    })
}

/// Checks one connection's chargen stream as it arrives.
#[derive(Debug, Clone, Default)]
pub struct ChargenCheck {
    /// Bytes checked so far.
    offset: u64,
    /// Per ring still possible, the position in its cycle of the next byte.
    at: [Option<usize>; 2],
}

impl ChargenCheck {
    /// Bytes checked and found right.
    pub fn verified(&self) -> u64 {
        self.offset
    }

    /// Checks the next bytes of the stream.
    pub fn check(&mut self, data: &[u8]) -> Result<(), ReplyMismatch> {
        if data.is_empty() {
            return Ok(());
        }
        let cycles = cycles();
        if self.offset == 0 {
            for (i, &(first, last, _)) in RINGS.iter().enumerate() {
                self.at[i] = (first..=last)
                    .contains(&data[0])
                    .then(|| usize::from(data[0] - first) * LINE_BYTES);
            }
        }
        // Per ring: the first wrong byte in `data`, and the byte due there.
        let mut failed: [Option<(usize, u8)>; 2] = [None; 2];
        for (i, slot) in self.at.iter_mut().enumerate() {
            let Some(mut pos) = *slot else { continue };
            let cycle = &cycles[i];
            let mut done = 0;
            while done < data.len() {
                let n = (cycle.len() - pos).min(data.len() - done);
                let (due, got) = (&cycle[pos..pos + n], &data[done..done + n]);
                // Slice equality is one memcmp; the byte loop only runs to
                // name a difference.
                if due != got {
                    let k = first_difference(due, got).unwrap_or(0);
                    failed[i] = Some((done + k, due[k]));
                    break;
                }
                done += n;
                pos = (pos + n) % cycle.len();
            }
            *slot = failed[i].is_none().then_some(pos);
        }
        if self.at.iter().any(Option::is_some) {
            self.offset += data.len() as u64;
            return Ok(());
        }
        // The ring that got furthest names the byte that was due; with
        // none (the first byte is no line start), the RFC ring's first.
        let (k, expected) = failed
            .iter()
            .flatten()
            .copied()
            .max_by_key(|&(k, _)| k)
            .unwrap_or((0, RINGS[0].0));
        Err(ReplyMismatch {
            mode: "chargen",
            offset: self.offset + k as u64,
            expected: Some(expected),
            received: Some(data[k]),
            context: "not the RFC 864 pattern".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_ring_starts_with_space_and_lines_rotate() {
        let c = cycle(b' ', b'~', 95);
        assert_eq!(c.len(), 95 * 74);
        assert_eq!(&c[..3], b" !\"");
        assert_eq!(&c[72..76], b"\r\n!\"");
        let line94 = &c[94 * 74..];
        assert_eq!(line94[0], b'~');
        assert_eq!(line94[1], b' ');
    }

    #[test]
    fn any_ring_and_line_passes_in_any_split() {
        for (first, last, lines) in RINGS {
            let c = cycle(first, last, lines);
            let stream: Vec<u8> = c.iter().chain(c.iter()).skip(5 * 74).copied().collect();
            for split in [1, 7, 73, 74, 1000, stream.len()] {
                let mut check = ChargenCheck::default();
                for chunk in stream.chunks(split) {
                    check.check(chunk).unwrap();
                }
                assert_eq!(check.verified(), stream.len() as u64);
            }
        }
    }

    #[test]
    fn a_wrong_byte_is_found_at_its_offset() {
        let mut stream = cycle(b' ', b'~', 95);
        stream.extend_from_within(..);
        stream[9000] ^= 1;
        let due = stream[9000] ^ 1;
        let mut check = ChargenCheck::default();
        let mut result = Ok(());
        for chunk in stream.chunks(4096) {
            result = check.check(chunk);
            if result.is_err() {
                break;
            }
        }
        let m = result.unwrap_err();
        assert_eq!(
            (m.offset, m.expected, m.received),
            (9000, Some(due), Some(due ^ 1))
        );
        // Not a line start at all.
        let m = ChargenCheck::default().check(b"\r\nabc").unwrap_err();
        assert_eq!((m.offset, m.expected), (0, Some(b' ')));
    }
}
