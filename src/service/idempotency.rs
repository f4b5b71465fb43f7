//! `Idempotency-Key` for the server API: the first request with a key does the work and its
//! answer is kept for 24 hours; a later request with the same key gets that answer and does
//! nothing. A host retrying after a timeout never posts a payment message twice.

use std::time::Duration;

use super::ServiceError;
use crate::context::AppContext;
use crate::protocol::Ts;
use crate::store::Claim;
use crate::store::models::naive;

/// How long an answer is kept.
pub const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long a claim may stay unanswered before another request takes it over: longer than
/// any request runs (every database call is bounded), so only a node that died mid-request
/// leaves one this old.
const STALE_CLAIM: Duration = Duration::from_secs(60);
/// How often expired answers are deleted.
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// Longest key, in bytes.
const MAX_KEY_BYTES: usize = 255;

/// A key from a request header, checked: 1 to 255 visible ASCII characters.
pub fn check_key(key: &str) -> Result<(), ServiceError> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(super::bad(format!(
            "Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters"
        )));
    }
    Ok(())
}

fn ago(d: Duration) -> chrono::NaiveDateTime {
    let now = naive(Ts::now());
    now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero())
}

fn cutoff() -> chrono::NaiveDateTime {
    ago(KEEP)
}

/// Claims `key` for a request identified by `fingerprint` (method, path and body).
pub async fn claim(
    app: &AppContext,
    key: &str,
    fingerprint: String,
) -> Result<Claim, ServiceError> {
    Ok(app
        .store()
        .claim_key(
            key.to_string(),
            fingerprint,
            naive(Ts::now()),
            cutoff(),
            ago(STALE_CLAIM),
        )
        .await?)
}

/// Keeps the first request's answer when it succeeded. An error gives the key up instead, so
/// the corrected or retried request does the work: no error is raised after a write has
/// committed, so an error means nothing was done.
pub async fn record(app: &AppContext, key: &str, status: u16, body: String) {
    for attempt in 0..3 {
        let r = if (200..300).contains(&status) {
            app.store()
                .answer_key(key.to_string(), status, body.clone())
                .await
        } else {
            app.store().release_key(key.to_string()).await
        };
        match r {
            Ok(()) => return,
            // Left unanswered, the claim is taken over after STALE_CLAIM anyway.
            Err(e) if attempt == 2 => log::warn!("Idempotency-Key: answer not kept: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Deletes expired answers every hour, for the life of the node.
pub async fn sweep_forever(app: AppContext) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        match app.store().sweep_keys(cutoff()).await {
            Ok(0) => {}
            Ok(n) => log::info!("Idempotency-Key: {n} expired answer(s) deleted"),
            Err(e) => log::warn!("Idempotency-Key: sweep failed: {e}"),
        }
    }
}
