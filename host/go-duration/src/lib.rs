//! Go duration strings (`"15s"`, `"2m0s"`, `"1h30m"`, `"-1.5h"`, `"0"`), read the way Go's
//! `time.ParseDuration` reads them and written the way `time.Duration.String` writes them.
//!
//! IPFS Cluster parses every duration it takes (service.json keys, `expire-in`, `cors_max_age`,
//! the CLI's flags) with Go's function, so a compatible peer must accept and refuse the same
//! strings, with the same error texts. This is the one parser of the workspace and of the guest
//! plugins. All arithmetic on the input is checked: a value that does not fit Go's `Duration`
//! (an `i64` of nanoseconds) is an error, never a wrapped value.

use std::fmt;
use std::time::Duration;

const NANOSECOND: u64 = 1;
const MICROSECOND: u64 = 1_000 * NANOSECOND;
const MILLISECOND: u64 = 1_000 * MICROSECOND;
const SECOND: u64 = 1_000 * MILLISECOND;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;

/// 1<<63: the magnitude bound Go checks its unsigned accumulator against (`-1<<63` is the
/// smallest duration, `1<<63 - 1` the largest).
const LIMIT: u64 = 1 << 63;

/// Why a text is not a Go duration. Its `Display` is Go's error text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not the syntax, or out of range: `time: invalid duration "<input>"`.
    Invalid {
        /// The whole input.
        input: String,
    },
    /// A number without a unit: `time: missing unit in duration "<input>"`.
    MissingUnit {
        /// The whole input.
        input: String,
    },
    /// A unit Go does not know: `time: unknown unit "<unit>" in duration "<input>"`.
    UnknownUnit {
        /// The unknown unit.
        unit: String,
        /// The whole input.
        input: String,
    },
    /// A valid but negative duration where only non-negative ones mean something
    /// ([`parse_duration`]).
    Negative {
        /// The whole input.
        input: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Invalid { input } => write!(f, "time: invalid duration {}", quote(input)),
            Error::MissingUnit { input } => write!(f, "time: missing unit in duration {}", quote(input)),
            Error::UnknownUnit { unit, input } => {
                write!(f, "time: unknown unit {} in duration {}", quote(unit), quote(input))
            }
            Error::Negative { input } => {
                write!(f, "time: invalid duration {}: negative durations are not allowed", quote(input))
            }
        }
    }
}

impl std::error::Error for Error {}

/// Nanoseconds per unit, as Go's `unitMap` (both micro signs included).
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => NANOSECOND,
        "us" | "\u{b5}s" | "\u{3bc}s" => MICROSECOND,
        "ms" => MILLISECOND,
        "s" => SECOND,
        "m" => MINUTE,
        "h" => HOUR,
        _ => return None,
    })
}

