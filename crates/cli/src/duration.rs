//! Parsing of human durations, a superset of what timeout(1) accepts:
//! `300ms`, `2s`, `1.5m`, `1h`, `1d`, `10`, `1e3`, `2.5e-1s`, compounds such
//! as `1m30s` or `1h2m3.5s`, and `inf`.

use std::time::Duration;

/// The longest duration accepted: about 136 years, far beyond any useful
/// timeout, and small enough that adding it to an `Instant` cannot overflow.
/// `inf` (or `infinity`) means this.
pub(crate) const MAX: Duration = Duration::from_secs(u32::MAX as u64);

const UNITS: &str = "ms, s, m, h or d";

/// Parses a duration: one or more parts `NUMBER[UNIT]`, each a
/// non-negative decimal number (with an optional fraction and exponent, as
/// timeout(1) takes them: `1.5`, `.5`, `1e3`, `2E-3`) and a unit `ms`, `s`,
/// `m`, `h` or `d`. A single number without a unit is seconds; in a
/// compound (`1m30s`) every part has its unit. `inf`/`infinity` is
/// [`MAX`].
///
/// The arithmetic is exact (no floating point): `0.3s` is 300 ms, digits
/// below a nanosecond are dropped.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let invalid = |why: &str| format!("invalid duration {text:?}: {why}");
    if text.starts_with('-') {
        return Err(invalid("negative durations are not allowed"));
    }
    if text.eq_ignore_ascii_case("inf") || text.eq_ignore_ascii_case("infinity") {
        return Ok(MAX);
    }
    let too_long = || invalid(&format!("too long (at most {}s)", MAX.as_secs()));
    let mut rest = text;
    let mut total: u128 = 0;
    let mut parts = 0;
    while !rest.is_empty() {
        let (number, after) = split_number(rest);
        if number.is_empty() {
            return Err(invalid(&format!(
                "expected a number with an optional unit ({UNITS}), e.g. 300ms, 2s, 1m30s"
            )));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "" if parts == 0 && next.is_empty() => 1_000_000_000,
            "" => {
                return Err(invalid(&format!(
                    "every part of a compound needs a unit ({UNITS})"
                )))
            }
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "d" => 86400 * 1_000_000_000,
            _ => return Err(invalid(&format!("unknown unit {unit:?} (use {UNITS})"))),
        };
        let nanos = scaled(number, unit_nanos)
            .map_err(&invalid)?
            .ok_or_else(too_long)?;
        total = total.checked_add(nanos).ok_or_else(too_long)?;
        if total > MAX.as_nanos() {
            return Err(too_long());
        }
        parts += 1;
        rest = next;
    }
    if parts == 0 {
        return Err(invalid(&format!(
            "expected a number with an optional unit ({UNITS}), e.g. 300ms, 2s, 1m30s"
        )));
    }
    Ok(Duration::new(
        (total / 1_000_000_000) as u64,
        (total % 1_000_000_000) as u32,
    ))
}

/// Splits `text` after its leading number: digits, an optional `.` and
/// digits, an optional exponent (`e`/`E`, sign, digits; only taken when
/// digits follow, so `1e` leaves `e` as the unit).
pub(crate) fn split_number(text: &str) -> (&str, &str) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
        i += 1;
    }
    if i > 0 && i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let digits = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > digits {
            i = j;
        }
    }
    text.split_at(i)
}

/// `number` (as split by [`split_number`]) times `unit`, exactly,
/// truncated to an integer. `Ok(None)` when too large for a `u128`;
/// `Err` when it is not a number.
pub(crate) fn scaled(number: &str, unit: u128) -> Result<Option<u128>, &'static str> {
    let (mantissa, exp) = match number.find(['e', 'E']) {
        Some(i) => (
            &number[..i],
            number[i + 1..]
                .parse::<i32>()
                .map_err(|_| "bad exponent")?
                .clamp(-100, 100),
        ),
        None => (number, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits_ok(int) || !digits_ok(frac) {
        return Err("not a number");
    }
    // All significant digits as one integer, and the power of ten to apply.
    let mut digits: String = int.trim_start_matches('0').to_owned();
    digits.push_str(frac);
    let mut power = exp - frac.len() as i32;
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Ok(Some(0));
    }
    // Digits far below a nanosecond cannot matter: keep 40 at most.
    let (digits, dropped) = if digits.len() > 40 {
        (&digits[..40], digits.len() - 40)
    } else {
        (digits, 0)
    };
    power += dropped as i32;
    let Ok(value) = digits.parse::<u128>() else {
        return Ok(None);
    };
    let Some(mut value_unit) = value.checked_mul(unit) else {
        return Ok(None);
    };
    if power >= 0 {
        for _ in 0..power {
            match value_unit.checked_mul(10) {
                Some(v) => value_unit = v,
                None => return Ok(None),
            }
        }
        Ok(Some(value_unit))
    } else {
        // Divide step by step: value * unit may be huge before it shrinks.
        for _ in 0..(-power) {
            value_unit /= 10;
            if value_unit == 0 {
                break;
            }
        }
        Ok(Some(value_unit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn units() {
        for (text, d) in [
            ("300ms", Duration::from_millis(300)),
            ("2s", Duration::from_secs(2)),
            ("1m", Duration::from_secs(60)),
            ("1h", Duration::from_secs(3600)),
            ("1d", Duration::from_secs(86400)),
            ("1.5d", Duration::from_secs(129600)),
        ] {
            assert_eq!(ok(text), d, "{text}");
        }
    }

    #[test]
    fn plain_numbers_are_seconds() {
        assert_eq!(ok("10"), Duration::from_secs(10));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("007"), Duration::from_secs(7));
    }

    #[test]
    fn compounds() {
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1h2m3.5s"), Duration::from_millis(3_723_500));
        assert_eq!(ok("1s500ms"), Duration::from_millis(1500));
        assert_eq!(ok("1d1s"), Duration::from_secs(86401));
        // A unitless part is only a whole duration on its own.
        assert!(parse("1m30").is_err());
    }

    #[test]
    fn exponents_like_timeout() {
        assert_eq!(ok("1e3"), Duration::from_secs(1000));
        assert_eq!(ok("1E3ms"), Duration::from_secs(1));
        assert_eq!(ok("2.5e-1"), Duration::from_millis(250));
        assert_eq!(ok("1e+2s"), Duration::from_secs(100));
        assert_eq!(ok("5e-10"), Duration::ZERO);
        assert_eq!(ok("inf"), MAX);
        assert_eq!(ok("Infinity"), MAX);
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
        assert_eq!(ok("0.0000000019"), Duration::from_nanos(1));
        assert_eq!(ok("0.0001ms"), Duration::from_nanos(100));
    }

    #[test]
    fn limits() {
        assert_eq!(ok(&MAX.as_secs().to_string()), MAX);
        assert!(parse(&(MAX.as_secs() + 1).to_string()).is_err());
        assert!(parse("99999999999999999999999999999999h").is_err());
        assert!(parse("1193047h").is_err());
        assert!(parse("1e30").is_err());
        assert_eq!(
            ok("0000000000000000000000000000001s"),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "s", "ms", ".", "..", "1..2", "1.2.3", "-1", "+1", "1 s", " 1", "1x", "1sec", "1S",
            "abc", "NaN", "１", "1m30", "1e", "e3", "1.5.s", "-0.5s",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn error_messages_name_the_input() {
        let e = parse("3x").unwrap_err();
        assert!(e.contains("\"3x\"") && e.contains("unit"), "{e}");
        let e = parse("-1").unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }
}
