//! Go standard-library string helpers whose exact output shows up on the wire
//! (`strings.ToLower`, `http.CanonicalHeaderKey`) or decides config decoding
//! (`encoding/json`'s case-insensitive key match).

/// Go's `strings.ToLower`: per-rune simple lower-casing.
///
/// Rust's `str::to_lowercase` differs on two points that matter for exactness:
/// it maps U+0130 to two chars (Go maps it to `i`) and it lower-cases a final
/// sigma contextually (Go never does). Mapping char by char avoids both.
pub fn lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    s.chars()
        .map(|c| {
            if c == '\u{130}' {
                return 'i';
            }
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(x), None) => x,
                _ => c,
            }
        })
        .collect()
}

/// RFC 7230 `tchar`: the bytes Go's `validHeaderFieldByte` accepts.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Go's `http.CanonicalHeaderKey` (`textproto.CanonicalMIMEHeaderKey`).
///
/// rs/cors applies it to `ExposedHeaders`, so `x-stream-output` goes out as
/// `X-Stream-Output`. A name holding any non-token byte (space, colon, non-ASCII...)
/// is returned unchanged, as Go does.
pub fn canonical_header_key(s: &str) -> String {
    if !s.bytes().all(is_token_byte) {
        return s.to_string();
    }
    let mut upper = true;
    s.bytes()
        .map(|b| {
            let c = if upper { b.to_ascii_uppercase() } else { b.to_ascii_lowercase() };
            upper = c == b'-';
            char::from(c)
        })
        .collect()
}

/// Whether JSON object key `key` selects the struct field named `field` (ASCII,
/// lower-case) under Go `encoding/json` rules: an exact match, or else a match
/// under Unicode simple case folding. For ASCII letters the only non-ASCII members
/// of a fold orbit are U+017F (long s, folds with `s`) and U+212A (Kelvin sign,
/// folds with `k`), so those two are the only extra cases.
pub fn json_key_matches(key: &str, field: &str) -> bool {
    if key == field {
        return true;
    }
    let mut fb = field.bytes();
    for kc in key.chars() {
        let Some(f) = fb.next() else { return false };
        let ok = match kc {
            '\u{17f}' => f == b's',
            '\u{212a}' => f == b'k',
            c if c.is_ascii() => c.to_ascii_lowercase() as u8 == f,
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    fb.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_matches_go() {
        assert_eq!(lower("HTTPS://Example.COM"), "https://example.com");
        assert_eq!(lower("\u{130}"), "i");
        assert_eq!(lower("\u{3a3}A\u{3a3}"), "\u{3c3}a\u{3c3}");
        assert_eq!(lower("https://B\u{dc}CHER.de"), "https://b\u{fc}cher.de");
    }

    #[test]
    fn canonical_key_matches_go() {
        assert_eq!(canonical_header_key("content-type"), "Content-Type");
        assert_eq!(canonical_header_key("X-STREAM-OUTPUT"), "X-Stream-Output");
        assert_eq!(canonical_header_key("x-chunked-output"), "X-Chunked-Output");
        assert_eq!(canonical_header_key("content-id"), "Content-Id");
        assert_eq!(canonical_header_key("www-authenticate"), "Www-Authenticate");
        assert_eq!(canonical_header_key("x--a"), "X--A");
        assert_eq!(canonical_header_key("-foo"), "-Foo");
        assert_eq!(canonical_header_key("a1b"), "A1b");
        assert_eq!(canonical_header_key("*"), "*");
        assert_eq!(canonical_header_key(""), "");
        // Non-token bytes: unchanged.
        assert_eq!(canonical_header_key("x foo"), "x foo");
        assert_eq!(canonical_header_key("x-f\u{f6}o"), "x-f\u{f6}o");
        assert_eq!(canonical_header_key("x:y"), "x:y");
    }

    #[test]
    fn json_keys_fold_like_go() {
        assert!(json_key_matches("cors_max_age", "cors_max_age"));
        assert!(json_key_matches("CORS_Max_Age", "cors_max_age"));
        assert!(json_key_matches("cor\u{17f}_max_age", "cors_max_age"));
        assert!(!json_key_matches("cors-max-age", "cors_max_age"));
        assert!(!json_key_matches("cors_max_ag", "cors_max_age"));
        assert!(!json_key_matches("cors_max_agee", "cors_max_age"));
    }
}
