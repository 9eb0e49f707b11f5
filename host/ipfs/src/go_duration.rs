//! Go duration strings (`"15s"`, `"2m0s"`, `"1h0m0s"`, `"200ms"`) as the duration keys of IPFS
//! Cluster's service.json take them: the workspace's one parser, `cairn-go-duration`, with the
//! `String` errors the connectors' config readers report.

use std::time::Duration;

pub use cairn_go_duration::format;

/// Parse a non-negative Go duration (`"1h30m"`, `"1.5s"`, `"0"`); errors are Go's texts. A
/// negative duration is refused: no key of service.json means anything by it.
pub fn parse(text: &str) -> Result<Duration, String> {
    cairn_go_duration::parse_duration(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_through_the_shared_parser() {
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(format(Duration::from_secs(120)), "2m0s");
        assert_eq!(parse("-5s").unwrap_err(), r#"time: invalid duration "-5s": negative durations are not allowed"#);
        assert_eq!(parse("15").unwrap_err(), r#"time: missing unit in duration "15""#);
    }
}
