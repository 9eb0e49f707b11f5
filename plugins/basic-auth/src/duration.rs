//! Go's `time.ParseDuration` syntax ("1h30m", "0s", "1.5s", "300ms"), in seconds: the
//! workspace's one parser (`cairn-go-duration`) with this policy's config error text.

/// Parse a Go duration string into seconds.
pub(crate) fn parse_go_duration(text: &str) -> Result<f64, String> {
    let nanos = cairn_go_duration::parse(text)
        .map_err(|_| format!("{text:?} is not a duration (examples: \"24h\", \"90m\", \"0s\")"))?;
    // Within ±292 years: f64 holds the seconds to well under a microsecond.
    Ok(nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("0s"), Ok(0.0));
        assert_eq!(parse_go_duration("0"), Ok(0.0));
        assert_eq!(parse_go_duration("24h"), Ok(86400.0));
        assert_eq!(parse_go_duration("1h30m"), Ok(5400.0));
        assert_eq!(parse_go_duration("1.5s"), Ok(1.5));
        assert_eq!(parse_go_duration("300ms"), Ok(0.3));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("10").is_err());
        assert!(parse_go_duration("5 days").is_err());
        // Past Go's range (about 292 years) is refused, as IPFS Cluster would.
        assert!(parse_go_duration("99999999999h").is_err());
    }
}
