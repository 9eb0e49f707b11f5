//! The JWT subset IPFS Cluster uses: HMAC-signed (HS256/384/512), registered claims.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Why a token was refused (for tests; the client only sees "invalid token").
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JwtError {
    Malformed,
    NotHmac,
    UnknownIssuer,
    BadSignature,
    Expired,
    NotYetValid,
    IssuedInFuture,
    /// An empty password signs nothing, as it authenticates nothing with Basic.
    EmptyKey,
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

fn mac(alg: &str, key: &[u8], data: &[u8]) -> Result<Vec<u8>, JwtError> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Result<Vec<u8>, JwtError> {
        // HMAC takes keys of any length; the error cannot happen, but is not a panic either.
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).map_err(|_| JwtError::EmptyKey)?;
        m.update(data);
        Ok(m.finalize().into_bytes().to_vec())
    }
    match alg {
        "HS256" => run::<Hmac<sha2::Sha256>>(key, data),
        "HS384" => run::<Hmac<sha2::Sha384>>(key, data),
        "HS512" => run::<Hmac<sha2::Sha512>>(key, data),
        _ => Err(JwtError::NotHmac),
    }
}

/// A NumericDate claim, if present; a claim of another type makes the token malformed.
fn numeric(claims: &serde_json::Map<String, Value>, name: &str) -> Result<Option<f64>, JwtError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(JwtError::Malformed),
        Some(_) => Err(JwtError::Malformed),
    }
}

/// Verify `token`: the key is the password of the user named in `iss`. Returns the issuer.
pub(crate) fn verify<'a>(
    token: &str,
    key_for: impl Fn(&str) -> Option<&'a [u8]>,
    now: f64,
) -> Result<String, JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(JwtError::Malformed);
    };
    let header: Header = decode_json(h)?;
    let claims: serde_json::Map<String, Value> = decode_json(c)?;
    let issuer = match claims.get("iss") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(JwtError::Malformed),
    };
    let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
    if !matches!(header.alg.as_str(), "HS256" | "HS384" | "HS512") {
        return Err(JwtError::NotHmac);
    }
    let key = key_for(&issuer).ok_or(JwtError::UnknownIssuer)?;
    if key.is_empty() {
        return Err(JwtError::EmptyKey);
    }
    let expected = mac(&header.alg, key, format!("{h}.{c}").as_bytes())?;
    if !crate::constant_time_eq(&expected, &signature) {
        return Err(JwtError::BadSignature);
    }
    if numeric(&claims, "exp")?.is_some_and(|exp| now >= exp) {
        return Err(JwtError::Expired);
    }
    if numeric(&claims, "nbf")?.is_some_and(|nbf| now < nbf) {
        return Err(JwtError::NotYetValid);
    }
    if numeric(&claims, "iat")?.is_some_and(|iat| now < iat) {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(issuer)
}

/// An HS256 token with claims `{"iss": issuer}` (plus `exp`/`iat` when given), header
/// and claims encoded as Go's jwt library does.
pub(crate) fn sign_hs256(issuer: &str, key: &[u8], expiry: Option<(u64, u64)>) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let iss = serde_json::to_string(issuer).unwrap_or_else(|_| "\"\"".into());
    let claims = match expiry {
        None => format!(r#"{{"iss":{iss}}}"#),
        Some((iat, exp)) => format!(r#"{{"iss":{iss},"exp":{exp},"iat":{iat}}}"#),
    };
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    let signature = mac("HS256", key, signing_input.as_bytes()).unwrap_or_default();
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}
