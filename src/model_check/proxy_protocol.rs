//! The PROXY protocol parser, fed the same stream in arbitrary splits.
//!
//! Input layout: the first 4 bytes give chunk sizes (1 + b % 64, used in
//! turn); the rest is the connection's stream. Checked for any input:
//! - nothing panics;
//! - the answer after the whole stream is the same fed at once, byte by
//!   byte, and in the chunks; once an answer is final, later chunks do not
//!   change it;
//! - a header's length is within what was fed, at least the shortest
//!   header (15 bytes, `PROXY UNKNOWN\r\n`; 16 for v2), and the same
//!   answer comes from the header's bytes alone: nothing after the header
//!   is consumed, so no byte of it is lost to the client or echoed as data;
//! - a v1 header is at most 107 bytes; a TCP4 one prints back to its bytes;
//!   a v2 one carries the addresses its address block holds.

use std::net::SocketAddr;

use super::Violation;
use crate::logic::proxy_protocol::{Parsed, ProxyParser, V1_MAX_LEN, V2_SIGNATURE};

/// What one input did, for tests that check a corpus covers the ground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRun {
    /// The final answer.
    pub parsed: Parsed,
}

/// Runs the parser on `data` as described in the module docs.
pub fn check_proxy(data: &[u8]) -> Result<ProxyRun, Violation> {
    let (sizes, stream) = data.split_at(data.len().min(4));
    let sizes: Vec<usize> = sizes.iter().map(|b| 1 + usize::from(*b) % 64).collect();
    let once = ProxyParser::new().feed(stream);

    let mut bytewise = ProxyParser::new();
    let mut answer = Parsed::NeedMore;
    for (i, b) in stream.iter().enumerate() {
        let next = bytewise.feed(std::slice::from_ref(b));
        if answer != Parsed::NeedMore && next != answer {
            return Err(Violation::new(
                i,
                format!("final {answer:?} became {next:?}"),
            ));
        }
        answer = next;
    }
    if !stream.is_empty() && answer != once {
        return Err(Violation::new(
            0,
            format!("bytewise {answer:?}, at once {once:?}"),
        ));
    }

    let mut chunked = ProxyParser::new();
    let mut rest = stream;
    let mut answer = Parsed::NeedMore;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, after) = rest.split_at((*size).min(rest.len()));
        answer = chunked.feed(chunk);
        rest = after;
    }
    if !stream.is_empty() && answer != once {
        return Err(Violation::new(
            0,
            format!("in chunks {answer:?}, at once {once:?}"),
        ));
    }

    let header_len = match once {
        Parsed::Done { header_len, .. } | Parsed::Local { header_len } => header_len,
        Parsed::NeedMore | Parsed::Invalid(_) => return Ok(ProxyRun { parsed: once }),
    };
    if !(15..=stream.len()).contains(&header_len) {
        return Err(Violation::new(
            0,
            format!("header_len {header_len} of {}", stream.len()),
        ));
    }
    let header = &stream[..header_len];
    let alone = ProxyParser::new().feed(header);
    if alone != once {
        return Err(Violation::new(
            0,
            format!("header alone {alone:?}, with data {once:?}"),
        ));
    }
    if header.starts_with(b"PROXY ") {
        check_v1(header, &once)?;
    } else if header.starts_with(&V2_SIGNATURE) {
        check_v2(header, &once)?;
    } else {
        return Err(Violation::new(
            0,
            format!("accepted without a signature: {once:?}"),
        ));
    }
    Ok(ProxyRun { parsed: once })
}

fn check_v1(header: &[u8], parsed: &Parsed) -> Result<(), Violation> {
    if header.len() > V1_MAX_LEN || !header.ends_with(b"\r\n") {
        return Err(Violation::new(
            0,
            format!("v1 header of {} bytes accepted", header.len()),
        ));
    }
    if let Parsed::Done {
        source: SocketAddr::V4(s),
        dest: SocketAddr::V4(d),
        ..
    } = parsed
    {
        let printed = format!(
            "PROXY TCP4 {} {} {} {}\r\n",
            s.ip(),
            d.ip(),
            s.port(),
            d.port()
        );
        if printed.as_bytes() != header {
            return Err(Violation::new(
                0,
                format!("{parsed:?} prints as {printed:?}"),
            ));
        }
    }
    Ok(())
}

fn check_v2(header: &[u8], parsed: &Parsed) -> Result<(), Violation> {
    let claimed = 16 + usize::from(u16::from_be_bytes([header[14], header[15]]));
    if header.len() != claimed {
        return Err(Violation::new(
            0,
            format!("v2 header {} bytes, claims {claimed}", header.len()),
        ));
    }
    let Parsed::Done { source, dest, .. } = parsed else {
        return Ok(());
    };
    let mut block = Vec::new();
    for addr in [source, dest] {
        match addr {
            SocketAddr::V4(a) => block.extend_from_slice(&a.ip().octets()),
            SocketAddr::V6(a) => block.extend_from_slice(&a.ip().octets()),
        }
    }
    block.extend_from_slice(&source.port().to_be_bytes());
    block.extend_from_slice(&dest.port().to_be_bytes());
    if header.get(16..16 + block.len()) != Some(&block[..]) {
        return Err(Violation::new(
            0,
            format!("{parsed:?} is not the address block"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    /// Headers of every kind, cut and spliced at random: the checks hold
    /// beyond the corpus.
    #[test]
    fn generated_streams_pass() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/proxy_protocol"),
        )
        .expect("seed corpus")
        .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
        .collect();
        for _ in 0..20_000 {
            let mut data = seeds[rng.below(seeds.len() as u64) as usize].clone();
            for _ in 0..rng.below(3) {
                let at = rng.below(data.len() as u64 + 1) as usize;
                match rng.below(3) {
                    0 if at < data.len() => data[at] = rng.next() as u8,
                    1 => data.insert(at, rng.next() as u8),
                    _ => data.truncate(at),
                }
            }
            if let Err(v) = check_proxy(&data) {
                panic!("{data:?}: {v}");
            }
        }
    }
}
