//! `--max-line N` for `echo` and `upper`: a line (bytes up to and with a
//! `\n`) of at most N bytes before its newline is answered as the mode
//! answers it; a longer one gets `error: line too long (max N)\n` and is
//! dropped up to its newline. The line being read is held in the
//! connection's buffer (at most N bytes) until its newline shows it is
//! short enough; a final line without newline is answered at EOF.

use super::Output;

/// Room a line limiter needs in the buffer beyond N bytes of line: the
/// error, with some to spare so reads never shrink to nothing.
pub const LINES_HEADROOM: usize = 64;

/// The reply to a line longer than `max`.
pub(super) fn line_error(max: usize) -> String {
    format!("error: line too long (max {max})\n")
}

/// One connection's line limiter.
#[derive(Debug)]
pub struct Lines {
    max: usize,
    upper: bool,
    /// Bytes of the current line so far.
    len: usize,
    /// The current line was too long: drop up to its newline.
    dropping: bool,
}

impl Lines {
    /// Lines of at most `max` bytes, uppercased if `upper`.
    pub fn new(max: usize, upper: bool) -> Self {
        Self {
            max,
            upper,
            len: 0,
            dropping: false,
        }
    }

    /// Input whose answer surely fits in `free` bytes: every byte may come
    /// back, and each `max + 1` bytes may add an error.
    pub(super) fn input_room(&self, free: usize) -> usize {
        let error = line_error(self.max).len();
        let per = self.max + 1;
        // k + error·(k / per + 1) ≤ free.
        (free.saturating_sub(error) as u128 * per as u128 / (per + error) as u128) as usize
    }

    pub(super) fn feed(&mut self, input: &mut [u8], out: &mut Output<'_>) {
        let mut rest = input;
        while !rest.is_empty() {
            let newline = rest.iter().position(|&b| b == b'\n');
            let end = newline.map_or(rest.len(), |i| i + 1);
            let (line, tail) = std::mem::take(&mut rest).split_at_mut(end);
            rest = tail;
            let body = line.len() - usize::from(newline.is_some());
            if !self.dropping && self.len + body > self.max {
                out.drop_held();
                out.send(line_error(self.max).as_bytes());
                self.dropping = true;
            }
            if self.dropping {
                if newline.is_some() {
                    self.dropping = false;
                    self.len = 0;
                }
                continue;
            }
            if self.upper {
                line.make_ascii_uppercase();
            }
            out.hold(line);
            self.len += body;
            if newline.is_some() {
                out.release_held();
                self.len = 0;
            }
        }
    }

    pub(super) fn finish(&mut self, out: &mut Output<'_>) {
        out.release_held();
        self.len = 0;
        self.dropping = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logic::buffer::PendingBuffer;

    fn run(max: usize, upper: bool, chunks: &[&[u8]], eof: bool) -> Vec<u8> {
        let mut lines = Lines::new(max, upper);
        let mut pending = PendingBuffer::new(1024);
        let mut held = 0;
        for chunk in chunks {
            let mut input = chunk.to_vec();
            lines.feed(&mut input, &mut Output::new(&mut pending, &mut held));
        }
        if eof {
            lines.finish(&mut Output::new(&mut pending, &mut held));
        }
        let mut sent = Vec::new();
        let mut flushable = pending.len() - held;
        while flushable > 0 {
            let chunk = pending.readable();
            let n = chunk.len().min(flushable);
            sent.extend_from_slice(&chunk[..n]);
            pending.consume(n);
            flushable -= n;
        }
        sent
    }

    // Short lines come back (uppercased in upper), a long one is replaced
    // by the error and dropped to its newline, even across reads; a line
    // is sent only once its newline came; the last one at EOF.
    #[test]
    fn long_lines_are_refused_to_their_newline() {
        assert_eq!(
            run(5, false, &[b"hello\nhello!\nok\n"], false),
            b"hello\nerror: line too long (max 5)\nok\n"
        );
        assert_eq!(
            run(5, true, &[b"ab", b"c", b"\nabc", b"def", b"gh\nx"], false),
            b"ABC\nerror: line too long (max 5)\n"
        );
        assert_eq!(run(5, true, &[b"ab\nlast"], true), b"AB\nLAST");
        assert_eq!(run(3, false, &[b"\n\n"], false), b"\n\n");
    }

    // The room a read gets always fits the worst answer: lines of max+1
    // bytes, each turned into an error.
    #[test]
    fn input_room_fits_the_worst_case() {
        for max in [1usize, 2, 20, 100] {
            let lines = Lines::new(max, false);
            for free in [0usize, 10, 64, 65, 200, 1000] {
                let k = lines.input_room(free);
                let worst: Vec<u8> = (0..k)
                    .map(|i| {
                        if i % (max + 2) == max + 1 {
                            b'\n'
                        } else {
                            b'x'
                        }
                    })
                    .collect();
                let mut pending = PendingBuffer::new(free.max(1));
                let mut held = 0;
                let mut input = worst.clone();
                Lines::new(max, false).feed(&mut input, &mut Output::new(&mut pending, &mut held));
                assert!(pending.len() <= free, "max {max} free {free}");
                if free >= max + LINES_HEADROOM {
                    assert!(k > 0, "max {max} free {free}: no room");
                }
            }
        }
    }
}
