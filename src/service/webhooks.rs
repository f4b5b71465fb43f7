//! Webhooks to the host backend. The events are written to the outbox by the store, in the
//! transaction of what caused them (the services only say whether a type is wanted); this
//! module's sender takes due deliveries, signs and POSTs them, and retries with backoff until
//! `WEBHOOK_MAX_AGE_S`. Every node runs a sender; a lease makes each delivery one node's.

use std::time::Duration;

use aws_lc_rs::hmac;

use crate::config::WebhookConfig;
use crate::context::AppContext;
use crate::metrics;
use crate::protocol::Ts;
use crate::store::models::{OutboxRow, naive};

/// Deliveries taken per round.
const BATCH: i64 = 64;
/// How long a node holds a delivery it took: past the POST timeout, so only a node that died
/// mid-send lets another take it over.
const LEASE: Duration = Duration::from_secs(30);
/// The receiver's time to answer.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the sender sleeps when nothing is due.
const IDLE: Duration = Duration::from_millis(250);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Whether events of `kind` go to the host (`WEBHOOK_URL` set and `WEBHOOK_EVENTS` naming it).
pub fn wants(app: &AppContext, kind: &str) -> bool {
    app.config()
        .webhooks
        .as_ref()
        .is_some_and(|w| w.wants(kind))
}

/// `Switchboard-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The wait before try number `attempt + 1`: 1 s, 2 s, 4 s, … at most 10 min.
fn backoff(attempt: i32) -> Duration {
    let exp = u32::try_from(attempt.clamp(0, 20)).unwrap_or(0);
    Duration::from_secs(1u64 << exp).min(MAX_BACKOFF)
}

/// Sends due deliveries for the life of the node (only with `WEBHOOK_URL`).
pub async fn send_forever(app: AppContext) {
    let Some(cfg) = app.config().webhooks.clone() else {
        return;
    };
    let client = match reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .pool_max_idle_per_host(16)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("webhooks: cannot build the HTTP client ({e}); none will be sent");
            return;
        }
    };
    log::info!("webhooks: sending {} to {}", cfg.events.join(","), cfg.url);
    let mut failing = false;
    loop {
        let now = Ts::now();
        let until = naive(now) + chrono::Duration::from_std(LEASE).unwrap_or_default();
        let token = uuid::Uuid::now_v7().to_string();
        let due = match app
            .store()
            .lease_webhooks(token, naive(now), until, BATCH)
            .await
        {
            Ok(d) => d,
            Err(e) => {
                log::warn!("webhooks: cannot read the outbox: {e}");
                tokio::time::sleep(IDLE * 4).await;
                continue;
            }
        };
        if due.is_empty() {
            tokio::time::sleep(IDLE).await;
            continue;
        }
        // One round's deliveries concurrently: they are of different threads (the lease
        // gives one message per thread at a time), so no order is lost.
        let results =
            futures_util::future::join_all(due.iter().map(|d| deliver(&client, &cfg, d))).await;
        let mut all_ok = true;
        for (d, ok) in due.into_iter().zip(results) {
            all_ok &= ok;
            settle(&app, &cfg, d, ok).await;
        }
        // One line per outage of the receiver, not one per failed delivery.
        if !all_ok && !failing {
            log::warn!("webhooks: {} is failing; retrying with backoff", cfg.url);
        } else if all_ok && failing {
            log::info!("webhooks: {} answers again", cfg.url);
        }
        failing = !all_ok;
    }
}

/// POSTs one delivery; whether the receiver answered 2xx in time.
async fn deliver(client: &reqwest::Client, cfg: &WebhookConfig, d: &OutboxRow) -> bool {
    let t = chrono::Utc::now().timestamp();
    let r = client
        .post(&cfg.url)
        .header("Content-Type", "application/json")
        .header("Switchboard-Delivery", &d.id)
        .header("Switchboard-Signature", signature(&cfg.secret, t, &d.body))
        .body(d.body.clone())
        .send()
        .await;
    matches!(r, Ok(resp) if resp.status().is_success())
}

/// Deletes a delivered row; reschedules a failed one, or drops it past `WEBHOOK_MAX_AGE_S`.
async fn settle(app: &AppContext, cfg: &WebhookConfig, d: OutboxRow, ok: bool) {
    let store = app.store();
    let r = if ok {
        metrics::webhook("sent");
        store.webhook_delivered(d.id.clone()).await
    } else {
        let now = naive(Ts::now());
        let age = (now - d.created_at).to_std().unwrap_or_default();
        if age >= cfg.max_age {
            metrics::webhook("dropped");
            log::warn!(
                "webhooks: {} delivery {} dropped after {} tries over {}s",
                d.kind,
                d.id,
                d.attempts + 1,
                age.as_secs()
            );
            store.webhook_delivered(d.id.clone()).await
        } else {
            metrics::webhook("retried");
            let next = now + chrono::Duration::from_std(backoff(d.attempts)).unwrap_or_default();
            store.webhook_retry_at(d.id.clone(), next).await
        }
    };
    // The lease runs out by itself, and the delivery is tried again then (at least once).
    if let Err(e) = r {
        log::warn!("webhooks: delivery {} not settled: {e}", d.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_ten_minutes() {
        let secs: Vec<u64> = (0..12).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
    }

    #[test]
    fn signature_is_hmac_sha256_of_t_dot_body() {
        // RFC 4231 test case 2 shape: key "Jefe", message "what do ya want for nothing?".
        let s = signature(b"Jefe", 0, "what do ya want for nothing?");
        assert!(s.starts_with("t=0,v1="));
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert!(
            hmac::verify(
                &key,
                b"0.what do ya want for nothing?",
                &hex_decode(s.trim_start_matches("t=0,v1="))
            )
            .is_ok()
        );
    }

    fn hex_decode(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }
}