/// Go's `time.ParseDuration`: a possibly signed sequence of decimal numbers, each with an
/// optional fraction and a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`), or a bare `"0"`.
/// Returns nanoseconds.
///
/// One deliberate difference: Go's accumulator wraps when two terms are each exactly 1<<63 ns
/// (`"9223372036854775808ns9223372036854775808ns"` parses as 0 there); here that is out of
/// range like any other overflow.
pub fn parse(input: &str) -> Result<i64, Error> {
    let invalid = || Error::Invalid { input: input.to_owned() };
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    // Go special-cases a bare "0" (no unit needed), after the sign.
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !s.starts_with(|c: char| c == '.' || c.is_ascii_digit()) {
            return Err(invalid());
        }
        // The integer part, then an optional fraction.
        let (int_len, int) = leading_int(s).ok_or_else(invalid)?;
        let (_, rest) = s.split_at(int_len);
        s = rest;
        let mut fraction = Fraction { value: 0, scale: 1.0 };
        let mut frac_len = 0;
        if let Some(rest) = s.strip_prefix('.') {
            (frac_len, fraction) = leading_fraction(rest);
            let (_, rest) = rest.split_at(frac_len);
            s = rest;
        }
        if int_len == 0 && frac_len == 0 {
            // "." or ".s": no digits on either side.
            return Err(invalid());
        }

        // The unit runs until the next '.' or digit (so "µs" is consumed whole).
        let unit_len = s.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(s.len());
        if unit_len == 0 {
            return Err(Error::MissingUnit { input: input.to_owned() });
        }
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let per_unit =
            unit_nanos(unit).ok_or_else(|| Error::UnknownUnit { unit: unit.to_owned(), input: input.to_owned() })?;

        let mut value = int.checked_mul(per_unit).filter(|v| *v <= LIMIT).ok_or_else(invalid)?;
        if fraction.value > 0 {
            // float64 as in Go, to stay nanosecond-accurate for fractions of hours; the
            // conversion truncates (and saturates, though the term is at most one unit).
            let nanos = (fraction.value as f64 * (per_unit as f64 / fraction.scale)) as u64;
            value = value.checked_add(nanos).filter(|v| *v <= LIMIT).ok_or_else(invalid)?;
        }
        total = total.checked_add(value).filter(|v| *v <= LIMIT).ok_or_else(invalid)?;
    }
    if negative {
        // total <= 1<<63, so the negation always fits; only -(1<<63) has no positive twin.
        return Ok(i64::try_from(total).map_or(i64::MIN, |t| -t));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// [`parse`] for places where only a non-negative duration means something (service.json keys,
/// CLI timeouts): a negative one is [`Error::Negative`]; `"-0"` and `"-0s"` are zero.
pub fn parse_duration(input: &str) -> Result<Duration, Error> {
    let nanos = parse(input)?;
    let nanos = u64::try_from(nanos).map_err(|_| Error::Negative { input: input.to_owned() })?;
    Ok(Duration::from_nanos(nanos))
}

/// Go's `leadingInt`: the length of the leading `[0-9]*` and its value; `None` past 1<<63.
fn leading_int(s: &str) -> Option<(usize, u64)> {
    let mut value: u64 = 0;
    let mut len = 0;
    for digit in s.bytes().take_while(u8::is_ascii_digit) {
        value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
        if value > LIMIT {
            return None;
        }
        len += 1;
    }
    Some((len, value))
}

/// The digits of a fraction as an integer, and the power of ten to divide it by.
struct Fraction {
    value: u64,
    scale: f64,
}

/// Go's `leadingFraction`: the length of the leading `[0-9]*` and its value; digits beyond what
/// fits are consumed but dropped (they are below a nanosecond anyway).
fn leading_fraction(s: &str) -> (usize, Fraction) {
    let mut fraction = Fraction { value: 0, scale: 1.0 };
    let mut overflow = false;
    let mut len = 0;
    for digit in s.bytes().take_while(u8::is_ascii_digit) {
        len += 1;
        if overflow {
            continue;
        }
        match fraction.value.checked_mul(10).and_then(|v| v.checked_add(u64::from(digit - b'0'))) {
            Some(next) if next <= LIMIT => {
                fraction.value = next;
                fraction.scale *= 10.0;
            }
            _ => overflow = true,
        }
    }
    (len, fraction)
}

/// Go's `time.quote`: ASCII from `' '` up as is (with `"` and `\` escaped), every byte of
/// other characters as `\xNN`, so an error text reads the same as Go's.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c < ' ' || !c.is_ascii() {
            push_hex_bytes(&mut out, c);
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

fn push_hex_bytes(out: &mut String, c: char) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str("\\x");
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// Go's `time.Duration.String`: `"0s"`, `"500ns"`, `"1.5µs"`, `"200ms"`, `"15s"`, `"2m0s"`,
/// `"1h0m0s"`, `"1.5s"`.
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", decimal(nanos, 1_000, 3));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", decimal(nanos, 1_000_000, 6));
    }
    let secs_total = nanos / 1_000_000_000;
    let sub = nanos % 1_000_000_000;
    let hours = secs_total / 3600;
    let minutes = (secs_total % 3600) / 60;
    // A Duration's nanoseconds fit a u128 many times over: no overflow here.
    let secs = decimal((secs_total % 60) * 1_000_000_000 + sub, 1_000_000_000, 9);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// `value / unit` as a decimal with up to `digits` fraction digits, trailing zeros dropped.
fn decimal(value: u128, unit: u128, digits: usize) -> String {
    let int = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0digits$}");
    format!("{int}.{}", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests;
