//! `/api/v1/server`: the host backend's API, authenticated by `SERVER_API_KEY` (a user token
//! is refused here, as the key is on user routes).

use actix_web::{HttpResponse, web};

use super::no_content;
use crate::auth::ServerKey;
use crate::context::AppContext;
use crate::error::ApiError;
use crate::protocol::rest::Disconnect;
use crate::service::sessions;

/// `POST /server/disconnect`: closes the user's sockets and streams with 4003, on every node.
pub async fn disconnect(
    app: web::Data<AppContext>,
    _key: ServerKey,
    body: web::Json<Disconnect>,
) -> Result<HttpResponse, ApiError> {
    sessions::disconnect(&app, &body.user_id).await?;
    Ok(no_content())
}
