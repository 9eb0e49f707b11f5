//! Tolerant readers for daemon answers: Kubo and js-ipfs spell the same fields differently
//! (numbers as strings, CIDs as strings or `{"/": ..}` links, in any multibase), and fields may be
//! missing. Everything here takes untrusted JSON and never panics.

use cid::Cid;
use serde_json::Value;

/// A non-negative integer sent as a JSON number, a float with no fraction, or a decimal string.
pub(crate) fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f <= u64::MAX as f64)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

/// A signed integer sent as a number or a string.
pub(crate) fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A CID in any multibase (CIDv0 bare or, as js-ipfs sometimes prints, with a `z` prefix),
/// optionally under `/ipfs/`.
pub(crate) fn parse_cid(s: &str) -> Option<Cid> {
    let s = s.trim();
    let s = s.strip_prefix("/ipfs/").unwrap_or(s);
    Cid::try_from(s).ok()
}

/// A CID sent as a string or as an IPLD link `{"/": "<cid>"}`.
pub(crate) fn cid_value(value: &Value) -> Option<Cid> {
    match value {
        Value::String(s) => parse_cid(s),
        Value::Object(map) => map.get("/").and_then(Value::as_str).and_then(parse_cid),
        _ => None,
    }
}

/// Looks a field up under its Kubo spelling, then case-insensitively (some daemons and proxies
/// lower-case keys).
pub(crate) fn field<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    let map = value.as_object()?;
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// A string field, or None when missing or not a string.
pub(crate) fn str_field<'v>(value: &'v Value, name: &str) -> Option<&'v str> {
    field(value, name).and_then(Value::as_str)
}

/// Kubo's error object `{"Message":..,"Code":..,"Type":"error"}` inside a streamed answer.
pub(crate) fn stream_error(value: &Value) -> Option<(String, Option<i64>)> {
    let is_error = str_field(value, "Type").is_some_and(|t| t.eq_ignore_ascii_case("error"));
    let message = str_field(value, "Message")?;
    is_error.then(|| (message.to_owned(), field(value, "Code").and_then(as_i64)))
}

/// Decodes an error body: Kubo's JSON object when it is one, else the text itself (shortened).
pub(crate) fn error_body(body: &[u8]) -> (String, Option<i64>) {
    if let Ok(value) = serde_json::from_slice::<Value>(body)
        && let Some(message) = str_field(&value, "Message")
    {
        return (message.to_owned(), field(&value, "Code").and_then(as_i64));
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut short: String = text.chars().take(512).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    (short, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_numbers_strings_and_floats() {
        assert_eq!(as_u64(&json!(13)), Some(13));
        assert_eq!(as_u64(&json!("9007199254740991")), Some(9_007_199_254_740_991));
        assert_eq!(as_u64(&json!(" 42 ")), Some(42));
        assert_eq!(as_u64(&json!(1.0e3)), Some(1000));
        assert_eq!(as_u64(&json!(-1)), None);
        assert_eq!(as_u64(&json!("x")), None);
        assert_eq!(as_u64(&json!(null)), None);
        assert_eq!(as_i64(&json!("-3")), Some(-3));
    }

    #[test]
    fn cids_in_any_multibase_and_link_form() {
        let v0 = "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG";
        let cid = parse_cid(v0).unwrap();
        // js-ipfs's resolve prints CIDv0 with a base58btc multibase prefix.
        assert_eq!(parse_cid(&format!("z{v0}")), Some(cid));
        assert_eq!(parse_cid(&format!("/ipfs/{v0}")), Some(cid));
        let v1 = cid::Cid::new_v1(0x55, *cid.hash());
        let b32 = v1.to_string();
        let b58 = v1.to_string_of_base(cid::multibase::Base::Base58Btc).unwrap();
        let b36 = v1.to_string_of_base(cid::multibase::Base::Base36Lower).unwrap();
        for s in [&b32, &b58, &b36] {
            assert_eq!(parse_cid(s), Some(v1), "{s}");
        }
        assert_eq!(cid_value(&json!({ "/": b58 })), Some(v1));
        assert_eq!(cid_value(&json!(b32)), Some(v1));
        assert_eq!(cid_value(&json!(12)), None);
        assert_eq!(parse_cid("not-a-cid"), None);
        assert_eq!(parse_cid(""), None);
    }

    #[test]
    fn fields_case_insensitively() {
        let v = json!({"pins": ["a"], "Keys": {}});
        assert!(field(&v, "Pins").is_some());
        assert!(field(&v, "Keys").is_some());
        assert!(field(&json!([1]), "Pins").is_none());
    }

    #[test]
    fn error_bodies_json_or_text() {
        assert_eq!(
            error_body(br#"{"Message":"path 'x' is not pinned","Code":0,"Type":"error"}"#),
            ("path 'x' is not pinned".to_owned(), Some(0))
        );
        assert_eq!(error_body(b"404 page not found\n"), ("404 page not found".to_owned(), None));
        let long = vec![b'a'; 2000];
        assert!(error_body(&long).0.chars().count() <= 513);
        assert_eq!(stream_error(&json!({"Message":"boom","Code":0,"Type":"error"})), Some(("boom".into(), Some(0))));
        assert_eq!(stream_error(&json!({"Message":"not an error"})), None);
    }
}
