//! Opening a mode benchmark's connections, each with its mode's driver.

use std::net::SocketAddr;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::super::chargen::Chargen;
use super::super::discard::Discard;
use super::super::framed::Framed;
use super::super::{Driver, ModeBench};
use super::turn::{wait, Pass};
use super::Conn;
use crate::client::error::ClientError;
use crate::client::modes::ServiceMode;
use crate::client::pattern::{Pattern, MAX_WINDOW};
use crate::client::session::{connect_error, connect_outcome};
use crate::os::signal::StopSignals;

fn driver(cfg: &ModeBench, i: usize) -> Box<dyn Driver> {
    match cfg.mode {
        ServiceMode::Chargen => Box::new(Chargen::new(cfg.size)),
        ServiceMode::Framed => Box::new(Framed::new(i as u64, cfg.size, cfg.depth)),
        _ => Box::new(Discard {
            payload: Pattern::new().window(i as u64, 0, cfg.size.min(MAX_WINDOW)),
        }),
    }
}

/// Opens every connection and waits until all are up, or the first fails.
pub(super) fn connect_all(
    cfg: &ModeBench,
    addr: SocketAddr,
    poll: &mut Poll,
    events: &mut Events,
    signals: &mut StopSignals,
) -> Result<Vec<Conn>, ClientError> {
    let mut conns = Vec::with_capacity(cfg.connections);
    for i in 0..cfg.connections {
        let mut stream =
            TcpStream::connect(addr).map_err(|e| connect_error(addr, e, cfg.timeout))?;
        poll.registry()
            .register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| ClientError::Other(format!("cannot register a socket: {e}")))?;
        conns.push(Conn {
            stream,
            driver: driver(cfg, i),
            ready: false,
            closed: false,
        });
    }
    let deadline = Instant::now() + cfg.timeout;
    let mut up = vec![false; conns.len()];
    loop {
        for (i, c) in conns.iter().enumerate() {
            if up[i] {
                continue;
            }
            match connect_outcome(&c.stream) {
                Some(Ok(())) => {
                    // Frames and their replies are small: no Nagle delay.
                    let _ = c.stream.set_nodelay(true);
                    up[i] = true;
                }
                Some(Err(e)) => return Err(connect_error(addr, e, cfg.timeout)),
                None => {}
            }
        }
        if up.iter().all(|&u| u) {
            return Ok(conns);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::ConnectTimeout(addr, cfg.timeout));
        }
        if let Pass::Interrupted = wait(poll, events, signals, Some(deadline - now))? {
            return Err(ClientError::Interrupted);
        }
    }
}
