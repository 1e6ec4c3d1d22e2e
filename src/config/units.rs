//! Parsers for the human-friendly values of the command line: byte sizes
//! (`64K`, `1M`) and durations in seconds (`300`, `0.5`).
//!
//! They are pure functions of a string so that they can be tested and
//! fuzzed on their own; their error texts end up verbatim after clap's
//! `invalid value '…' for '--flag'`.

use std::time::Duration;

/// The largest duration accepted anywhere: a year is longer than any idle
/// timeout or stats interval a diagnostics session needs, and keeps every
/// later `Instant + Duration` far from overflow.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// Parses a byte count: digits with an optional binary suffix `K`/`KiB`
/// (1024) or `M`/`MiB` (1024²), case-insensitive, e.g. `4096`, `16K`, `1M`.
///
/// ```
/// use echo_server::config::units::parse_size;
/// assert_eq!(parse_size("64K"), Ok(65_536));
/// assert_eq!(parse_size("1M"), Ok(1_048_576));
/// assert!(parse_size("1G").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<usize, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(split);
    if trimmed.starts_with('-') {
        return Err("must not be negative".into());
    }
    if digits.is_empty() {
        return Err("expected a number of bytes such as 4096, 64K or 1M".into());
    }
    let multiplier: usize = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        _ => return Err(format!("unknown size suffix '{suffix}' (use K or M)")),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| "number too large".to_string())
}

/// Parses seconds as a non-negative decimal (`5`, `0.5`, `2.25`) of at most
/// [`MAX_SECONDS`], exact to the nanosecond. Digits past the ninth decimal
/// round the value up to the next nanosecond (the clock's resolution), so a
/// timeout is never shorter than asked and a non-zero value never becomes 0.
///
/// ```
/// use echo_server::config::units::parse_seconds;
/// use std::time::Duration;
/// assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_seconds("300"), Ok(Duration::from_secs(300)));
/// assert!(parse_seconds("-1").is_err());
/// ```
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.starts_with('-') {
        return Err("must not be negative".into());
    }
    let valid = !trimmed.is_empty()
        && trimmed.chars().all(|c| c.is_ascii_digit() || c == '.')
        && trimmed.matches('.').count() <= 1
        && trimmed != ".";
    if !valid {
        let hint = if trimmed.contains(['e', 'E']) {
            " (plain decimals, no exponent)"
        } else {
            ""
        };
        return Err(format!(
            "expected a number of seconds such as 5 or 0.5{hint}"
        ));
    }
    let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_long())?
    };
    if whole > MAX_SECONDS {
        return Err(too_long());
    }
    let mut nanos = 0u32;
    for (i, digit) in fraction.bytes().take(9).enumerate() {
        nanos += u32::from(digit - b'0') * 10u32.pow(8 - i as u32);
    }
    // Anything below a nanosecond rounds up rather than away: dropping it
    // would turn `--idle-timeout 0.0000000001` into 0, which means "never".
    if fraction.bytes().skip(9).any(|digit| digit != b'0') {
        nanos += 1;
    }
    // `Duration::new` carries a billionth nanosecond into the seconds.
    let duration = Duration::new(whole, nanos);
    if duration > Duration::from_secs(MAX_SECONDS) {
        return Err(too_long());
    }
    Ok(duration)
}

fn too_long() -> String {
    format!("at most {MAX_SECONDS} seconds (a year)")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sizes: plain bytes and binary suffixes, any case.
    #[test]
    fn sizes_with_suffixes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64kib"), Ok(65536));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size(" 2m "), Ok(2 << 20));
        assert_eq!(parse_size("0"), Ok(0));
    }

    // Bad sizes are errors with a hint, never a panic or a wrong number.
    #[test]
    fn bad_sizes_are_rejected() {
        assert!(parse_size("").is_err());
        assert!(parse_size("K").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("12G").unwrap_err().contains("suffix"));
        assert!(parse_size("1.5K").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("18014398509481984M").is_err());
    }

    // Seconds: integers and decimals, exact to the nanosecond.
    #[test]
    fn seconds_integer_and_decimal() {
        assert_eq!(parse_seconds("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_seconds(".25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_seconds("2."), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("1.000000001"), Ok(Duration::new(1, 1)));
    }

    // More than nine decimals round up to the next nanosecond: a non-zero
    // value never becomes zero ("never" for the idle timeout), and trailing
    // zeros change nothing.
    #[test]
    fn sub_nanosecond_digits_round_up() {
        assert_eq!(parse_seconds("0.0000000001"), Ok(Duration::from_nanos(1)));
        assert_eq!(
            parse_seconds("0.000000000000000000001"),
            Ok(Duration::from_nanos(1))
        );
        assert_eq!(parse_seconds("0.0000000010"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_seconds("0.0000000011"), Ok(Duration::from_nanos(2)));
        assert_eq!(parse_seconds("0.9999999991"), Ok(Duration::from_secs(1)));
        assert_eq!(
            parse_seconds("2.5000000000000"),
            Ok(Duration::from_millis(2500))
        );
        assert_eq!(parse_seconds("0.0000000000"), Ok(Duration::ZERO));
    }

    // Negative, non-numeric and huge values are rejected.
    #[test]
    fn bad_seconds_are_rejected() {
        for bad in ["", ".", "-1", "1e3", "abc", "1.2.3", "nan", "inf"] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse_seconds("31536001").is_err());
        // The bound is exact, fractions and rounding included.
        assert!(parse_seconds("31536000.5").is_err());
        assert!(parse_seconds("31536000.0000000001").is_err());
        assert!(parse_seconds("31535999.9999999999").is_ok());
        assert!(parse_seconds("1e300").unwrap_err().contains("no exponent"));
        assert!(parse_seconds("99999999999999999999999").is_err());
        assert_eq!(
            parse_seconds("31536000"),
            Ok(Duration::from_secs(MAX_SECONDS))
        );
    }
}
