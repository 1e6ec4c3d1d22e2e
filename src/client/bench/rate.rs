//! Throughput as text: MB/s, or bits per second as iperf3 prints them
//! (`--format bits`).

use clap::ValueEnum;

/// How throughput is written in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum RateFormat {
    /// Megabytes (10⁶ bytes) per second.
    #[default]
    Bytes,
    /// Bits per second, scaled to Kbit/s, Mbit/s or Gbit/s (10³ steps).
    Bits,
}

/// `bytes_per_s` in the chosen unit, with two decimals.
pub fn throughput(bytes_per_s: f64, format: RateFormat) -> String {
    match format {
        RateFormat::Bytes => format!("{:.2} MB/s", bytes_per_s / 1e6),
        RateFormat::Bits => {
            let bits = bytes_per_s * 8.0;
            let (scale, unit) = if bits >= 1e9 {
                (1e9, "Gbit/s")
            } else if bits >= 1e6 {
                (1e6, "Mbit/s")
            } else if bits >= 1e3 {
                (1e3, "Kbit/s")
            } else {
                (1.0, "bit/s")
            };
            format!("{:.2} {unit}", bits / scale)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_scale_as_iperf3_prints_them() {
        assert_eq!(throughput(1_250_000.0, RateFormat::Bits), "10.00 Mbit/s");
        assert_eq!(throughput(1.25e9, RateFormat::Bits), "10.00 Gbit/s");
        assert_eq!(throughput(125.0, RateFormat::Bits), "1.00 Kbit/s");
        assert_eq!(throughput(10.0, RateFormat::Bits), "80.00 bit/s");
        assert_eq!(throughput(1_234_567.0, RateFormat::Bytes), "1.23 MB/s");
    }
}
