//! Token verification (HS256 with a shared secret, RS256/EdDSA with a PEM public key), the
//! claims the gateway reads, and the request extractors for users and the host backend.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, errors::ErrorKind,
};
use serde::{Deserialize, Serialize};

use crate::config::{Config, JwtKey, decoding_key_from_pem};

/// Longest `sub`, in bytes (PROTOCOL.md).
pub const MAX_SUB_BYTES: usize = 256;
/// The sender of the host's messages posted without one; no user may be it.
pub const RESERVED_SUB: &str = "system";

/// Why a token or key was refused. Messages are safe to show the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("missing token: pass ?token= or Authorization: Bearer")]
    Missing,
    #[error("token expired")]
    Expired,
    /// The token cannot be used; the reason class is safe to show (never the token).
    #[error("invalid token: {0}")]
    Invalid(InvalidReason),
    #[error("a server API key is not accepted here")]
    WrongKind,
    /// `sub` is empty, too long, has control characters, or is reserved.
    #[error("the token's sub is not a usable user id")]
    BadSubject,
    /// The server API was called without the right key (or the server API is off).
    #[error("the server API needs Authorization: Bearer <SERVER_API_KEY>")]
    NotServerKey,
    /// The verifier is missing from the app (a wiring bug, not the client's fault).
    #[error("token verification is not configured")]
    NotConfigured,
}

/// Why a token was refused, as a class a client author can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// Not three base64url parts of JSON, or claims of the wrong type.
    Malformed,
    /// Signed with another key.
    BadSignature,
    /// Signed with an algorithm this gateway does not verify with.
    WrongAlgorithm,
    /// `aud` is not `JWT_AUDIENCE`.
    WrongAudience,
    /// `iss` is not `JWT_ISSUER`.
    WrongIssuer,
    /// `nbf` is in the future.
    NotYetValid,
    /// A required claim (`exp`, or a configured `iss`/`aud`) is absent.
    MissingClaim,
}

impl std::fmt::Display for InvalidReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidReason::Malformed => "malformed",
            InvalidReason::BadSignature => "bad signature",
            InvalidReason::WrongAlgorithm => "wrong algorithm",
            InvalidReason::WrongAudience => "wrong audience (aud)",
            InvalidReason::WrongIssuer => "wrong issuer (iss)",
            InvalidReason::NotYetValid => "not valid yet (nbf)",
            InvalidReason::MissingClaim => "a required claim is missing",
        })
    }
}

impl From<&ErrorKind> for AuthError {
    fn from(kind: &ErrorKind) -> AuthError {
        let reason = match kind {
            ErrorKind::ExpiredSignature => return AuthError::Expired,
            ErrorKind::InvalidSignature => InvalidReason::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                InvalidReason::WrongAlgorithm
            }
            ErrorKind::InvalidAudience => InvalidReason::WrongAudience,
            ErrorKind::InvalidIssuer => InvalidReason::WrongIssuer,
            ErrorKind::ImmatureSignature => InvalidReason::NotYetValid,
            ErrorKind::MissingRequiredClaim(_) => InvalidReason::MissingClaim,
            _ => InvalidReason::Malformed,
        };
        AuthError::Invalid(reason)
    }
}

/// Why a key could not be used, or a token not signed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("signing needs JWT_SECRET; with JWT_PUBLIC_KEY the host app signs tokens")]
    NoSigningKey,
}

/// The claims the gateway reads from a user's token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Organisations the user belongs to, for org broadcasts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// Issuer; checked by the verifier when `JWT_ISSUER` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience: a string or a list (RFC 7519); checked by the verifier when
    /// `JWT_AUDIENCE` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<serde_json::Value>,
}

/// Verifies user tokens and, with a shared secret, signs them.
#[derive(Clone)]
pub struct Auth {
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    validation: Validation,
    server_api_key: Option<Arc<str>>,
}

