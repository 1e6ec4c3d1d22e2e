//! The metrics endpoint's HTTP/1.x, as pure code: parsing a request head
//! (with httparse), routing it, and writing a response. No sockets here:
//! [`conn`] drives one HTTP connection over any
//! [`Stream`](crate::logic::stream::Stream), and the server loop holds the
//! socket and gives it its turns beside the echo connections.
//!
//! Only what a browser, Prometheus and a load-balancer probe need: `GET`
//! and `HEAD`, no request bodies, keep-alive, and a bounded request head.
//!
//! Only requests whose `Host` names this endpoint are answered (see
//! [`AllowedHosts`]): the pages list client addresses, and a web page the
//! operator visits could otherwise read them through DNS rebinding.
//!
//! `request.rs` parses and routes a request head, `host.rs` decides whose
//! `Host` it names, `response.rs` writes the answer and counts it by
//! status, and `conn.rs` runs one connection's exchange.

pub mod conn;
mod host;
mod request;
mod response;

pub use host::AllowedHosts;
pub use request::{parse, Parse, Route, MAX_REQUEST};
pub use response::{HttpCounts, Response, Status};
