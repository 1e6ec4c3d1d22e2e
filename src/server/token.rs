//! Which socket an event is for, safe against slab key reuse.
//!
//! slab hands the most recently freed key to the next insert, so a
//! connection closed while handling one event of a batch can have its key
//! taken by a connection accepted later in the same batch; a stale event
//! still in the batch would then act on the newcomer. A connection's token
//! therefore carries a generation beside its key, and an event whose token
//! is not the one stored in the slab entry is dropped.

use mio::Token;

/// The first signal pipe; the next ones count down from here.
pub const SIGNALS: Token = Token(usize::MAX - 1);

/// The log's writer, woken when everything queued is written.
pub const LOG_DRAINED: Token = Token(usize::MAX - 7);
/// The metrics endpoint's listening socket.
pub const METRICS: Token = Token(usize::MAX - 8);
/// The prime-check workers' waker: answers are ready.
pub const WORKERS: Token = Token(usize::MAX - 9);

/// UDP echo sockets (`--udp`), one per port, at most this many.
pub const MAX_UDP_SOCKETS: usize = 4096;
/// The key half of UDP socket `i`'s token is the HTTP flag, the listener
/// flag and `i`, generation 0: the HTTP slab's keys (a few hundred) never
/// reach the listener bit and listeners never carry the HTTP flag, so UDP
/// tokens share HTTP's branch of the dispatch and stay off the path of
/// echo connections' events.
const UDP_KEY_BASE: usize = LISTENER_FLAG;

const KEY_BITS: u32 = 32;
/// Set in the key half of an HTTP connection's token: HTTP connections
/// live in their own slab, whose keys never reach this bit.
const HTTP_FLAG: usize = 1 << 31;
const KEY_MASK: usize = (1 << KEY_BITS) - 1;
/// Set in the key half of a listener's token (the key is its index in the
/// listener table, the generation 0).
const LISTENER_FLAG: usize = 1 << 30;
/// Set in the key half of a connection still awaiting its PROXY header:
/// those live in their own slab (proxy_header.rs).
const PROXY_FLAG: usize = 1 << 29;
/// The flags a token's key half may carry.
const FLAGS: usize = HTTP_FLAG | LISTENER_FLAG | PROXY_FLAG;

// Key and generation share one usize, so it needs 64 bits.
const _: () = assert!(usize::BITS >= 64, "echo-server needs a 64-bit target");

/// The token for the connection at slab `key` in its `generation`.
///
/// Keys stay far below 2³² (the CLI caps connections at a million), so
/// connection tokens never reach the reserved ones at the top of the range.
pub fn connection(key: usize, generation: u32) -> Token {
    debug_assert!(key <= KEY_MASK, "slab key {key} does not fit a token");
    Token(((generation as usize) << KEY_BITS) | key)
}

/// The slab key a connection token refers to (for an HTTP token, the key
/// in the HTTP slab).
pub fn key(token: Token) -> usize {
    token.0 & KEY_MASK & !HTTP_FLAG
}

/// The token for the HTTP connection at `key` of the HTTP slab.
pub fn http(key: usize, generation: u32) -> Token {
    debug_assert!(key < HTTP_FLAG, "HTTP slab key {key} does not fit a token");
    Token(((generation as usize) << KEY_BITS) | HTTP_FLAG | key)
}

/// The token of the listener at `index` of the listener table.
pub fn listener(index: usize) -> Token {
    debug_assert!(index < PROXY_FLAG, "listener {index} does not fit a token");
    Token(LISTENER_FLAG | index)
}

/// The listener table index a listener's token names, `None` for any
/// other token.
pub fn listener_index(token: Token) -> Option<usize> {
    (token.0 & !KEY_MASK == 0 && token.0 & FLAGS == LISTENER_FLAG).then_some(token.0 & !FLAGS)
}

/// The token for a connection awaiting its PROXY header, at `key` of
/// their slab.
pub fn proxy(key: usize, generation: u32) -> Token {
    debug_assert!(
        key < PROXY_FLAG,
        "PROXY slab key {key} does not fit a token"
    );
    Token(((generation as usize) << KEY_BITS) | PROXY_FLAG | key)
}

/// True for the token of a connection awaiting its PROXY header.
pub fn is_proxy(token: Token) -> bool {
    token.0 & FLAGS == PROXY_FLAG && token.0 < WORKERS.0
}

/// The key in the PROXY slab a [`proxy`] token refers to.
pub fn proxy_key(token: Token) -> usize {
    token.0 & KEY_MASK & !FLAGS
}

/// True for the token of an echo connection: no flag in its key half.
/// The reserved tokens at the top of the range have those bits set too.
#[inline(always)]
pub fn is_connection(token: Token) -> bool {
    token.0 & FLAGS == 0
}

