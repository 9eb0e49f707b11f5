//! Go duration strings (`"2m0s"`, `"3h"`, `"200ms"`), read and written as Go's
//! `time.ParseDuration` and `time.Duration.String` do — the same rules as the `ipfshttp` section
//! of service.json (the cairn binary's `config::duration`, repeated here because a library cannot
//! depend on the binary).

use std::time::Duration;

/// Parses a Go duration: decimal numbers with units (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`),
/// e.g. `"1h30m"`, `"1.5s"`, or a bare `"0"`. Negative durations are refused.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
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
    if total > i64::MAX as u128 {
        return Err(format!("invalid duration {orig:?}: too large"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats like Go's `time.Duration.String`: `"0s"`, `"200ms"`, `"15s"`, `"2m0s"`, `"1h0m0s"`.
pub(crate) fn format(d: Duration) -> String {
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
    fn parses_and_formats_like_go() {
        for (text, want) in [
            ("0", Duration::ZERO),
            ("2m", Duration::from_secs(120)),
            ("2m0s", Duration::from_secs(120)),
            ("3h", Duration::from_secs(3 * 3600)),
            ("1.5s", Duration::from_millis(1500)),
            ("200ms", Duration::from_millis(200)),
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        for bad in ["", "15", "1x", "-5s", "abc"] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert_eq!(format(Duration::from_secs(120)), "2m0s");
        assert_eq!(format(Duration::from_secs(24 * 3600)), "24h0m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
    }
}