impl Auth {
    /// Builds the verifier from the configuration.
    pub fn new(config: &Config) -> Result<Auth, KeyError> {
        let (decoding, encoding, alg) = match &config.jwt_key {
            JwtKey::Secret { secret, .. } => (
                DecodingKey::from_secret(secret),
                Some(EncodingKey::from_secret(secret)),
                Algorithm::HS256,
            ),
            JwtKey::Public { pem } => {
                let (k, alg) = decoding_key_from_pem(pem)?;
                (k, None, alg)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = config.jwt_leeway_s;
        // A token not valid yet is refused (with the same leeway for clock skew).
        validation.validate_nbf = true;
        // A configured iss/aud must be present, not merely right when present.
        let mut required = vec!["exp"];
        match &config.jwt_audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &config.jwt_issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        Ok(Auth {
            decoding,
            encoding,
            validation,
            server_api_key: config.server_api_key.as_deref().map(Arc::from),
        })
    }

    /// Verifies a user token.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        if self.is_server_key(token) {
            return Err(AuthError::WrongKind);
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| AuthError::from(e.kind()))?;
        if !usable_sub(&data.claims.sub) {
            return Err(AuthError::BadSubject);
        }
        Ok(data.claims)
    }

    /// Signs a token for `sub` (only with a shared secret).
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::NoSigningKey)?;
        Ok(encode(&Header::new(Algorithm::HS256), claims, key)?)
    }

    /// Whether `token` is the server API key (compared in constant time).
    pub fn is_server_key(&self, token: &str) -> bool {
        match &self.server_api_key {
            Some(key) => constant_time_eq(key.as_bytes(), token.as_bytes()),
            None => false,
        }
    }

    /// Whether the server API is on (`SERVER_API_KEY` is set).
    pub fn server_api_on(&self) -> bool {
        self.server_api_key.is_some()
    }
}

/// Whether `sub` can name a user: 1 to 256 bytes, no control characters, not reserved.
pub fn usable_sub(sub: &str) -> bool {
    !sub.is_empty()
        && sub.len() <= MAX_SUB_BYTES
        && !sub.chars().any(char::is_control)
        && sub != RESERVED_SUB
}

