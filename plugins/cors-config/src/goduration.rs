//! Go's `time.ParseDuration`, because IPFS Cluster parses `cors_max_age` with it and a
//! compatible peer must accept and reject the same strings: the workspace's one parser
//! (`cairn-go-duration`, whose tests hold Go's cases), with Go's error text.

/// Parse a Go duration string (`"0s"`, `"10m0s"`, `"1.5h"`, `"-300ms"`, `"0"`) into nanoseconds.
pub fn parse(text: &str) -> Result<i64, String> {
    cairn_go_duration::parse(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn go_durations_with_gos_errors() {
        assert_eq!(parse("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse("-0"), Ok(0));
        assert_eq!(parse("10"), Err(r#"time: missing unit in duration "10""#.to_owned()));
        assert_eq!(parse("9999999999h"), Err(r#"time: invalid duration "9999999999h""#.to_owned()));
    }
}
