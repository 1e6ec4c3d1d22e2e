//! The end of a certificate's validity (`notAfter`), read from its DER
//! with a minimal walk of the structure, for the expiry warning at start.
//! rustls checks certificates only as a client would; a server loading an
//! expired one is legal, so it is only warned about.

use std::time::SystemTime;

/// `notAfter` of a DER X.509 certificate; `None` if the structure is not
/// as expected (the warning is then skipped, nothing else depends on it).
pub fn not_after(der: &[u8]) -> Option<SystemTime> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { ... } ... }
    let (cert, _) = element(der, 0x30)?;
    let (mut tbs, _) = element(cert, 0x30)?;
    // [0] EXPLICIT version, optional.
    if tbs.first() == Some(&0xA0) {
        tbs = element(tbs, 0xA0)?.1;
    }
    let tbs = element(tbs, 0x02)?.1; // serialNumber
    let tbs = element(tbs, 0x30)?.1; // signature AlgorithmIdentifier
    let tbs = element(tbs, 0x30)?.1; // issuer
    let (validity, _) = element(tbs, 0x30)?;
    let after_before = skip_any(validity)?; // notBefore
    let tag = *after_before.first()?;
    let (time, _) = element(after_before, tag)?;
    parse_time(tag, time)
}

/// The content of the element at the start of `input` if its tag is
/// `tag`, and what follows it.
fn element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != tag {
        return None;
    }
    let (len, header) = length(&input[1..])?;
    let start = 1 + header;
    let end = start.checked_add(len)?;
    Some((input.get(start..end)?, input.get(end..)?))
}

/// What follows the element at the start of `input`, whatever its tag.
fn skip_any(input: &[u8]) -> Option<&[u8]> {
    element(input, *input.first()?).map(|(_, rest)| rest)
}

/// A DER length and how many bytes it took.
fn length(input: &[u8]) -> Option<(usize, usize)> {
    let first = *input.first()?;
    if first < 0x80 {
        return Some((usize::from(first), 1));
    }
    let count = usize::from(first & 0x7F);
    if count == 0 || count > 4 {
        return None;
    }
    let bytes = input.get(1..1 + count)?;
    let len = bytes
        .iter()
        .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
    Some((len, 1 + count))
}

/// UTCTime (0x17, `YYMMDDHHMMSSZ`, years 1950-2049) or GeneralizedTime
/// (0x18, `YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: u32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let stamp = format!(
        "{year:04}-{}-{}T{}:{}:{}Z",
        &rest[0..2],
        &rest[2..4],
        &rest[4..6],
        &rest[6..8],
        &rest[8..10]
    );
    humantime::parse_rfc3339(&stamp).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    // A certificate made with a known validity reads back that notAfter,
    // in both time encodings; garbage reads as unknown, never a panic.
    #[test]
    fn reads_not_after_of_a_made_certificate() {
        for (year, secs) in [(2020, 1_601_510_400u64), (2051, 2_579_731_200)] {
            let mut params = rcgen::CertificateParams::new(vec!["x".into()]).unwrap();
            params.not_after = rcgen::date_time_ymd(year, 10, 1);
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let read = not_after(cert.der()).expect("notAfter");
            assert_eq!(read, UNIX_EPOCH + Duration::from_secs(secs), "year {year}");
        }
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
        for cut in 0..40 {
            let junk: Vec<u8> = (0..cut).map(|i| (i * 37 + 0x30) as u8).collect();
            let _ = not_after(&junk);
        }
    }
}
