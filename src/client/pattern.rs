//! The bytes the client sends when the user gives none, and the check that
//! what came back is exactly them.
//!
//! Every connection sends its own pseudo-random stream: a fixed table of
//! [`PERIOD`] bytes read from a connection-specific phase. Verifying is a
//! `memcmp` against the table, so it costs far less than the echo itself,
//! and a server that swaps, drops, repeats or crosses bytes between
//! connections shows up at the first wrong offset.
//!
//! The table is built once per process and never freed or written: the
//! bulk sender hands its pages to the kernel by reference (`vmsplice`), and
//! the kernel may still hold them, in a pipe or a socket buffer, after the
//! connection or even the process is gone.

use std::sync::OnceLock;

/// Length of the table. Prime, so the stream does not line up with any
/// power-of-two buffer size a server might repeat or skip.
pub const PERIOD: usize = 65_521;
/// Longest contiguous window [`Pattern::window`] hands out.
pub const MAX_WINDOW: usize = 64 * 1024;
/// Phase step between streams: prime and far from small multiples of
/// [`PERIOD`], so neighbouring connections send different bytes.
const STREAM_STEP: u64 = 7_919;

/// The table: `PERIOD` bytes, then `MAX_WINDOW` more continuing the cycle,
/// so every window is one slice. A static is never dropped, and nothing
/// hands out `&mut` to it, so once built the bytes stay as they are for
/// the rest of the process.
static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();

/// A handle on the shared byte table.
#[derive(Debug, Clone, Copy)]
pub struct Pattern {
    table: &'static [u8],
}

impl Default for Pattern {
    fn default() -> Self {
        Self::new()
    }
}

/// One step of Marsaglia's xorshift64: fast, deterministic and with no
/// dependency. The table below and the tests' generator
/// (`model_check::Rng`) both draw from it. `state` must not be 0.
pub(crate) fn xorshift64(mut state: u64) -> u64 {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    state
}

/// Builds the table (xorshift64, fixed seed: runs are reproducible).
fn build() -> Box<[u8]> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut table: Vec<u8> = (0..PERIOD)
        .map(|_| {
            state = xorshift64(state);
            (state >> 24) as u8
        })
        .collect();
    // MAX_WINDOW exceeds PERIOD, so the tail wraps past the start.
    table.extend(
        (0..MAX_WINDOW)
            .map(|i| table[i % PERIOD])
            .collect::<Vec<u8>>(),
    );
    table.into_boxed_slice()
}

impl Pattern {
    /// The shared table, built on first use.
    pub fn new() -> Self {
        Self {
            table: TABLE.get_or_init(build),
        }
    }

    fn start(stream: u64, offset: u64) -> usize {
        let phase = stream.wrapping_mul(STREAM_STEP) % PERIOD as u64;
        ((phase + offset % PERIOD as u64) % PERIOD as u64) as usize
    }

    /// The bytes of `stream` at `offset..offset + len`; `len` is capped at
    /// [`MAX_WINDOW`], so callers loop for longer runs. The slice is part
    /// of the process-wide table, so it never changes.
    pub fn window(&self, stream: u64, offset: u64, len: usize) -> &'static [u8] {
        let start = Self::start(stream, offset);
        &self.table[start..start + len.min(MAX_WINDOW)]
    }

    /// Appends `len` bytes of `stream` from `offset` to `out`.
    pub fn extend(&self, stream: u64, offset: u64, len: usize, out: &mut Vec<u8>) {
        let mut done = 0;
        while done < len {
            let chunk = self.window(stream, offset + done as u64, len - done);
            out.extend_from_slice(chunk);
            done += chunk.len();
        }
    }

    /// Index in `data` of the first byte that differs from `stream` at
    /// `offset..`, or `None` if all of `data` is right.
    pub fn first_mismatch(&self, stream: u64, offset: u64, data: &[u8]) -> Option<usize> {
        let mut checked = 0;
        while checked < data.len() {
            let expected = self.window(stream, offset + checked as u64, data.len() - checked);
            let got = &data[checked..checked + expected.len()];
            if got != expected {
                return first_difference(expected, got).map(|i| checked + i);
            }
            checked += expected.len();
        }
        None
    }
}

/// Index of the first differing byte of two slices (compared up to the
/// shorter one).
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_continue_each_other_across_the_wrap() {
        let p = Pattern::new();
        let mut long = Vec::new();
        p.extend(3, PERIOD as u64 - 10, 3 * MAX_WINDOW, &mut long);
        assert_eq!(long.len(), 3 * MAX_WINDOW);
        for (i, chunk) in long.chunks(1000).enumerate() {
            let offset = PERIOD as u64 - 10 + (i * 1000) as u64;
            assert_eq!(p.first_mismatch(3, offset, chunk), None);
        }
    }

    #[test]
    fn any_single_corruption_is_found_at_its_offset() {
        let p = Pattern::new();
        let mut data = Vec::new();
        p.extend(1, 500, 200_000, &mut data);
        for at in [0, 1, 65_520, 65_521, 131_072, 199_999] {
            let mut bad = data.clone();
            bad[at] ^= 0x20;
            assert_eq!(p.first_mismatch(1, 500, &bad), Some(at));
        }
    }

    #[test]
    fn streams_differ_and_shifted_data_is_caught() {
        let p = Pattern::new();
        assert_ne!(p.window(0, 0, 64), p.window(1, 0, 64));
        let mut data = Vec::new();
        p.extend(0, 0, 4096, &mut data);
        // Bytes of another connection, or this one's bytes one message late.
        assert!(p.first_mismatch(1, 0, &data).is_some());
        assert!(p.first_mismatch(0, 64, &data).is_some());
    }

    // The payload is pinned: a change to the generator fails here instead
    // of silently sending different bytes.
    #[test]
    fn table_is_stable() {
        let table = build();
        assert_eq!(table[..8], [11, 2, 229, 54, 161, 78, 214, 26]);
        let digest = table.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!(digest, 0x92ba_d250_b7b6_7fef);
    }
}
