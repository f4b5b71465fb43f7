//! Control over a user's sessions from the host backend: revoking access closes every socket
//! and SSE stream of the user, on every node, with 4003.

use super::{ServiceError, check_user_id};
use crate::context::AppContext;
use crate::envelope::{Audience, Envelope};
use crate::protocol::close;

/// Closes all of `user_id`'s sessions, wherever they are, with 4003. A user with no open
/// session is not an error: the host may revoke before or after the user connects.
pub async fn disconnect(app: &AppContext, user_id: &str) -> Result<(), ServiceError> {
    check_user_id(user_id)?;
    log::info!("server API: disconnecting {user_id} (4003)");
    let env = Envelope::close(
        &app.config().node_id,
        Audience::users(vec![user_id.to_string()]),
        close::REVOKED,
        "access revoked",
    );
    // A revocation that may not reach every node is not done: say so (503), so the host
    // retries, rather than answer 204 for sessions left open elsewhere.
    if app.relay().health().await.is_err() {
        return Err(ServiceError::Unavailable(
            "the relay to other nodes is down; retry".into(),
        ));
    }
    app.relay().publish(env).await.map_err(|e| {
        log::warn!(
            "relay {}: disconnect of {user_id} not published: {e}",
            app.relay().name()
        );
        ServiceError::Unavailable("the disconnect could not be sent; retry".into())
    })?;
    Ok(())
}
