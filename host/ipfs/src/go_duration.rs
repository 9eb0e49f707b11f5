//! Go duration strings (`"15s"`, `"2m0s"`, `"1h0m0s"`, `"200ms"`), read and written the way
//! Go's `time.ParseDuration` and `time.Duration.String` do: the form every duration key of
//! IPFS Cluster's service.json takes, so the daemon's config and the connectors' sections share
//! one reading of them.

use std::time::Duration;

/// Parse a Go duration: a sequence of decimal numbers with units (`ns`, `us`, `µs`, `ms`, `s`,
/// `m`, `h`), e.g. `"1h30m"`, `"1.5s"`, or a bare `"0"`. Negative durations are refused: no
/// key of service.json means anything by them.
pub fn parse(text: &str) -> Result<Duration, String> {
    let orig = text;
    let mut s = text;
    if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    } else if let Some(rest) = s.strip_prefix('-') {
        if rest == "0" {
            return Ok(Duration::ZERO);
        }
        return Err(format!("invalid duration {orig:?}: negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(format!("invalid duration {orig:?}"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // The number: digits, optionally a fraction.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        let (frac_part, rest) = match rest.strip_prefix('.') {
            Some(r) => {
                let n = r.bytes().take_while(u8::is_ascii_digit).count();
                r.split_at(n)
            }
            None => ("", rest),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("invalid duration {orig:?}"));
        }
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let (unit, rest) = rest.split_at(unit_len);
        let nanos_per_unit: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "" => return Err(format!("missing unit in duration {orig:?}")),
            other => return Err(format!("unknown unit {other:?} in duration {orig:?}")),
        };
        let int: u128 =
            if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| format!("invalid duration {orig:?}"))? };
        let mut value =
            int.checked_mul(nanos_per_unit).ok_or_else(|| format!("invalid duration {orig:?}: too large"))?;
        // The fraction, truncated to whole nanoseconds as Go does.
        let mut scale = nanos_per_unit;
        for digit in frac_part.bytes().map(|b| u128::from(b - b'0')) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            value += digit * scale;
        }
        total = total.checked_add(value).ok_or_else(|| format!("invalid duration {orig:?}: too large"))?;
        s = rest;
    }
    // Go's Duration is an int64 of nanoseconds; larger values are refused there too.
    if total > i64::MAX as u128 {
        return Err(format!("invalid duration {orig:?}: too large"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Format like Go's `time.Duration.String`: `"0s"`, `"500ns"`, `"1.5µs"`, `"200ms"`, `"15s"`,
/// `"2m0s"`, `"1h0m0s"`, `"1.5s"`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000, 6));
    }
    let secs_total = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = secs_total / 3600;
    let minutes = (secs_total % 3600) / 60;
    let secs = fraction((secs_total % 60) * 1_000_000_000 + sub, 1_000_000_000, 9);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / unit` as a decimal with up to `digits` fraction digits, trailing zeros dropped.
fn fraction(value: u128, unit: u128, digits: usize) -> String {
    let int = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(500), "500ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_millis(200), "200ms"),
            (Duration::from_micros(1_500), "1.5ms"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_secs(12 * 60), "12m0s"),
            (Duration::from_secs(24 * 3600), "24h0m0s"),
            (Duration::from_secs(3 * 3600 + 61), "3h1m1s"),
        ];
        for (d, want) in cases {
            assert_eq!(format(d), want, "{d:?}");
        }
    }

    #[test]
    fn parses_like_go() {
        let cases = [
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("-0", Duration::ZERO),
            ("15s", Duration::from_secs(15)),
            ("2m0s", Duration::from_secs(120)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
            ("3h", Duration::from_secs(3 * 3600)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("200ms", Duration::from_millis(200)),
            ("3us", Duration::from_micros(3)),
            ("3µs", Duration::from_micros(3)),
            ("7ns", Duration::from_nanos(7)),
            ("+1h", Duration::from_secs(3600)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        for bad in ["", "s", "15", "1x", "1.s.", "-5s", "abc", "1h-2m"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
