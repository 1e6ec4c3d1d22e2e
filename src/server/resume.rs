//! The resume queue: connections whose turn ended with work possibly left
//! (their read budget ran out, or the endpoint's answer budget). No edge
//! will come for that work, so the loop gives them another turn itself,
//! after everyone with fresh events had theirs.

use std::collections::VecDeque;

use mio::Token;

use super::{live, token, Server};

/// Tokens of connections (echo or endpoint) waiting for another turn, each
/// at most once.
#[derive(Debug, Default)]
pub(super) struct ResumeQueue {
    tokens: VecDeque<Token>,
}

impl ResumeQueue {
    /// Queues `token` for another turn unless it already waits; `queued` is
    /// the connection's own flag saying so.
    pub(super) fn push(&mut self, token: Token, queued: &mut bool) {
        if !*queued {
            *queued = true;
            self.tokens.push_back(token);
        }
    }

    /// True when no connection waits: the loop may then sleep in `poll`.
    pub(super) fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

impl Server {
    /// Gives every connection queued before this call one more turn; those
    /// that queue themselves again wait for the next loop iteration, after
    /// fresh events.
    pub(super) fn resume_queued(&mut self) {
        for _ in 0..self.resume.tokens.len() {
            let Some(token) = self.resume.tokens.pop_front() else {
                break;
            };
            if token::is_http(token) {
                let client = self
                    .endpoint
                    .as_mut()
                    .and_then(|endpoint| endpoint.client(token));
                if let Some(client) = client {
                    client.queued = false;
                    self.service_http(token);
                }
                continue;
            }
            if let Some(conn) = live(&mut self.connections, token) {
                conn.queued = false;
                self.service(token, false, false);
            }
        }
    }
}
