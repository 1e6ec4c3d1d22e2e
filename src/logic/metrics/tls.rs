//! TLS figures for the endpoint: handshakes counted by how they ended
//! (`/metrics`, `/stats.json`) and what each open TLS connection
//! negotiated (`/stats.json`'s connection rows, the dashboard).

use serde::Serialize;

/// How a handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeResult {
    /// Finished: the connection echoes.
    Ok,
    /// Refused by rustls: not TLS, a protocol error, no shared version or
    /// suite.
    Failed,
    /// Mutual TLS refused the client's certificate, or it sent none.
    ClientCert,
    /// Not finished within `--handshake-timeout`.
    Timeout,
    /// The client closed or reset the connection first.
    Closed,
}

impl HandshakeResult {
    /// Each result's label, at its [`index`](Self::index).
    pub const LABELS: [&'static str; 5] = ["ok", "failed", "client_cert", "timeout", "closed"];

    /// Its place in [`LABELS`](Self::LABELS).
    pub fn index(self) -> usize {
        match self {
            Self::Ok => 0,
            Self::Failed => 1,
            Self::ClientCert => 2,
            Self::Timeout => 3,
            Self::Closed => 4,
        }
    }
}

/// Handshakes by result, since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeCounts {
    /// By [`HandshakeResult::index`].
    pub by_result: [u64; HandshakeResult::LABELS.len()],
}

impl HandshakeCounts {
    /// Counts one.
    pub fn count(&mut self, result: HandshakeResult) {
        self.by_result[result.index()] += 1;
    }

    /// `(label, count)` pairs, in label order.
    pub fn labelled(&self) -> Vec<(String, u64)> {
        HandshakeResult::LABELS
            .iter()
            .map(|l| l.to_string())
            .zip(self.by_result)
            .collect()
    }
}

/// What an open TLS connection negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsView {
    /// `TLSv1.3` or `TLSv1.2`; empty while handshaking.
    pub version: String,
    /// The cipher suite's IANA name; empty while handshaking.
    pub suite: String,
    /// The server name the client asked for (SNI), if it sent one.
    pub sni: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each result counts under its own label, in the order of the labels.
    #[test]
    fn results_count_apart() {
        let mut counts = HandshakeCounts::default();
        for (n, result) in [
            HandshakeResult::Ok,
            HandshakeResult::Failed,
            HandshakeResult::ClientCert,
            HandshakeResult::Timeout,
            HandshakeResult::Closed,
        ]
        .into_iter()
        .enumerate()
        {
            for _ in 0..=n {
                counts.count(result);
            }
        }
        let labelled = counts.labelled();
        assert_eq!(labelled[0], ("ok".to_string(), 1));
        assert_eq!(labelled[4], ("closed".to_string(), 5));
    }
}
