//! Role-scoped bearer tokens: HS256 JWTs whose claims carry the user (`sub`), the role it
//! had when the token was issued, and the issue and expiry times (Unix seconds).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The only header this plugin signs or accepts: pinning the algorithm rules out
/// `alg: none` and algorithm-confusion tokens.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user the token was issued to.
    pub sub: String,
    /// The user's role when the token was issued.
    pub role: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds: the token is refused from this second on.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts, a header other than HS256, or claims that do not parse.
    Malformed,
    /// Not signed with this plugin's `token_secret`.
    BadSignature,
    Expired,
}

/// A token for `claims`, signed with `secret`.
pub fn sign(claims: &Claims, secret: &[u8]) -> Result<String, String> {
    let claims = serde_json::to_vec(claims).map_err(|e| format!("cannot encode token claims: {e}"))?;
    let signing_input = format!("{}.{}", URL_SAFE_NO_PAD.encode(HEADER), URL_SAFE_NO_PAD.encode(claims));
    let mut mac = mac(secret)?;
    mac.update(signing_input.as_bytes());
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())))
}

/// The claims of `token` if `secret` signed it and it has not expired at `now`.
pub fn verify(token: &str, secret: &[u8], now: u64) -> Result<Claims, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
    let mut mac = mac(secret).map_err(|_| TokenError::BadSignature)?;
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(claims.as_bytes());
    // verify_slice compares in constant time.
    mac.verify_slice(&signature).map_err(|_| TokenError::BadSignature)?;

    // Signed by us, so the header is ours too; check it anyway rather than trust that.
    let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|_| TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Malformed);
    }
    let claims = URL_SAFE_NO_PAD.decode(claims).map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&claims).map_err(|_| TokenError::Malformed)?;
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn mac(secret: &[u8]) -> Result<HmacSha256, String> {
    // HMAC takes keys of any length, so this cannot fail; no panic path either way.
    HmacSha256::new_from_slice(secret).map_err(|e| format!("invalid token secret: {e}"))
}
