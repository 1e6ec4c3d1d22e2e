//! What `send` reports: text lines as they happen, or one JSON document
//! at the end.

use std::net::SocketAddr;

use serde::Serialize;

use super::super::cli::SendArgs;
use super::super::error::ClientError;
use super::super::output::outln;
use super::super::target::Target;
use super::super::tls::TlsFacts;
use crate::logic::json;

/// Longest payload shown verbatim; longer ones are summarized.
const SHOW_LIMIT: usize = 200;

/// The message as text, with control and non-UTF-8 bytes escaped.
pub(super) fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(SHOW_LIMIT)]);
    let mut shown: String = text.chars().flat_map(char::escape_debug).collect();
    if bytes.len() > SHOW_LIMIT {
        shown.push_str(&format!("… ({} more bytes)", bytes.len() - SHOW_LIMIT));
    }
    shown
}

pub(super) fn round(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

/// Text lines as they happen, or one JSON document at the end.
pub(super) struct Output<'a> {
    json: bool,
    pub(super) doc: SendDocument<'a>,
}

/// `send --json`: the figures appear as the run gets that far.
#[derive(Serialize)]
pub(super) struct SendDocument<'a> {
    pub(super) mode: &'static str,
    #[serde(serialize_with = "json::display")]
    pub(super) target: &'a Target,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) address: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) connect_ms: Option<f64>,
    /// With `--tls`: version, suite, handshake time, certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tls: Option<TlsFacts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) bytes_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) rtt_ms: Option<f64>,
    #[serde(rename = "match")]
    pub(super) matched: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) mismatch_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error_kind: Option<&'static str>,
    pub(super) error: Option<ClientError>,
}

impl<'a> Output<'a> {
    pub(super) fn new(args: &'a SendArgs) -> Self {
        Self {
            json: args.json,
            doc: SendDocument {
                mode: "send",
                target: &args.address,
                address: None,
                connect_ms: None,
                tls: None,
                bytes_sent: None,
                bytes_received: None,
                rtt_ms: None,
                matched: false,
                mismatch_offset: None,
                error_kind: None,
                error: None,
            },
        }
    }

    pub(super) fn say(&self, line: String) {
        if !self.json {
            outln!("{line}");
        }
    }

    pub(super) fn finish(self, error: Option<ClientError>) {
        if !self.json {
            return;
        }
        let mut doc = self.doc;
        doc.matched = error.is_none();
        match &error {
            Some(ClientError::Mismatch(m)) => doc.mismatch_offset = Some(m.offset),
            Some(ClientError::Reply(m)) => doc.mismatch_offset = Some(m.offset),
            _ => {}
        }
        doc.error_kind = error.as_ref().map(ClientError::kind);
        doc.error = error;
        outln!("{}", json::to_string(&doc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_shown_safely() {
        assert_eq!(show(b"hello world"), "hello world");
        assert_eq!(show(b"a\r\n\x00"), "a\\r\\n\\0");
        let long = vec![b'x'; SHOW_LIMIT + 5];
        assert!(show(&long).ends_with("… (5 more bytes)"));
    }
}
