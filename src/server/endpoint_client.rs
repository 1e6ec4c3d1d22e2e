//! One client of the metrics endpoint as the loop holds it: the socket and
//! the HTTP state machine ([`HttpConn`]) it drives, beside (not among) the
//! echo connections.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::Token;
use slab::Slab;

use crate::logic::http::conn::HttpConn;
use crate::server::token;

/// An endpoint client in the endpoint's slab.
#[derive(Debug)]
pub(super) struct EndpointClient {
    /// The socket, registered for both readable and writable edges.
    pub stream: TcpStream,
    /// Who is on the other end.
    pub peer: SocketAddr,
    /// Its token (slab key with the HTTP flag, and a generation).
    pub token: Token,
    /// Request/response state.
    pub http: HttpConn,
    /// Start of the current wait for a complete request: accept, or the
    /// last response. The timeout runs from here, so dribbling bytes does
    /// not keep a slow client alive.
    pub since: Instant,
    /// Deadline tick of its entry in the timer wheel, if one is armed.
    pub timer: Option<u64>,
    /// True while it sits in the server's resume queue.
    pub queued: bool,
}

/// The endpoint client an event's token refers to, if it is still that one.
pub(super) fn live_http(
    http: &mut Slab<EndpointClient>,
    token: Token,
) -> Option<&mut EndpointClient> {
    http.get_mut(token::key(token))
        .filter(|conn| conn.token == token)
}
