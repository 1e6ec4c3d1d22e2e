//! The figures of one `TCP_INFO` reading, decoded from the bytes the
//! kernel wrote (`os/tcp_info.rs` makes the system call).
//!
//! The kernel's `struct tcp_info` has grown over the years, and it fills in
//! only as many bytes as it has; [`TcpInfo::decode`] reads each field at its
//! fixed offset (from `include/uapi/linux/tcp.h`) when the returned length
//! covers it, so an older kernel simply gives fewer figures.

/// The figures of one `TCP_INFO` reading that the server reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u32,
    /// Round-trip time variance (mean deviation), microseconds.
    pub rttvar_us: u32,
    /// Lowest RTT seen on the path, microseconds (Linux 4.6+).
    pub min_rtt_us: Option<u32>,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u32,
    /// Segments currently considered lost.
    pub lost: u32,
    /// Congestion window, in segments.
    pub snd_cwnd: u32,
    /// Sender maximum segment size, bytes.
    pub snd_mss: u32,
    /// Estimated delivery rate, bytes per second (Linux 4.9+).
    pub delivery_rate: Option<u64>,
    /// Path MTU, bytes.
    pub pmtu: u32,
}

fn u32_at(buf: &[u8], offset: usize) -> Option<u32> {
    let bytes = buf.get(offset..offset + 4)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

fn u64_at(buf: &[u8], offset: usize) -> Option<u64> {
    let bytes = buf.get(offset..offset + 8)?;
    Some(u64::from_ne_bytes(bytes.try_into().ok()?))
}

impl TcpInfo {
    /// Decodes the first `buf.len()` bytes the kernel wrote; `None` if they
    /// do not even reach the RTT fields (104 bytes, Linux 2.6).
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(Self {
            snd_mss: u32_at(buf, 16)?,
            pmtu: u32_at(buf, 60)?,
            lost: u32_at(buf, 32)?,
            rtt_us: u32_at(buf, 68)?,
            rttvar_us: u32_at(buf, 72)?,
            snd_cwnd: u32_at(buf, 80)?,
            total_retrans: u32_at(buf, 100)?,
            min_rtt_us: u32_at(buf, 148),
            delivery_rate: u64_at(buf, 160),
        })
    }

    /// Smoothed RTT in milliseconds.
    pub fn srtt_ms(&self) -> f64 {
        ms(self.rtt_us)
    }

    /// RTT variation in milliseconds.
    pub fn rttvar_ms(&self) -> f64 {
        ms(self.rttvar_us)
    }
}

/// Microseconds, as the kernel reports RTTs, in milliseconds.
pub fn ms(us: u32) -> f64 {
    f64::from(us) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    // The RTT fields decode at their offsets; fewer bytes than reach them
    // are no reading at all.
    #[test]
    fn rtt_and_retransmits_decode_at_their_offsets() {
        let mut raw = [0u8; 232];
        raw[68..72].copy_from_slice(&1500u32.to_ne_bytes()); // tcpi_rtt
        raw[100..104].copy_from_slice(&3u32.to_ne_bytes()); // tcpi_total_retrans
        let info = TcpInfo::decode(&raw).unwrap();
        assert_eq!((info.rtt_us, info.total_retrans), (1500, 3));
        assert!(TcpInfo::decode(&raw[..100]).is_none());
    }

    // Fields past the end of what the kernel wrote are absent, not zero.
    #[test]
    fn short_structures_lose_only_the_newer_fields() {
        let raw = [1u8; 152];
        let info = TcpInfo::decode(&raw).unwrap();
        assert_eq!(info.delivery_rate, None);
        assert_eq!(info.min_rtt_us, Some(0x0101_0101));
    }
}
