//! How tokens are verified: `JWT_SECRET` (HS256) or `JWT_PUBLIC_KEY` (RS256 or EdDSA), and
//! the safe defaults around them (a minimum secret length, no development secret off loopback).

use std::net::SocketAddr;

use jsonwebtoken::{Algorithm, DecodingKey};

use super::ConfigError;
use super::env::{Env, get};

/// Shortest `JWT_SECRET` accepted (PROTOCOL.md): 256 bits for HS256.
pub const MIN_SECRET_BYTES: usize = 32;

/// The development secret used when neither `JWT_SECRET` nor `JWT_PUBLIC_KEY` is set.
pub const DEV_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";

/// How tokens are verified (and, for HS256, signed by `switchboard token`).
#[derive(Clone)]
pub enum JwtKey {
    /// HS256 with a shared secret.
    Secret { secret: Vec<u8>, is_dev: bool },
    /// RS256 or EdDSA with a public key in PEM.
    Public { pem: Vec<u8> },
}

impl std::fmt::Debug for JwtKey {
    // Never print key material, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Secret { is_dev, .. } => write!(f, "Secret {{ dev: {is_dev} }}"),
            JwtKey::Public { .. } => write!(f, "Public"),
        }
    }
}

/// `JWT_SECRET` or `JWT_PUBLIC_KEY`: the key tokens are verified with. The development
/// secret, set or by default, is refused off loopback.
pub(super) fn key(env: Env, bind_addr: SocketAddr) -> Result<JwtKey, ConfigError> {
    let key = match (get(env, "JWT_SECRET"), get(env, "JWT_PUBLIC_KEY")) {
        (Some(_), Some(_)) => {
            return Err(ConfigError {
                var: "JWT_SECRET",
                problem: "both JWT_SECRET and JWT_PUBLIC_KEY are set".into(),
                hint: "set only one: JWT_SECRET for HS256, JWT_PUBLIC_KEY for RS256/EdDSA",
            });
        }
        (Some(s), None) => {
            if s.len() < MIN_SECRET_BYTES {
                return Err(ConfigError {
                    var: "JWT_SECRET",
                    problem: format!("shorter than {MIN_SECRET_BYTES} bytes"),
                    hint: "put a random string of at least 32 bytes (e.g. openssl rand -hex 32)",
                });
            }
            JwtKey::Secret {
                // The built-in secret set by hand is as public as when it is the default.
                is_dev: s == DEV_SECRET,
                secret: s.into_bytes(),
            }
        }
        (None, Some(p)) => JwtKey::Public {
            pem: read_public_key(&p)?,
        },
        (None, None) => JwtKey::Secret {
            secret: DEV_SECRET.as_bytes().to_vec(),
            is_dev: true,
        },
    };
    // The development secret is public: anyone could mint tokens for a reachable node.
    if matches!(key, JwtKey::Secret { is_dev: true, .. }) && !bind_addr.ip().is_loopback() {
        return Err(ConfigError {
            var: "JWT_SECRET",
            problem: format!(
                "not set, and the built-in development secret is refused on {bind_addr} (not loopback)"
            ),
            hint: "put a random string of at least 32 bytes (or set JWT_PUBLIC_KEY)",
        });
    }
    Ok(key)
}

fn read_public_key(raw: &str) -> Result<Vec<u8>, ConfigError> {
    let hint = "put a PEM public key (RSA or Ed25519), inline or as a path to a readable file";
    let pem = if raw.starts_with("-----BEGIN") {
        raw.replace("\\n", "\n").into_bytes()
    } else {
        std::fs::read(raw).map_err(|e| ConfigError {
            var: "JWT_PUBLIC_KEY",
            problem: format!("cannot read {raw}: {e}"),
            hint,
        })?
    };
    decoding_key_from_pem(&pem).map_err(|e| ConfigError {
        var: "JWT_PUBLIC_KEY",
        problem: format!("not a usable public key ({e})"),
        hint,
    })?;
    Ok(pem)
}

/// Parses a PEM public key as RSA, then as Ed25519.
pub fn decoding_key_from_pem(
    pem: &[u8],
) -> Result<(DecodingKey, Algorithm), jsonwebtoken::errors::Error> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((k, Algorithm::RS256));
    }
    Ok((DecodingKey::from_ed_pem(pem)?, Algorithm::EdDSA))
}
