//! Byte sizes: `1048576`, `64k`, `1.5M`, `2GiB`, `10MB`.

use crate::duration::{scaled, split_number};

/// Parses a size in bytes: a non-negative number (fractions allowed with a
/// unit) and an optional unit, as coreutils reads them: `k`/`K`/`KiB`
/// 1024, `M`/`MiB` 1024², `G`/`GiB` 1024³, `T`/`TiB` 1024⁴; `kB`/`KB`,
/// `MB`, `GB`, `TB` the powers of 1000; `B` or nothing: bytes.
pub(crate) fn parse(text: &str) -> Result<u64, String> {
    let invalid = |why: &str| format!("invalid size {text:?}: {why}");
    if text.starts_with('-') {
        return Err(invalid("negative sizes are not allowed"));
    }
    let (number, unit) = split_number(text);
    let factor: u128 = match unit {
        "" | "B" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        _ => {
            return Err(invalid(&format!(
                "unknown unit {unit:?} (use k, M, G, T (powers of 1024, also KiB, MiB, GiB, TiB) or kB, MB, GB, TB)"
            )))
        }
    };
    if number.is_empty() {
        return Err(invalid(
            "expected a number of bytes with an optional unit, e.g. 4096, 64k, 1M",
        ));
    }
    match scaled(number, factor) {
        Err(why) => Err(invalid(why)),
        Ok(Some(n)) if n <= u128::from(u64::MAX) => Ok(n as u64),
        Ok(_) => Err(invalid("too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (text, n) in [
            ("0", 0),
            ("4096", 4096),
            ("1k", 1024),
            ("1K", 1024),
            ("1KiB", 1024),
            ("1kB", 1000),
            ("1.5M", 1_572_864),
            ("2MiB", 2 << 20),
            ("10MB", 10_000_000),
            ("1G", 1 << 30),
            ("1GiB", 1 << 30),
            ("3GB", 3_000_000_000),
            ("1T", 1 << 40),
            ("12B", 12),
            ("1e3", 1000),
        ] {
            assert_eq!(parse(text), Ok(n), "{text}");
        }
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "",
            "-5",
            "k",
            "1x",
            "1 k",
            "1kb",
            "abc",
            "99999999999999999999",
            "1e30G",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(parse("-5").unwrap_err().contains("negative"));
    }
}
