//! Decoding of an API section's `cors_*` keys the way IPFS Cluster v1.1.6's
//! `api/common/config.go` does it with Go's `encoding/json`:
//!
//! - keys match case-insensitively (an exact match wins), a later duplicate
//!   overwrites an earlier one, unknown keys are ignored;
//! - `null` on a list sets it to nil (= "missing"), `null` on the bool or the
//!   string leaves the previous value;
//! - a `null` element inside a list decodes to `""`;
//! - any other type mismatch is an error, which we name by the key.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::gostr::json_key_matches;

/// Config key of the allowed-origins list.
pub const KEY_ORIGINS: &str = "cors_allowed_origins";
/// Config key of the allowed-methods list.
pub const KEY_METHODS: &str = "cors_allowed_methods";
/// Config key of the allowed request-headers list.
pub const KEY_HEADERS: &str = "cors_allowed_headers";
/// Config key of the exposed response-headers list.
pub const KEY_EXPOSED: &str = "cors_exposed_headers";
/// Config key of the allow-credentials flag.
pub const KEY_CREDENTIALS: &str = "cors_allow_credentials";
/// Config key of the preflight cache duration (a Go duration string).
pub const KEY_MAX_AGE: &str = "cors_max_age";

/// The `cors_*` keys as decoded, before rs/cors applies its defaults.
/// `None` on a list is Go's nil slice: the key was missing or `null`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawConfig {
    /// `cors_allowed_origins`.
    pub allowed_origins: Option<Vec<String>>,
    /// `cors_allowed_methods`.
    pub allowed_methods: Option<Vec<String>>,
    /// `cors_allowed_headers`.
    pub allowed_headers: Option<Vec<String>>,
    /// `cors_exposed_headers`.
    pub exposed_headers: Option<Vec<String>>,
    /// `cors_allow_credentials` (false when missing).
    pub allow_credentials: bool,
    /// `cors_max_age` as written (empty when missing; IPFS Cluster then uses `"0s"`).
    pub max_age: String,
}

impl RawConfig {
    /// Decode the API section JSON text (`null` = every key missing).
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
}

/// A JSON list of strings with Go's nil-slice semantics for `null`.
struct GoStrings(Option<Vec<String>>);

/// One list element; `null` becomes the zero string, as in Go.
struct GoString(String);

impl<'de> Deserialize<'de> for GoString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<String>::deserialize(d).map(|s| GoString(s.unwrap_or_default()))
    }
}

impl<'de> Deserialize<'de> for GoStrings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoStrings;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of strings or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<GoStrings, E> {
                Ok(GoStrings(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<GoStrings, E> {
                Ok(GoStrings(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoStrings, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(GoString(s)) = seq.next_element()? {
                    out.push(s);
                }
                Ok(GoStrings(Some(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Prefix a decoding error with the canonical key name, so the operator sees which key is wrong.
fn named<E: de::Error>(key: &str, e: E) -> E {
    E::custom(format_args!("{key}: {e}"))
}

impl<'de> Deserialize<'de> for RawConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object with the API section's cors_* keys, or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawConfig, E> {
                Ok(RawConfig::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawConfig, A::Error> {
                let mut out = RawConfig::default();
                // Walk entries in document order so that, as in Go, the last of several
                // keys selecting the same field wins.
                while let Some(key) = map.next_key::<String>()? {
                    let lists: [(&str, &mut Option<Vec<String>>); 4] = [
                        (KEY_ORIGINS, &mut out.allowed_origins),
                        (KEY_METHODS, &mut out.allowed_methods),
                        (KEY_HEADERS, &mut out.allowed_headers),
                        (KEY_EXPOSED, &mut out.exposed_headers),
                    ];
                    let mut handled = false;
                    for (name, slot) in lists {
                        if json_key_matches(&key, name) {
                            *slot = map.next_value::<GoStrings>().map_err(|e| named(name, e))?.0;
                            handled = true;
                            break;
                        }
                    }
                    if handled {
                        continue;
                    }
                    if json_key_matches(&key, KEY_CREDENTIALS) {
                        let v = map.next_value::<Option<bool>>().map_err(|e| named(KEY_CREDENTIALS, e))?;
                        if let Some(v) = v {
                            out.allow_credentials = v;
                        }
                    } else if json_key_matches(&key, KEY_MAX_AGE) {
                        let v = map.next_value::<Option<String>>().map_err(|e| named(KEY_MAX_AGE, e))?;
                        if let Some(v) = v {
                            out.max_age = v;
                        }
                    } else {
                        // Other keys of the API section (listen addresses, TLS, auth...) are
                        // not ours to judge.
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V)
    }
}
