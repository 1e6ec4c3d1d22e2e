//! Opening the connections: at most MAX_CONNECTING handshakes at once, each with the timeout.

use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Token};

use super::transport::Transport;
use super::{Engine, State};
use crate::client::error::ClientError;
use crate::client::session::{connect_error, connect_outcome};

/// Handshakes in progress at once: enough to open 10,000 connections in a
/// moment, few enough not to overflow a small listen backlog (socat's is 5).
const MAX_CONNECTING: usize = 256;

impl<T: Transport> Engine<'_, T> {
    pub(super) fn start_connects(&mut self, now: Instant) {
        while self.connecting < MAX_CONNECTING && self.next_to_connect < self.conns.len() {
            let i = self.next_to_connect;
            self.next_to_connect += 1;
            match TcpStream::connect(self.addr) {
                Ok(mut tcp) => {
                    let interest = Interest::READABLE | Interest::WRITABLE;
                    if let Err(e) = self.poll.registry().register(&mut tcp, Token(i), interest) {
                        self.connect_failed(i, ClientError::Other(format!("register: {e}")));
                        continue;
                    }
                    let stream = match T::start(tcp, self.config.tls.as_ref()) {
                        Ok(stream) => stream,
                        Err(e) => {
                            self.connect_failed(i, e);
                            continue;
                        }
                    };
                    // Each message's latency runs to the kernel's stamp of
                    // the read that completed it; asked for while the
                    // handshake runs, as the kernel turns stamping on in
                    // deferred work. Bulk times no message: plain reads.
                    self.conns[i].rx_stamps =
                        self.config.rx_stamps && !self.config.bulk && stream.enable_rx_stamps();
                    self.conns[i].stream = Some(stream);
                    self.conns[i].state = State::Connecting(now);
                    self.connecting += 1;
                }
                Err(e) => {
                    let error = connect_error(self.addr, e, self.config.timeout);
                    self.connect_failed(i, error);
                }
            }
        }
    }

    pub(super) fn expire_connects(&mut self, now: Instant) {
        for i in 0..self.conns.len() {
            if let State::Connecting(since) = self.conns[i].state {
                if now >= since + self.config.timeout {
                    self.connecting -= 1;
                    let error = ClientError::ConnectTimeout(self.addr, self.config.timeout);
                    self.connect_failed(i, error);
                }
            }
        }
    }

    pub(super) fn finish_connect(&mut self, i: usize) {
        let Some(stream) = &mut self.conns[i].stream else {
            return;
        };
        match connect_outcome(stream.tcp()) {
            None => return,
            Some(Ok(())) => {}
            Some(Err(e)) => {
                self.connecting -= 1;
                let error = connect_error(self.addr, e, self.config.timeout);
                self.connect_failed(i, error);
                return;
            }
        }
        // Echo servers answer small messages at once; Nagle would hold the
        // next one back for the delayed ACK and show 40 ms latencies.
        let _ = stream.tcp().set_nodelay(true);
        // TLS: the handshake is part of connecting, within the same timeout.
        match stream.handshake() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                self.connecting -= 1;
                self.connect_failed(i, e);
                return;
            }
        }
        self.connecting -= 1;
        self.connected += 1;
        self.open += 1;
        self.conns[i].state = State::Open;
    }

    pub(super) fn connect_failed(&mut self, i: usize, error: ClientError) {
        self.connect_errors += 1;
        self.failures.note(error);
        self.drop_conn(i);
    }

    pub(super) fn drop_conn(&mut self, i: usize) {
        let conn = &mut self.conns[i];
        if let State::Open = conn.state {
            self.open -= 1;
        }
        if let Some(mut stream) = conn.stream.take() {
            // Dropping closes the socket, which also leaves the epoll set.
            let _ = self.poll.registry().deregister(stream.tcp_mut());
        }
        conn.state = State::Closed;
        // Bytes still in the pipe never reach the socket; they are part of
        // `unwritten` and leave the count with it.
        conn.pipe = None;
        self.outstanding -= conn.flow.unwritten() + conn.flow.unechoed();
    }
}
