//! The demo page's one-click login: a token for any user id, offered only while the node
//! checks tokens against the public development secret (and so listens on loopback only).

use crate::auth::{Claims, usable_sub};
use crate::context::AppContext;
use crate::service::{ServiceError, bad};

/// How long a dev login token lasts.
const DEV_TOKEN_TTL_S: u64 = 12 * 3600;

/// Whether dev login is on: exactly when the development secret is in use.
pub fn login_enabled(app: &AppContext) -> bool {
    app.config().uses_dev_secret()
}

/// `not_found` while dev login is off: the route then looks like any unknown one.
pub fn ensure_enabled(app: &AppContext) -> Result<(), ServiceError> {
    if login_enabled(app) {
        Ok(())
    } else {
        Err(ServiceError::NotFound("no such route".into()))
    }
}

/// Signs a token for `user_id`, as `switchboard token` would.
pub fn login(
    app: &AppContext,
    user_id: &str,
    name: Option<String>,
) -> Result<String, ServiceError> {
    ensure_enabled(app)?;
    if !usable_sub(user_id) {
        return Err(bad(
            "user_id must be 1 to 256 bytes with no control characters, and not \"system\"",
        ));
    }
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0);
    let claims = Claims {
        sub: user_id.to_string(),
        exp: now + DEV_TOKEN_TTL_S,
        name,
        orgs: Vec::new(),
        iss: app.config().jwt_issuer.clone(),
        aud: app
            .config()
            .jwt_audience
            .clone()
            .map(serde_json::Value::String),
    };
    app.auth()
        .sign(&claims)
        .map_err(|e| ServiceError::Unavailable(format!("cannot sign: {e}")))
}
