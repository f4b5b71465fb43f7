//! Webhooks to the host backend. The events are written to the outbox by the store, in the
//! transaction of what caused them (the services only say whether a type is wanted); this
//! module's sender takes due deliveries, signs and POSTs them, and retries with backoff until
//! `WEBHOOK_MAX_AGE_S`. Every node runs a sender; a lease makes each delivery one node's.

use std::time::Duration;

use aws_lc_rs::hmac;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::config::WebhookConfig;
use crate::context::AppContext;
use crate::metrics;
use crate::protocol::Ts;
use crate::store::models::{OutboxRow, naive};

/// Deliveries in flight at once on one node.
const IN_FLIGHT: usize = 64;
/// How long a node holds a delivery it took: well past the POST timeout, so only a node that
/// died mid-send (or settles very late) lets another take it over.
const LEASE: Duration = Duration::from_secs(30);
/// The receiver's time to answer.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the sender looks for newly due deliveries while some are in flight, or sleeps
/// when none are.
const POLL: Duration = Duration::from_millis(250);
/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How often deliveries past `WEBHOOK_MAX_AGE_S` are deleted.
const EXPIRE_EVERY: Duration = Duration::from_secs(10);
/// `WEBHOOK_MAX_AGE_S`'s default, for expiring rows a node without `WEBHOOK_URL` finds.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

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

fn ago(d: Duration) -> chrono::NaiveDateTime {
    naive(Ts::now()) - chrono::Duration::from_std(d).unwrap_or_default()
}

/// Deletes deliveries older than `WEBHOOK_MAX_AGE_S`, tried or not, counting them as
/// dropped: the outbox holds at most that much, whatever the receiver does (and on a node
/// whose `WEBHOOK_URL` was removed, nothing waits forever).
pub async fn expire_forever(app: AppContext) {
    let max_age = app
        .config()
        .webhooks
        .as_ref()
        .map_or(DEFAULT_MAX_AGE, |w| w.max_age);
    loop {
        tokio::time::sleep(EXPIRE_EVERY).await;
        match app.store().expire_webhooks(ago(max_age)).await {
            Ok(0) => {}
            Ok(n) => {
                metrics::webhooks_dropped(n as u64);
                log::warn!(
                    "webhooks: {n} delivery(ies) dropped: older than {}s",
                    max_age.as_secs()
                );
            }
            Err(e) => log::warn!("webhooks: cannot expire old deliveries: {e}"),
        }
    }
}

/// Sends due deliveries for the life of the node (only with `WEBHOOK_URL`): up to
/// `IN_FLIGHT` at once, each settled as soon as it is answered, so a slow receiver on one
/// delivery never holds up the others.
pub async fn send_forever(app: AppContext) {
    let Some(cfg) = app.config().webhooks.clone() else {
        return;
    };
    // A redirect is not a delivery: followed, a POST becomes a GET without its body.
    let client = match reqwest::Client::builder()
        .timeout(POST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(IN_FLIGHT)
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            log::error!("webhooks: cannot build the HTTP client ({e}); none will be sent");
            return;
        }
    };
    log::info!("webhooks: sending {} to {}", cfg.events.join(","), cfg.url);
    let mut in_flight = FuturesUnordered::new();
    let mut failing = false;
    loop {
        let room = IN_FLIGHT - in_flight.len();
        let mut took = 0;
        // Lease in batches (a lease is a write): when a quarter of the slots are free, or
        // nothing is in flight.
        if room >= IN_FLIGHT / 4 || in_flight.is_empty() {
            let now = Ts::now();
            let until = naive(now) + chrono::Duration::from_std(LEASE).unwrap_or_default();
            let token = uuid::Uuid::now_v7().to_string();
            let limit = i64::try_from(room).unwrap_or(1);
            match app
                .store()
                .lease_webhooks(token, naive(now), until, ago(cfg.max_age), limit)
                .await
            {
                Ok(due) => {
                    took = due.len();
                    for d in due {
                        let (client, cfg) = (client.clone(), cfg.clone());
                        in_flight.push(async move {
                            let ok = deliver(&client, &cfg, &d).await;
                            (d, ok)
                        });
                    }
                }
                Err(e) => log::warn!("webhooks: cannot read the outbox: {e}"),
            }
        }
        if in_flight.is_empty() {
            tokio::time::sleep(POLL).await;
            continue;
        }
        // Settle what finishes; look for more after a poll interval, or at once when the
        // last lease filled every slot's worth of room.
        let done = if (took > 0 && took == room) || room < IN_FLIGHT / 4 {
            in_flight.next().await
        } else {
            tokio::select! {
                d = in_flight.next() => d,
                () = tokio::time::sleep(POLL) => None,
            }
        };
        if let Some((d, ok)) = done {
            // One line per outage of the receiver, not one per failed delivery.
            if !ok && !failing {
                log::warn!("webhooks: {} is failing; retrying with backoff", cfg.url);
            } else if ok && failing {
                log::info!("webhooks: {} answers again", cfg.url);
            }
            failing = !ok;
            settle(&app, &cfg, d, ok).await;
        }
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
    match r {
        Ok(resp) if resp.status().is_success() => true,
        Ok(resp) if resp.status().is_redirection() => {
            log::warn!(
                "webhooks: {} answered a redirect ({}); point WEBHOOK_URL at the final URL",
                cfg.url,
                resp.status()
            );
            false
        }
        _ => false,
    }
}

/// Deletes a delivered row; reschedules a failed one, or drops it past `WEBHOOK_MAX_AGE_S`.
async fn settle(app: &AppContext, cfg: &WebhookConfig, d: OutboxRow, ok: bool) {
    let store = app.store();
    let token = d.leased_by.clone().unwrap_or_default();
    let r = if ok {
        metrics::webhook("sent");
        store.webhook_delivered(d.id.clone(), token).await
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
            store.webhook_delivered(d.id.clone(), token).await
        } else {
            metrics::webhook("retried");
            let next = now + chrono::Duration::from_std(backoff(d.attempts)).unwrap_or_default();
            store.webhook_retry_at(d.id.clone(), token, next).await
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
