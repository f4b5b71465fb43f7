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

fn cutoff() -> chrono::NaiveDateTime {
    let now = naive(Ts::now());
    now - chrono::Duration::from_std(KEEP).unwrap_or(chrono::Duration::zero())
}

/// Claims `key` for a request identified by `fingerprint` (method, path and body).
pub async fn claim(
    app: &AppContext,
    key: &str,
    fingerprint: String,
) -> Result<Claim, ServiceError> {
    Ok(app
        .store()
        .claim_key(key.to_string(), fingerprint, naive(Ts::now()), cutoff())
        .await?)
}

/// Keeps the first request's answer; an answer not worth keeping (the server failed) gives
/// the key up instead, so a retry does the work.
pub async fn record(app: &AppContext, key: &str, status: u16, body: String) {
    let r = if status >= 500 {
        app.store().release_key(key.to_string()).await
    } else {
        app.store().answer_key(key.to_string(), status, body).await
    };
    if let Err(e) = r {
        log::warn!("Idempotency-Key: answer not kept: {e}");
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
