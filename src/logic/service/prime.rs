//! The primality tests the framed protocol's checks run on the workers.
//! Pure and bounded: numbers are `u64`, so every check ends.

/// How `^P<n>$` is decided (`--prime-test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PrimeTest {
    /// Trial division up to √n, as the protocol's origin does on purpose:
    /// a large prime keeps a worker busy for seconds.
    #[default]
    TrialDivision,
    /// Deterministic Miller–Rabin for `u64`: microseconds for any number.
    MillerRabin,
}

/// Divisors tried between looks at `cancelled`.
const CANCEL_EVERY: u64 = 1 << 20;

impl PrimeTest {
    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            PrimeTest::TrialDivision => "trial-division",
            PrimeTest::MillerRabin => "miller-rabin",
        }
    }

    /// Whether `n` is prime; `None` if `cancelled` said so first (the
    /// connection that asked is gone).
    pub fn check(self, n: u64, cancelled: impl Fn() -> bool) -> Option<bool> {
        match self {
            PrimeTest::TrialDivision => trial_division(n, cancelled),
            PrimeTest::MillerRabin => Some(miller_rabin(n)),
        }
    }
}

/// Trial division by 2 and the odd numbers up to √n.
pub fn trial_division(n: u64, cancelled: impl Fn() -> bool) -> Option<bool> {
    if n < 2 {
        return Some(false);
    }
    if n % 2 == 0 {
        return Some(n == 2);
    }
    let mut d: u64 = 3;
    // d ≤ n / d is d² ≤ n without overflow.
    while d <= n / d {
        if n % d == 0 {
            return Some(false);
        }
        d += 2;
        if d % CANCEL_EVERY == 1 && cancelled() {
            return None;
        }
    }
    Some(true)
}

fn mul_mod(a: u64, b: u64, m: u64) -> u64 {
    (u128::from(a) * u128::from(b) % u128::from(m)) as u64
}

fn pow_mod(mut base: u64, mut exp: u64, m: u64) -> u64 {
    let mut result = 1 % m;
    base %= m;
    while exp > 0 {
        if exp & 1 == 1 {
            result = mul_mod(result, base, m);
        }
        base = mul_mod(base, base, m);
        exp >>= 1;
    }
    result
}

/// Miller–Rabin with the first twelve primes as bases: exact for every
/// `u64`.
pub fn miller_rabin(n: u64) -> bool {
    const BASES: [u64; 12] = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37];
    if n < 2 {
        return false;
    }
    for p in BASES {
        if n % p == 0 {
            return n == p;
        }
    }
    let s = (n - 1).trailing_zeros();
    let d = (n - 1) >> s;
    'bases: for a in BASES {
        let mut x = pow_mod(a, d, n);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mul_mod(x, x, n);
            if x == n - 1 {
                continue 'bases;
            }
        }
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    // Both tests agree with each other on small numbers and with known
    // answers; trial division stops when cancelled.
    #[test]
    fn tests_agree_and_cancel() {
        for n in 0..5000u64 {
            assert_eq!(trial_division(n, || false), Some(miller_rabin(n)), "{n}");
        }
        assert_eq!(trial_division(1_000_000_007, || false), Some(true));
        assert_eq!(trial_division(4_294_967_297, || false), Some(false));
        assert!(miller_rabin(18_446_744_073_709_551_557));
        assert!(miller_rabin(9_223_372_036_854_775_783));
        assert!(!miller_rabin(u64::MAX));
        assert!(!miller_rabin(3_215_031_751));
        assert_eq!(trial_division(9_223_372_036_854_775_783, || true), None);
        assert_eq!(PrimeTest::MillerRabin.check(97, || true), Some(true));
    }
}
