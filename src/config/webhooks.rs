//! Webhook settings: `WEBHOOK_URL`, `WEBHOOK_SECRET`, `WEBHOOK_EVENTS`, `WEBHOOK_MAX_AGE_S`.

use std::time::Duration;

use super::{ConfigError, Env, get, positive};

/// The event types a webhook can carry (PROTOCOL.md, "Webhooks").
pub const WEBHOOK_TYPES: &[&str] = &[
    "message.created",
    "notification.created",
    "presence.changed",
    "thread.created",
    "thread.member_added",
    "thread.member_removed",
];

/// Webhooks to the host backend.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `WEBHOOK_URL`: an `http://` URL.
    pub url: String,
    /// `WEBHOOK_SECRET`: the HMAC key of the signature.
    pub secret: Vec<u8>,
    /// `WEBHOOK_EVENTS`: the types sent.
    pub events: Vec<String>,
    /// `WEBHOOK_MAX_AGE_S`: how long a delivery is retried before it is dropped.
    pub max_age: Duration,
}

impl WebhookConfig {
    /// Whether events of `kind` are sent.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == kind)
    }
}

impl std::fmt::Debug for WebhookConfig {
    // Never print the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

/// Reads `WEBHOOK_URL` and the rest; `None` when webhooks are off.
pub(super) fn from_env(env: Env) -> Result<Option<WebhookConfig>, ConfigError> {
    let Some(url) = get(env, "WEBHOOK_URL") else {
        if get(env, "WEBHOOK_SECRET").is_some() {
            return Err(ConfigError {
                var: "WEBHOOK_URL",
                problem: "WEBHOOK_SECRET is set without it".into(),
                hint: "put the host's receiver URL, e.g. http://app.internal:8000/hooks/switchboard",
            });
        }
        return Ok(None);
    };
    let hint = "put an http:// URL, e.g. http://app.internal:8000/hooks/switchboard";
    match url::Url::parse(&url) {
        Ok(u) if u.scheme() == "http" && u.host_str().is_some() => {}
        Ok(u) if u.scheme() == "https" => {
            return Err(ConfigError {
                var: "WEBHOOK_URL",
                problem: "https is not supported by this build".into(),
                hint: "put an http:// URL on a private network (or a TLS-terminating proxy)",
            });
        }
        _ => {
            return Err(ConfigError {
                var: "WEBHOOK_URL",
                problem: format!("{url:?} is not an http URL"),
                hint,
            });
        }
    }
    let secret = get(env, "WEBHOOK_SECRET").ok_or(ConfigError {
        var: "WEBHOOK_SECRET",
        problem: "required with WEBHOOK_URL".into(),
        hint: "put a random string of at least 32 bytes, shared with the receiver",
    })?;
    if secret.len() < 32 {
        return Err(ConfigError {
            var: "WEBHOOK_SECRET",
            problem: "shorter than 32 bytes".into(),
            hint: "put a random string of at least 32 bytes, shared with the receiver",
        });
    }
    let events = match get(env, "WEBHOOK_EVENTS") {
        None => WEBHOOK_TYPES.iter().map(|t| t.to_string()).collect(),
        Some(list) => {
            let mut events = Vec::new();
            for e in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                if !WEBHOOK_TYPES.contains(&e) {
                    return Err(ConfigError {
                        var: "WEBHOOK_EVENTS",
                        problem: format!("unknown event type {e:?}"),
                        hint: "put a comma list of message.created, notification.created, presence.changed, thread.created, thread.member_added, thread.member_removed",
                    });
                }
                events.push(e.to_string());
            }
            events
        }
    };
    let max_age_s: u64 = positive(
        env,
        "WEBHOOK_MAX_AGE_S",
        86_400,
        "put a number of seconds, e.g. 86400",
    )?;
    Ok(Some(WebhookConfig {
        url,
        secret: secret.into_bytes(),
        events,
        max_age: Duration::from_secs(max_age_s),
    }))
}