/// Compares two secrets in time that depends on neither their contents nor the length of the
/// expected one: both are hashed first, so a mismatch in length leaks nothing either.
pub fn constant_time_eq(expected: &[u8], given: &[u8]) -> bool {
    let (a, b) = (digest(expected), digest(given));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

fn digest(data: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The bearer token of a request: `Authorization: Bearer …`, else (when `query_ok`) `?token=`.
pub fn bearer_token(req: &HttpRequest, query_ok: bool) -> Option<String> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|s| s.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_string());
    if header.is_some() {
        return header;
    }
    if query_ok {
        return url::form_urlencoded::parse(req.query_string().as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

/// Whether the request's `Origin` may open a socket or stream (`ALLOWED_ORIGINS`). Clients
/// that send no Origin (websocat, mobile apps, servers) are not browsers and are let through.
pub fn origin_allowed(req: &HttpRequest, allowed: Option<&[String]>) -> bool {
    let Some(allowed) = allowed else { return true };
    match req.headers().get(actix_web::http::header::ORIGIN) {
        None => true,
        Some(o) => o.to_str().is_ok_and(|o| {
            allowed
                .iter()
                .any(|a| a == "*" || a == o.trim_end_matches('/'))
        }),
    }
}

/// How long until a token's `exp`, plus the leeway the upgrade allowed (so a token accepted
/// late is not closed at once).
pub fn token_left(claims: &Claims, leeway_s: u64) -> Duration {
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let until = claims.exp.saturating_add(leeway_s);
    Duration::from_secs(until.saturating_sub(now))
}

/// An authenticated user on a REST route.
#[derive(Debug, Clone)]
pub struct AuthUser(pub Claims);

impl FromRequest for AuthUser {
    type Error = AuthError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(user_from_request(req, false).map(AuthUser))
    }
}

/// The host backend, authenticated by `SERVER_API_KEY`, on a server API route.
#[derive(Debug, Clone, Copy)]
pub struct ServerKey;

impl FromRequest for ServerKey {
    type Error = AuthError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let checked = req
            .app_data::<web::Data<Auth>>()
            .ok_or(AuthError::NotConfigured)
            .and_then(|auth| match bearer_token(req, false) {
                Some(t) if auth.is_server_key(&t) => Ok(ServerKey),
                _ => Err(AuthError::NotServerKey),
            });
        ready(checked)
    }
}

/// Verifies the user token of a request, from the header or (when `query_ok`) the query.
pub fn user_from_request(req: &HttpRequest, query_ok: bool) -> Result<Claims, AuthError> {
    let auth = req
        .app_data::<web::Data<Auth>>()
        .ok_or(AuthError::NotConfigured)?;
    let token = bearer_token(req, query_ok).ok_or(AuthError::Missing)?;
    // The reason, never the token: a refused connection is otherwise silent on the server.
    auth.verify(&token).inspect_err(|e| {
        log::debug!("token refused on {}: {e}", req.path());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: &str = "unit-test-secret-0123456789abcdef0123";
    const S2: &str = "another-secret-0123456789abcdef012345";

    fn auth(pairs: &[(&str, &str)]) -> Auth {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Auth::new(&Config::from_lookup(&move |k| map.get(k).cloned()).unwrap()).unwrap()
    }

    fn claims(sub: &str, exp_in: i64) -> Claims {
        Claims {
            sub: sub.into(),
            exp: (chrono::Utc::now().timestamp() + exp_in) as u64,
            name: None,
            orgs: vec![],
            iss: None,
            aud: None,
        }
    }

    #[test]
    fn signed_token_verifies() {
        let a = auth(&[("JWT_SECRET", S1)]);
        let t = a.sign(&claims("alice", 60)).unwrap();
        assert_eq!(a.verify(&t).unwrap().sub, "alice");
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let a = auth(&[("JWT_SECRET", S1), ("JWT_LEEWAY_S", "0")]);
        let old = a.sign(&claims("alice", -30)).unwrap();
        assert!(matches!(a.verify(&old), Err(AuthError::Expired)));
        let other = auth(&[("JWT_SECRET", S2)]);
        let t = other.sign(&claims("alice", 60)).unwrap();
        assert!(matches!(
            a.verify(&t),
            Err(AuthError::Invalid(InvalidReason::BadSignature))
        ));
        assert!(matches!(
            a.verify("garbage"),
            Err(AuthError::Invalid(InvalidReason::Malformed))
        ));
    }

    #[test]
    fn issuer_and_audience_are_checked_when_configured() {
        let a = auth(&[
            ("JWT_SECRET", S1),
            ("JWT_ISSUER", "host"),
            ("JWT_AUDIENCE", "sb"),
        ]);
        let mut c = claims("alice", 60);
        let reason = |c: &Claims| match a.verify(&a.sign(c).unwrap()) {
            Err(AuthError::Invalid(r)) => Some(r),
            _ => None,
        };
        assert_eq!(reason(&c), Some(InvalidReason::MissingClaim));
        c.iss = Some("other".into());
        c.aud = Some("sb".into());
        assert_eq!(reason(&c), Some(InvalidReason::WrongIssuer));
        c.iss = Some("host".into());
        c.aud = Some("sb".into());
        assert!(a.verify(&a.sign(&c).unwrap()).is_ok());
        // Identity providers often send a list.
        c.aud = Some(serde_json::json!(["other", "sb"]));
        assert!(a.verify(&a.sign(&c).unwrap()).is_ok());
        c.aud = Some(serde_json::json!(["other"]));
        assert_eq!(reason(&c), Some(InvalidReason::WrongAudience));
    }

    #[test]
    fn a_token_not_valid_yet_is_refused() {
        let a = auth(&[("JWT_SECRET", S1), ("JWT_LEEWAY_S", "5")]);
        let now = chrono::Utc::now().timestamp();
        let t = |nbf: i64| {
            encode(
                &Header::new(Algorithm::HS256),
                &serde_json::json!({"sub":"alice","exp": now + 600, "nbf": nbf}),
                &EncodingKey::from_secret(S1.as_bytes()),
            )
            .unwrap()
        };
        assert!(a.verify(&t(now + 60)).is_err(), "nbf a minute ahead");
        assert!(a.verify(&t(now + 2)).is_ok(), "within the leeway");
        assert!(a.verify(&t(now - 60)).is_ok());
    }

    #[test]
    fn sub_must_be_a_usable_user_id() {
        let a = auth(&[("JWT_SECRET", S1)]);
        for sub in ["", "system", "a\u{7}b"] {
            let mut c = claims("x", 60);
            c.sub = sub.to_string();
            assert!(
                matches!(a.verify(&a.sign(&c).unwrap()), Err(AuthError::BadSubject)),
                "{sub:?}"
            );
        }
        let mut long = claims("x", 60);
        long.sub = "x".repeat(257);
        assert!(a.verify(&a.sign(&long).unwrap()).is_err());
        long.sub = "x".repeat(256);
        assert!(a.verify(&a.sign(&long).unwrap()).is_ok());
    }

    #[test]
    fn server_key_is_not_a_user_token() {
        let a = auth(&[("JWT_SECRET", S1), ("SERVER_API_KEY", "k3y")]);
        assert!(a.is_server_key("k3y"));
        assert!(matches!(a.verify("k3y"), Err(AuthError::WrongKind)));
    }
}
