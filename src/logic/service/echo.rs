//! `--mode echo` (the default): every byte back, in order. The connection
//! does it itself on its fast path (`logic/echo/turn.rs`: straight back
//! from the read buffer, or through the kernel pipe), so there is nothing
//! here but the rule that makes that allowed: echo never needs to see a
//! byte, so it alone may splice.

#[cfg(test)]
mod tests {
    use super::super::{Mode, Service};

    // Echo is the one service allowed the fast path; no other is.
    #[test]
    fn only_echo_is_echo() {
        for mode in Mode::ALL {
            let service = Service::new(mode, None, 1024);
            assert_eq!(service.is_echo(), mode == Mode::Echo, "{mode:?}");
        }
        assert!(!Service::new(Mode::Echo, Some(20), 1024).is_echo());
    }
}
