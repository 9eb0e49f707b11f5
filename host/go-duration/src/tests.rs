//! The union of the tests of the four parsers this crate replaces (host/api's query parser,
//! host/ipfs's config parser, basic-auth's and cors-config's), plus Go's own test table.

use std::time::Duration;

use super::{Error, format, parse, parse_duration};

#[test]
fn valid_durations_like_go() {
    // Go's time_test.go parseDurationTests, and the cases the replaced parsers tested.
    let cases: &[(&str, i64)] = &[
        ("0", 0),
        ("+0", 0),
        ("-0", 0),
        ("0s", 0),
        ("-0s", 0),
        ("5s", 5_000_000_000),
        ("30s", 30_000_000_000),
        ("1478s", 1_478_000_000_000),
        ("-5s", -5_000_000_000),
        ("+5s", 5_000_000_000),
        ("5.0s", 5_000_000_000),
        ("5.6s", 5_600_000_000),
        ("5.s", 5_000_000_000),
        (".5s", 500_000_000),
        ("1.0s", 1_000_000_000),
        ("1.00s", 1_000_000_000),
        ("1.004s", 1_004_000_000),
        ("1.0040s", 1_004_000_000),
        ("100.00100s", 100_001_000_000),
        ("10ns", 10),
        ("11us", 11_000),
        ("12\u{b5}s", 12_000),
        ("12\u{3bc}s", 12_000),
        ("13ms", 13_000_000),
        ("14s", 14_000_000_000),
        ("15m", 900_000_000_000),
        ("16h", 57_600_000_000_000),
        ("3h30m", 12_600_000_000_000),
        ("10.5s4m", 250_500_000_000),
        ("-2m3.4s", -123_400_000_000),
        ("1h2m3s4ms5us6ns", 3_723_004_005_006),
        ("39h9m14.425s", 140_954_425_000_000),
        ("52763797000ns", 52_763_797_000),
        ("0.3333333333333333333h", 1_200_000_000_000),
        ("9007199254740993ns", 9_007_199_254_740_993),
        ("9223372036854775807ns", i64::MAX),
        ("9223372036854775.807us", i64::MAX),
        ("9223372036s854ms775us807ns", i64::MAX),
        ("-9223372036854775808ns", i64::MIN),
        ("-9223372036854775.808us", i64::MIN),
        ("-9223372036s854ms775us808ns", i64::MIN),
        ("-2562047h47m16.854775808s", i64::MIN),
        ("0.100000000000000000000h", 360_000_000_000),
        ("0.830103483285477580700h", 2_988_372_539_827),
        ("10m0s", 600_000_000_000),
        ("2m0s", 120_000_000_000),
        // host/api's and basic-auth's cases.
        ("1h30m", 5_400_000_000_000),
        ("1.5s", 1_500_000_000),
        ("-2ms", -2_000_000),
        ("300µs", 300_000),
        ("300ms", 300_000_000),
        ("24h", 86_400_000_000_000),
        ("3us", 3_000),
        ("7ns", 7),
        ("+1h", 3_600_000_000_000),
    ];
    for &(text, want) in cases {
        assert_eq!(parse(text), Ok(want), "{text}");
    }
}

#[test]
fn invalid_durations_like_go() {
    for text in [
        "",
        "3",
        "10",
        "-",
        "s",
        ".",
        "-.",
        ".s",
        "+.s",
        "1d",
        "1x",
        "abc",
        "1.s.",
        "1h-2m",
        "5 days",
        "\u{fffd}",
        "hello \u{ff}\u{ff} world",
        "9223372036854775810ns",
        "9223372036854775808ns",
        "-9223372036854775809ns",
        "9223372036854776us",
        "3000000h",
        "99999999999h",
        "9223372036854775.808us",
        "9223372036854ms775us808ns",
        "1s ",
        " 1s",
        "1 s",
        "1S",
        "1.5.s",
    ] {
        assert!(parse(text).is_err(), "{text:?} should be refused");
    }
}

#[test]
fn error_texts_are_gos() {
    let text = |input: &str| parse(input).expect_err(input).to_string();
    assert_eq!(text("3"), r#"time: missing unit in duration "3""#);
    assert_eq!(text("10"), r#"time: missing unit in duration "10""#);
    assert_eq!(text("1d"), r#"time: unknown unit "d" in duration "1d""#);
    assert_eq!(text("x"), r#"time: invalid duration "x""#);
    assert_eq!(text(""), r#"time: invalid duration """#);
    // Go's quote: non-ASCII and control bytes as \x escapes, quotes and backslashes escaped.
    assert_eq!(text("1µx"), r#"time: unknown unit "\xc2\xb5x" in duration "1\xc2\xb5x""#);
    assert_eq!(text("\"\\\t"), r#"time: invalid duration "\"\\\x09""#);
    assert_eq!(
        parse_duration("-5s").expect_err("negative").to_string(),
        r#"time: invalid duration "-5s": negative durations are not allowed"#
    );
}

#[test]
fn overflow_is_an_error_not_a_wrapped_value() {
    // Issue #14: this input wrapped to a small positive duration in one of the old parsers.
    let input = "94522879700260684295381835.9h";
    assert_eq!(parse(input), Err(Error::Invalid { input: input.to_owned() }));
    for input in [
        // Each term fits, the sum does not.
        "9223372036854775807ns1ns",
        "2562047h48m",
        // The integer fits, adding the fraction does not.
        "2562047h47m16.854775808s1ns",
        // Go's accumulator wraps to 0 on this one; here it is out of range.
        "9223372036854775808ns9223372036854775808ns",
        // Very long digit runs, in the integer and in the fraction.
        &format!("{}s", "9".repeat(400)),
        &format!("1.{}h{}h", "9".repeat(400), "9".repeat(30)),
    ] {
        assert!(matches!(parse(input), Err(Error::Invalid { .. })), "{input:?}: {:?}", parse(input));
    }
    // A fraction with more digits than fit is truncated, as in Go, not an error.
    assert_eq!(parse(&format!("1.{}s", "0".repeat(400))), Ok(1_000_000_000));
}

#[test]
fn non_negative_durations_for_config_keys() {
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
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for bad in ["", "s", "15", "1x", "1.s.", "-5s", "abc", "1h-2m", "-9223372036854775808ns"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
    }
}

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
        (Duration::from_nanos(i64::MAX as u64), "2562047h47m16.854775807s"),
    ];
    for (d, want) in cases {
        assert_eq!(format(d), want, "{d:?}");
        assert_eq!(parse_duration(want), Ok(d), "{want} parses back");
    }
}