/// True for the token of an HTTP connection.
pub fn is_http(token: Token) -> bool {
    token.0 & HTTP_FLAG != 0 && token.0 < WORKERS.0
}

/// The token of UDP socket `index` (below [`MAX_UDP_SOCKETS`]).
pub fn udp(index: usize) -> Token {
    debug_assert!(index < MAX_UDP_SOCKETS, "UDP socket {index} has no token");
    Token(HTTP_FLAG | UDP_KEY_BASE | index)
}

/// Which UDP socket a token is for, if it is one's (checked after
/// [`is_http`], which is also true for them).
pub fn udp_index(token: Token) -> Option<usize> {
    let index = token.0.wrapping_sub(HTTP_FLAG | UDP_KEY_BASE);
    (index < MAX_UDP_SOCKETS).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A reused key with a new generation gives a different token, so a stale
    // event cannot be mistaken for the new connection's.
    #[test]
    fn reused_key_gets_a_new_token() {
        let old = connection(5, 1);
        let new = connection(5, 2);
        assert_ne!(old, new);
        assert_eq!(key(old), 5);
        assert_eq!(key(new), 5);
    }

    // Connection tokens never collide with the reserved ones.
    #[test]
    fn reserved_tokens_are_out_of_reach() {
        let highest = connection(1_000_000, u32::MAX);
        assert!(highest.0 < SIGNALS.0 - 8);
        let http_highest = http(1_000_000, u32::MAX);
        assert!(http_highest.0 < METRICS.0 && METRICS.0 < SIGNALS.0 - 2);
        assert!(is_http(http_highest) && !is_http(highest) && !is_http(METRICS));
        assert!(http_highest.0 < WORKERS.0 && !is_http(WORKERS));
        // The loop looks for the workers' token where no connection is
        // found: its key must be beyond any slab key.
        assert!(key(WORKERS) > 1_000_000);
        assert_eq!(key(http(7, 3)), 7);
        assert_ne!(http(7, 3), connection(7, 3));
    }

    // Listener and PROXY tokens are told apart from every other kind, and
    // give back their index and key.
    #[test]
    fn listener_and_proxy_tokens_are_their_own() {
        for i in [0, 1, 1023] {
            assert_eq!(listener_index(listener(i)), Some(i));
            assert!(!is_http(listener(i)) && !is_proxy(listener(i)));
        }
        let p = proxy(9, u32::MAX);
        assert!(is_proxy(p) && !is_http(p));
        assert_eq!((proxy_key(p), listener_index(p)), (9, None));
        for other in [
            connection(5, 1),
            connection(1_000_000, u32::MAX),
            http(5, 1),
            SIGNALS,
            METRICS,
            WORKERS,
            LOG_DRAINED,
        ] {
            assert_eq!(listener_index(other), None, "{other:?}");
            assert!(!is_proxy(other), "{other:?}");
        }
    }

    // UDP tokens are found in HTTP's branch, never taken for a connection,
    // an HTTP client, a listener, a PROXY wait or a reserved token, and
    // give their index back.
    #[test]
    fn udp_tokens_are_their_own() {
        for index in [0, 1, MAX_UDP_SOCKETS - 1] {
            let token = udp(index);
            assert!(is_http(token), "dispatched in HTTP's branch");
            assert!(!is_proxy(token) && listener_index(token).is_none());
            assert_eq!(udp_index(token), Some(index));
            assert!(key(token) > 1_000_000);
            assert!(token.0 < WORKERS.0);
        }
        for other in [
            connection(5, 1),
            connection(1_000_000, u32::MAX),
            http(0, 0),
            http(100_000, 7),
            http(100_000, u32::MAX),
            listener(0),
            listener(1023),
            proxy(9, u32::MAX),
            SIGNALS,
            METRICS,
            WORKERS,
            LOG_DRAINED,
            Token(0),
        ] {
            assert_eq!(udp_index(other), None, "{other:?}");
        }
        assert_eq!(udp_index(Token(udp(MAX_UDP_SOCKETS - 1).0 + 1)), None);
    }

    // Echo connections are told apart from every other token by one test.
    #[test]
    fn connection_tokens_are_one_test_away() {
        for token in [
            connection(0, 0),
            connection(5, 1),
            connection(1_000_000, u32::MAX),
        ] {
            assert!(is_connection(token), "{token:?}");
        }
        for other in [
            http(0, 0),
            http(100_000, u32::MAX),
            listener(0),
            listener(1023),
            proxy(9, u32::MAX),
            udp(0),
            udp(MAX_UDP_SOCKETS - 1),
            SIGNALS,
            Token(SIGNALS.0 - 5),
            METRICS,
            WORKERS,
            LOG_DRAINED,
        ] {
            assert!(!is_connection(other), "{other:?}");
        }
    }
}
