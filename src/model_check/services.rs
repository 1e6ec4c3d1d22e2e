//! The services that parse (the framed protocol and the `--max-line`
//! limiter) driven through the connection's state machine, against the
//! same service answering the whole input in one go.
//!
//! The script (decoded from fuzz bytes) picks the service, a small buffer
//! and line limit, then the peer's bytes in arbitrary chunks (biased
//! towards the protocol's own bytes: `^`, `$`, `P`, digits, newlines),
//! with arbitrary room in the socket's send buffer and read budgets, and
//! EOF at the end. Checked:
//! - the bytes sent are exactly what the reference sends for the whole
//!   input written at once (arbitrary splits change nothing);
//! - at most the buffer's capacity is ever held, and every read asks for
//!   no more than the service has room to answer;
//! - the connection closes as `peer closed` once the peer's EOF is read
//!   and everything is sent.

use super::stream::ScriptedStream;
use super::{Input, Violation};
use crate::logic::buffer::PendingBuffer;
use crate::logic::echo::{CloseReason, Echo, Next};
use crate::logic::service::{Mode, Output, Service};

/// Bytes the script draws its input from most of the time.
const ALPHABET: &[u8] = b"^$P0123456789\nab\xff";

/// Runs the script in `data`; see the module docs.
pub fn check_services(data: &[u8]) -> Result<(), Violation> {
    let mut input = Input::new(data);
    let (mode, capacity, max_line) = match input.byte() % 3 {
        0 => (Mode::Framed, 512 + input.below(512), None),
        kind => {
            let capacity = 65 + input.below(200);
            let max = 1 + input.below(capacity - 64);
            let mode = if kind == 1 { Mode::Echo } else { Mode::Upper };
            (mode, capacity, Some(max))
        }
    };
    let service = || Service::new(mode, max_line, capacity);
    let mut echo = Echo::with_service(capacity, service());
    let mut io = ScriptedStream::new(b"", 0);
    let mut scratch = vec![0; capacity];
    let mut sent = Vec::new();
    let mut step = 0;
    while !input.is_empty() && step < 2000 {
        step += 1;
        let chunk = input.below(3 * capacity);
        for _ in 0..chunk {
            let b = input.byte();
            let b = if b < 200 {
                ALPHABET[usize::from(b) % ALPHABET.len()]
            } else {
                b
            };
            sent.push(b);
            io.inbound.push_back(b);
        }
        io.room = io.room.saturating_add(input.below(2 * capacity));
        pump(
            &mut echo,
            &mut io,
            &mut scratch,
            1 + input.below(4),
            capacity,
            step,
        )?;
    }
    io.eof = true;
    io.room = usize::MAX;
    echo.note_peer_hangup();
    let mut closed = None;
    for _ in 0..10_000 {
        step += 1;
        if let Next::Close(reason) = pump(&mut echo, &mut io, &mut scratch, 16, capacity, step)? {
            closed = Some(reason);
            break;
        }
    }
    if closed != Some(CloseReason::PeerClosed) {
        return Err(Violation::new(step, format!("ended with {closed:?}")));
    }
    let want = reference(service(), capacity, &sent);
    if io.output != want {
        return Err(Violation::new(
            step,
            format!(
                "{mode:?} (capacity {capacity}, max line {max_line:?}): sent {:?}, one write gives {:?}",
                String::from_utf8_lossy(&io.output),
                String::from_utf8_lossy(&want)
            ),
        ));
    }
    Ok(())
}

/// One pump, with the bound checked.
fn pump(
    echo: &mut Echo,
    io: &mut ScriptedStream,
    scratch: &mut [u8],
    reads: usize,
    capacity: usize,
    step: usize,
) -> Result<Next, Violation> {
    let next = echo.pump(io, scratch, reads).next;
    if echo.pending() > capacity {
        return Err(Violation::new(
            step,
            format!("{} bytes held, capacity {capacity}", echo.pending()),
        ));
    }
    Ok(next)
}

/// What `service` sends for `sent` written at once, then EOF.
fn reference(mut service: Service, capacity: usize, sent: &[u8]) -> Vec<u8> {
    // Room for the worst answer: with `--max-line 1`, every 2 bytes can
    // bring a 29-byte error line; framed replies are shorter per byte.
    let mut pending = PendingBuffer::new(capacity.max(sent.len() * 16 + 1024));
    let mut held = 0;
    let mut out = Output::new(&mut pending, &mut held);
    out.send(service.greeting());
    service.feed(&mut sent.to_vec(), &mut out, &mut |_| false);
    service.finish(&mut out);
    let mut whole = Vec::new();
    while !pending.is_empty() {
        let chunk = pending.readable().to_vec();
        pending.consume(chunk.len());
        whole.extend(chunk);
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_check::Rng;

    // Random scripts of every kind pass.
    #[test]
    fn random_scripts_match_one_write() {
        let mut rng = Rng(0x5EED_0019);
        for len in (0..400).map(|i| 8 + i * 7) {
            let data = rng.bytes(len);
            if let Err(v) = check_services(&data) {
                panic!("{v}");
            }
        }
    }
}
