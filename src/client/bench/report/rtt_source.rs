//! Which clock ended a run's latencies: the kernel's receive timestamps,
//! the client's clock, or both; its word for scripts and its text.

use super::thousands;

/// What ended the window's latencies: the kernel's receive timestamp of
/// the read that completed each message (plain TCP, where the kernel gave
/// one), or the client's clock when it took the connection's turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttSources {
    /// Messages timed to the kernel's receive timestamp.
    pub kernel: u64,
    /// Messages timed by the clock.
    pub clock: u64,
    /// A TLS run: no stamps were asked for.
    pub tls: bool,
    /// `--rtt-clock`: the clock was asked for.
    pub chosen: bool,
}

impl RttSources {
    /// Counts one message's latency, ended by the kernel's stamp or not.
    pub fn count(&mut self, kernel: bool) {
        if kernel {
            self.kernel += 1;
        } else {
            self.clock += 1;
        }
    }

    /// "kernel", "clock" or "mixed"; `None` when no latency was measured.
    pub fn word(&self) -> Option<&'static str> {
        match (self.kernel, self.clock) {
            (0, 0) => None,
            (_, 0) => Some("kernel"),
            (0, _) => Some("clock"),
            _ => Some("mixed"),
        }
    }

    /// What the text says of them, after "Measured to: ".
    pub(super) fn text(&self) -> String {
        const KERNEL: &str = "the kernel's receive timestamp (SO_TIMESTAMPING)";
        const CLOCK: &str = "the clock when the client woke for the reply";
        match (self.kernel, self.clock) {
            (_, 0) => KERNEL.to_string(),
            (0, _) if self.chosen => format!("{CLOCK} (--rtt-clock)"),
            (0, _) if self.tls => format!(
                "{CLOCK} (no kernel timestamps under TLS: its records hide which \
                 bytes a stamp belongs to)"
            ),
            (0, _) => format!("{CLOCK} (the kernel gave no receive timestamp)"),
            (kernel, clock) => format!(
                "{KERNEL} for {} messages, {CLOCK} for {}",
                thousands(kernel),
                thousands(clock)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One word for scripts, and text that says which clock and why;
    // mixed runs give both counts.
    #[test]
    fn rtt_sources_name_the_clock_that_ended_the_latencies() {
        let sources = |kernel, clock, tls| RttSources {
            kernel,
            clock,
            tls,
            chosen: false,
        };
        assert_eq!(sources(0, 0, false).word(), None);
        assert_eq!(sources(5, 0, false).word(), Some("kernel"));
        assert_eq!(sources(0, 5, true).word(), Some("clock"));
        assert_eq!(sources(3, 1_200, false).word(), Some("mixed"));
        assert_eq!(
            sources(5, 0, false).text(),
            "the kernel's receive timestamp (SO_TIMESTAMPING)"
        );
        assert_eq!(
            sources(0, 5, false).text(),
            "the clock when the client woke for the reply (the kernel gave no receive timestamp)"
        );
        assert!(sources(0, 5, true)
            .text()
            .contains("no kernel timestamps under TLS"));
        let chosen = RttSources {
            chosen: true,
            ..sources(0, 5, false)
        };
        assert!(chosen.text().ends_with("(--rtt-clock)"));
        assert_eq!(
            sources(3, 1_200, false).text(),
            "the kernel's receive timestamp (SO_TIMESTAMPING) for 3 messages, \
             the clock when the client woke for the reply for 1,200"
        );
        let mut counted = RttSources::default();
        counted.count(true);
        counted.count(false);
        counted.count(true);
        assert_eq!((counted.kernel, counted.clock), (2, 1));
    }
}
