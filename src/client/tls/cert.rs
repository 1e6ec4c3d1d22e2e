//! What the report says about the server's certificate: its SHA-256
//! fingerprint, subject and expiry, read from the DER (only the few
//! fields shown, so no X.509 library is needed).

use std::fmt;
use std::str::FromStr;

/// A certificate's SHA-256 over its DER encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of `der`.
    pub fn of(der: &[u8]) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let mut bytes = [0; 32];
        bytes.copy_from_slice(digest.as_ref());
        Self(bytes)
    }
}

impl FromStr for Fingerprint {
    type Err = String;

    /// 64 hex digits, any case, with or without colons between the bytes.
    fn from_str(text: &str) -> Result<Self, String> {
        let digits: Vec<u8> = text.trim().bytes().filter(|&b| b != b':').collect();
        let invalid = || {
            format!("'{text}' is not a SHA-256 fingerprint: expected 64 hex digits, colons optional (AB:CD:… or abcd…)")
        };
        if digits.len() != 64 {
            return Err(invalid());
        }
        let mut bytes = [0; 32];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| invalid())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| invalid())?;
        }
        Ok(Self(bytes))
    }
}

/// Upper-case hex bytes joined by colons, as `openssl x509 -fingerprint`.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

/// The server certificate's facts for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject, as `CN=…, O=…` (empty when the certificate has none).
    pub subject: String,
    /// The end of the validity period, RFC 3339 UTC (`2027-01-01T00:00:00Z`).
    pub not_after: String,
    /// SHA-256 of the DER.
    pub fingerprint: Fingerprint,
}

impl CertFacts {
    /// Reads `der`; a certificate these few fields cannot be found in
    /// still has a fingerprint, and `?` for the rest.
    pub fn of(der: &[u8]) -> Self {
        let (subject, not_after) =
            subject_and_expiry(der).unwrap_or_else(|| ("?".to_string(), "?".to_string()));
        Self {
            subject,
            not_after,
            fingerprint: Fingerprint::of(der),
        }
    }
}

/// One DER element: its tag and contents; `rest` follows it.
struct Element<'a> {
    tag: u8,
    body: &'a [u8],
}

fn element(input: &[u8]) -> Option<(Element<'_>, &[u8])> {
    let (&tag, input) = input.split_first()?;
    let (&first, mut input) = input.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || input.len() < count {
            return None;
        }
        let (bytes, rest) = input.split_at(count);
        input = rest;
        bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
    };
    if input.len() < len {
        return None;
    }
    let (body, rest) = input.split_at(len);
    Some((Element { tag, body }, rest))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT Version` before the serial number.
const VERSION: u8 = 0xa0;

/// Certificate → tbsCertificate → (version), serial, signature, issuer,
/// validity, subject (RFC 5280, 4.1).
fn subject_and_expiry(der: &[u8]) -> Option<(String, String)> {
    let (cert, _) = element(der)?;
    let (tbs, _) = element(cert.body)?;
    if cert.tag != SEQUENCE || tbs.tag != SEQUENCE {
        return None;
    }
    let mut fields = tbs.body;
    let (first, rest) = element(fields)?;
    if first.tag == VERSION {
        fields = rest;
    }
    let (_serial, fields) = element(fields)?;
    let (_signature, fields) = element(fields)?;
    let (_issuer, fields) = element(fields)?;
    let (validity, fields) = element(fields)?;
    let (subject, _) = element(fields)?;
    let (_not_before, after) = element(validity.body)?;
    let (not_after, _) = element(after)?;
    Some((name(subject.body)?, time(&not_after)?))
}

/// An RDNSequence as `CN=a, O=b`, in the certificate's order.
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (set, rest) = element(rdns)?;
        rdns = rest;
        if set.tag != SET {
            return None;
        }
        let mut attributes = set.body;
        while !attributes.is_empty() {
            let (attribute, rest) = element(attributes)?;
            attributes = rest;
            let (oid, value) = element(attribute.body)?;
            let (value, _) = element(value)?;
            if oid.tag != OID {
                return None;
            }
            let text: String = String::from_utf8_lossy(value.body)
                .chars()
                .flat_map(char::escape_debug)
                .collect();
            parts.push(format!("{}={text}", attribute_name(oid.body)));
        }
    }
    Some(parts.join(", "))
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        other => dotted(other),
    }
}

fn dotted(oid: &[u8]) -> String {
    let mut arcs = Vec::new();
    let mut value = 0u64;
    for &b in oid {
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// UTCTime (`YYMMDDHHMMSSZ`, 50–99 meaning 19xx) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as RFC 3339.
fn time(t: &Element<'_>) -> Option<String> {
    let text = std::str::from_utf8(t.body).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let full = match (t.tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy: u32 = digits[..2].parse().ok()?;
            format!("{}{digits}", if yy >= 50 { "19" } else { "20" })
        }
        (GENERALIZED_TIME, 14) => digits.to_string(),
        _ => return None,
    };
    Some(format!(
        "{}-{}-{}T{}:{}:{}Z",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_every_spelling() {
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let plain: Fingerprint = hex.parse().unwrap();
        let colons: Fingerprint = plain.to_string().parse().unwrap();
        assert_eq!(plain, colons);
        assert!(plain.to_string().starts_with("00:11:22:"));
        assert_eq!(plain.0[31], 0xff);
        for bad in [
            "",
            "00",
            &hex[1..],
            &format!("{hex}00"),
            &hex.replace('0', "g"),
        ] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }

    #[test]
    fn times_and_names() {
        let utc = Element {
            tag: UTC_TIME,
            body: b"270102030405Z",
        };
        assert_eq!(time(&utc).unwrap(), "2027-01-02T03:04:05Z");
        let old = Element {
            tag: UTC_TIME,
            body: b"991231235959Z",
        };
        assert_eq!(time(&old).unwrap(), "1999-12-31T23:59:59Z");
        let general = Element {
            tag: GENERALIZED_TIME,
            body: b"40960101000000Z",
        };
        assert_eq!(time(&general).unwrap(), "4096-01-01T00:00:00Z");
        assert_eq!(
            dotted(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
        assert!(CertFacts::of(b"\x30\x03\x02\x01").subject == "?");
    }
}
