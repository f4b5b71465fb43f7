//! Tokens signed with real asymmetric keys (RS256, EdDSA) from PEM files made by openssl,
//! and the default clock-skew leeway.

use std::process::Command;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::harness::{Backend, Server, TempDir};

/// A key pair made by openssl: the private key's PEM, and the public key's file path.
fn keypair(dir: &TempDir, kind: &str) -> (Vec<u8>, String) {
    let private = dir.0.join(format!("{kind}.key"));
    let public = dir.0.join(format!("{kind}.pub.pem"));
    let mut keygen = Command::new("openssl");
    keygen.args(["genpkey", "-out"]).arg(&private);
    match kind {
        "rsa" => keygen.args(["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
        _ => keygen.args(["-algorithm", "ed25519"]),
    };
    let ok = keygen
        .output()
        .expect("openssl is required for the key tests");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (
        std::fs::read(&private).unwrap(),
        public.display().to_string(),
    )
}

fn sign(alg: Algorithm, key: &EncodingKey, user: &str) -> String {
    let claims = json!({"sub": user, "exp": chrono::Utc::now().timestamp() + 600});
    jsonwebtoken::encode(&Header::new(alg), &claims, key).unwrap()
}

async fn refused(s: &Server, token: &str) -> u16 {
    let r = reqwest::Client::new()
        .get(s.url("/api/v1/threads"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn rs256_and_eddsa_tokens_from_real_pem_keys_are_accepted_and_others_refused() {
    let dir = TempDir::new();
    for (kind, alg) in [("rsa", Algorithm::RS256), ("ed25519", Algorithm::EdDSA)] {
        let (private, public_path) = keypair(&dir, kind);
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&private).unwrap(),
            _ => EncodingKey::from_ed_pem(&private).unwrap(),
        };
        let s = Server::start_with(
            Backend::Sqlite,
            &[("JWT_SECRET", ""), ("JWT_PUBLIC_KEY", &public_path)],
        )
        .await;
        // Over the socket and over REST.
        let token = sign(alg, &key, "alice");
        let mut c = s.ws_raw(&token).await.expect("ws with a {kind} token");
        let hello = c.next().await;
        assert_eq!(
            (hello["type"].as_str(), hello["user_id"].as_str()),
            (Some("hello"), Some("alice")),
            "{kind}"
        );
        assert_eq!(refused(&s, &token).await, 200, "{kind}");
        // Signed by another key of the same kind: refused.
        let (other, _) = keypair(&TempDir::new(), kind);
        let other = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&other).unwrap(),
            _ => EncodingKey::from_ed_pem(&other).unwrap(),
        };
        assert_eq!(
            refused(&s, &sign(alg, &other, "alice")).await,
            401,
            "{kind}"
        );
        // HS256 with the public key as the secret (algorithm confusion): refused.
        let pem = std::fs::read(&public_path).unwrap();
        let confused = sign(Algorithm::HS256, &EncodingKey::from_secret(&pem), "alice");
        assert_eq!(refused(&s, &confused).await, 401, "{kind}");
    }
}

#[tokio::test]
async fn the_default_leeway_forgives_five_seconds_of_clock_skew() {
    // JWT_LEEWAY_S unset: the default, 5 s.
    let s = Server::start_with(Backend::Sqlite, &[("JWT_LEEWAY_S", "")]).await;
    let skewed = crate::harness::token_with("alice", -2, &[]);
    assert_eq!(
        refused(&s, &skewed).await,
        200,
        "expired 2 s ago: within the leeway"
    );
    let expired = crate::harness::token_with("alice", -30, &[]);
    assert_eq!(refused(&s, &expired).await, 401, "expired 30 s ago");
    let early = crate::harness::token_with(
        "alice",
        600,
        &[("nbf", json!(chrono::Utc::now().timestamp() + 3))],
    );
    assert_eq!(
        refused(&s, &early).await,
        200,
        "valid in 3 s: within the leeway"
    );
    let later = crate::harness::token_with(
        "alice",
        600,
        &[("nbf", json!(chrono::Utc::now().timestamp() + 60))],
    );
    assert_eq!(refused(&s, &later).await, 401, "valid in a minute");
}
