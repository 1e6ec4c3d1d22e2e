//! The framed protocol (the concurrent-server seed): the server sends `*`
//! on connect; the client sends `^…$` frames; a frame is answered with
//! each byte plus one (wrapping) and `\n`, and a frame `P<digits>` with
//! `prime\n` or `composite\n`.
//!
//! The client computes every reply itself (a deterministic Miller–Rabin
//! for `u64`), so a wrong verdict is caught as surely as a wrong byte.

use std::time::Duration;

use crate::client::error::{ClientError, ReplyMismatch};
use crate::client::session::{Link, Session};

/// What the server sends once, on connect.
pub const HANDSHAKE: &[u8] = b"*";
/// The reply to a prime check whose number does not fit in `u64`.
pub const TOO_LARGE: &[u8] = b"error: number too large\n";

/// `^payload$`.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.push(b'^');
    out.extend_from_slice(payload);
    out.push(b'$');
    out
}

/// The reply to an echo frame: each byte plus one, wrapping, then `\n`.
pub fn plus_one(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 1);
    out.extend(payload.iter().map(|b| b.wrapping_add(1)));
    out.push(b'\n');
    out
}

/// Appends `payload`'s echo-frame reply to `out` (no allocation).
pub fn extend_plus_one(payload: &[u8], out: &mut Vec<u8>) {
    out.extend(payload.iter().map(|b| b.wrapping_add(1)));
    out.push(b'\n');
}

/// The reply to `^P<digits>$`.
pub fn prime_reply(digits: &str) -> &'static [u8] {
    match digits.parse::<u64>() {
        Ok(n) if is_prime(n) => b"prime\n",
        Ok(_) => b"composite\n",
        Err(_) => TOO_LARGE,
    }
}

/// Turns arbitrary bytes into an echo frame's payload: `^` and `$` would
/// start or end a frame, and a leading `P` would make it a prime check,
/// so those get their top bit set (the replies still cover every byte
/// value, 255's wrap to 0 included).
pub fn sanitize(payload: &mut [u8]) {
    for b in payload.iter_mut() {
        if *b == b'^' || *b == b'$' {
            *b |= 0x80;
        }
    }
    if let Some(first @ b'P') = payload.first_mut() {
        *first |= 0x80;
    }
}

/// A user's MESSAGE as a frame and the reply it must get: `P` and digits
/// is a prime check, anything else an echo frame.
pub fn request(message: &[u8]) -> Result<(Vec<u8>, Vec<u8>), ClientError> {
    if let Some(at) = message.iter().position(|&b| b == b'^' || b == b'$') {
        return Err(ClientError::Usage(format!(
            "--mode framed: MESSAGE cannot contain '{}' (byte {at}): it delimits frames",
            message[at] as char
        )));
    }
    if let Some(digits) = message.strip_prefix(b"P") {
        let digits = std::str::from_utf8(digits).unwrap_or("");
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ClientError::Usage(
                "--mode framed: a MESSAGE starting with P is a prime check: P and decimal digits, like P1000000007".into(),
            ));
        }
        return Ok((frame(message), prime_reply(digits).to_vec()));
    }
    Ok((frame(message), plus_one(message)))
}

/// Deterministic Miller–Rabin: these twelve bases decide every `u64`.
pub fn is_prime(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for p in BASES {
        if n % p == 0 {
            return n == p;
        }
    }
    let mut d = n - 1;
    let mut s = 0;
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    let mul = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let pow = |mut base: u64, mut exp: u64| {
        let mut acc = 1u64;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = mul(acc, base);
            }
            base = mul(base, base);
            exp >>= 1;
        }
        acc
    };
    'bases: for a in BASES {
        let mut x = pow(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul(x, x);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

/// One exchange on a framed connection: writes `request`, checks that
/// exactly `reply` comes back. `received` is the count of bytes the server
/// has sent on the connection so far (for the offset of a mismatch);
/// `what` says which exchange it is ("the handshake", "frame 3").
pub fn exchange(
    session: &mut Session,
    stream: &mut Link,
    request: &[u8],
    reply: &[u8],
    timeout: Duration,
    received: u64,
    what: &str,
) -> Result<Duration, ClientError> {
    session
        .exchange(stream, request, reply, timeout)
        .map_err(|e| match e {
            ClientError::Mismatch(m) => ClientError::Reply(ReplyMismatch::from_mismatch(
                "framed",
                m,
                received,
                format!("in the reply to {what}, expected {}", show(reply)),
            )),
            other => other,
        })
}

/// A reply as text, escaped, for messages.
pub fn show(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(40)];
    let mut out: String = String::from_utf8_lossy(shown)
        .chars()
        .flat_map(char::escape_debug)
        .collect();
    if bytes.len() > shown.len() {
        out.push('…');
    }
    format!("\"{out}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_the_protocol() {
        assert_eq!(frame(b"abc"), b"^abc$");
        assert_eq!(plus_one(b"abc\xff"), b"bcd\x00\n");
        assert_eq!(prime_reply("1000000007"), b"prime\n");
        assert_eq!(prime_reply("1000000008"), b"composite\n");
        assert_eq!(prime_reply("18446744073709551616"), TOO_LARGE);
        assert_eq!(prime_reply("18446744073709551557"), b"prime\n");
    }

    #[test]
    fn primality_matches_trial_division() {
        let slow = |n: u64| n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0);
        for n in (0..5000).chain(1_000_000_000..1_000_002_000) {
            assert_eq!(is_prime(n), slow(n), "{n}");
        }
        // Strong pseudoprimes to several small bases.
        for n in [
            3_215_031_751u64,
            341_550_071_728_321,
            3_825_123_056_546_413_051,
        ] {
            assert!(!is_prime(n), "{n}");
        }
        assert!(is_prime(9_223_372_036_854_775_783));
    }

    #[test]
    fn messages_become_requests() {
        assert_eq!(
            request(b"hi").unwrap(),
            (b"^hi$".to_vec(), b"ij\n".to_vec())
        );
        assert_eq!(request(b"P97").unwrap().1, b"prime\n");
        for bad in [&b"a$b"[..], b"^", b"P", b"P12x"] {
            assert!(
                matches!(request(bad), Err(ClientError::Usage(_))),
                "{bad:?}"
            );
        }
        let mut p = *b"P^x$";
        sanitize(&mut p);
        assert_eq!(p, [b'P' | 0x80, b'^' | 0x80, b'x', b'$' | 0x80]);
    }
}
