//! Parsing of human durations such as `300ms`, `2s`, `1.5m`, `1h` or `10`.

use std::time::Duration;

/// The longest duration accepted: about 136 years, far beyond any useful
/// timeout, and small enough that adding it to an `Instant` cannot overflow.
pub const MAX: Duration = Duration::from_secs(u32::MAX as u64);

/// Parses a duration: a non-negative decimal number followed by an optional
/// unit, `ms`, `s`, `m` or `h`. A plain number means seconds.
///
/// The arithmetic is exact (no floating point): `0.3s` is 300 ms, digits
/// below a nanosecond are dropped.
///
/// ```text
/// 300ms  2s  1.5m  1h  10  0.25
/// ```
pub fn parse(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_nanos: u128 = match unit {
        "" | "s" => 1_000_000_000,
        "ms" => 1_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => {
            return Err(format!(
                "invalid duration {text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ))
        }
    };
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err(format!(
            "invalid duration {text:?}: expected a number with an optional unit, e.g. 300ms, 2s, 1m"
        ));
    }
    let too_long = || {
        format!(
            "invalid duration {text:?}: too long (at most {}s)",
            MAX.as_secs()
        )
    };
    // Leading zeros are harmless; a long run of significant digits is too big.
    let int = int.trim_start_matches('0');
    if int.len() > 20 {
        return Err(too_long());
    }
    let whole: u128 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| too_long())?
    };
    let mut nanos = whole.checked_mul(unit_nanos).ok_or_else(too_long)?;
    // Each fractional digit is worth a tenth of the previous one; stop once
    // the digits are worth less than a nanosecond.
    let mut place = unit_nanos;
    for d in frac.bytes() {
        place /= 10;
        if place == 0 {
            break;
        }
        nanos += u128::from(d - b'0') * place;
    }
    if nanos > MAX.as_nanos() {
        return Err(too_long());
    }
    Ok(Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn units() {
        assert_eq!(ok("300ms"), Duration::from_millis(300));
        assert_eq!(ok("2s"), Duration::from_secs(2));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
    }

    #[test]
    fn plain_numbers_are_seconds() {
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("007"), Duration::from_secs(7));
    }

    #[test]
    fn fractions_are_exact() {
        assert_eq!(ok("0.3"), Duration::from_millis(300));
        assert_eq!(ok("0.3s"), Duration::from_millis(300));
        assert_eq!(ok("1.5m"), Duration::from_secs(90));
        assert_eq!(ok("2.5ms"), Duration::from_micros(2500));
        assert_eq!(ok(".5"), Duration::from_millis(500));
        assert_eq!(ok("5."), Duration::from_secs(5));
        assert_eq!(ok("0.000000001"), Duration::from_nanos(1));
        // Below a nanosecond is dropped.
        assert_eq!(ok("0.0000000019"), Duration::from_nanos(1));
        assert_eq!(ok("0.0001ms"), Duration::from_nanos(100));
    }

    #[test]
    fn limits() {
        assert_eq!(ok(&MAX.as_secs().to_string()), MAX);
        assert!(parse(&(MAX.as_secs() + 1).to_string()).is_err());
        assert!(parse("99999999999999999999999999999999h").is_err());
        assert!(parse("1193047h").is_err());
        assert_eq!(
            ok("0000000000000000000000000000001s"),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "s", "ms", ".", "..", "1..2", "1.2.3", "-1", "+1", "1 s", " 1", "1x", "1sec", "1S",
            "1d", "abc", "1e3", "inf", "NaN", "1m30s", "１",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = parse("3x").unwrap_err();
        assert!(e.contains("\"3x\"") && e.contains("unit"), "{e}");
        let e = parse("abc").unwrap_err();
        assert!(e.contains("\"abc\""), "{e}");
    }
}
