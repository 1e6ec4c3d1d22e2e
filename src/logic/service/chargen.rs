//! `--mode chargen` (RFC 864): 72-character lines of the 95 printable
//! ASCII characters (space to `~`), each line starting one character
//! further along, each ending in CRLF; the stream repeats every 95 lines.
//! Generated only when the socket takes bytes (the connection asks for a
//! chunk when nothing waits in its buffer), so a slow reader never has
//! more than the one buffer generated ahead of it.

/// Characters per line, CRLF excluded.
const LINE: usize = 72;
/// The printable characters, space to `~`.
const PRINTABLE: usize = 95;
/// Bytes before the stream repeats: 95 lines of 72 characters and CRLF.
const CHARGEN_CYCLE: usize = PRINTABLE * (LINE + 2);

/// One whole cycle of the stream, from its first line.
static PATTERN: [u8; CHARGEN_CYCLE] = pattern();

const fn pattern() -> [u8; CHARGEN_CYCLE] {
    let mut out = [0u8; CHARGEN_CYCLE];
    let mut line = 0;
    while line < PRINTABLE {
        let start = line * (LINE + 2);
        let mut i = 0;
        while i < LINE {
            out[start + i] = b' ' + ((line + i) % PRINTABLE) as u8;
            i += 1;
        }
        out[start + LINE] = b'\r';
        out[start + LINE + 1] = b'\n';
        line += 1;
    }
    out
}

/// Where one connection's stream is in the cycle.
#[derive(Debug, Default)]
pub struct Chargen {
    at: usize,
}

impl Chargen {
    /// Fills `buf` with the stream's next bytes.
    pub fn generate(&mut self, buf: &mut [u8]) {
        let mut filled = 0;
        while filled < buf.len() {
            let n = (CHARGEN_CYCLE - self.at).min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&PATTERN[self.at..self.at + n]);
            filled += n;
            self.at = (self.at + n) % CHARGEN_CYCLE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The lines RFC 864 shows, on the 95-character ring: each starts one
    // character later, ends in CRLF, and the 96th is the first again,
    // however the stream is cut into chunks.
    #[test]
    fn lines_rotate_and_repeat() {
        let mut chargen = Chargen::default();
        let mut stream = Vec::new();
        for size in [1usize, 73, 7000, 74 * 96 - 7074] {
            let mut chunk = vec![0; size];
            chargen.generate(&mut chunk);
            stream.extend(chunk);
        }
        let lines: Vec<&[u8]> = stream.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 96);
        assert_eq!(
            lines[0],
            &b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefg\r\n"[..]
        );
        assert_eq!(&lines[1][..3], b"!\"#");
        assert_eq!(&lines[94][..3], b"~ !");
        assert_eq!(lines[95], lines[0]);
        assert!(lines.iter().all(|l| l.len() == 74 && l.ends_with(b"\r\n")));
    }
}
