//! Why the database cannot be reached, for the start-up error line and `switchboard check`.

use std::time::Duration;

use crate::config::DatabaseUrl;

/// Why a database cannot be reached, cause and all, for a start-up error line: the
/// pool's error says only "error connecting to server". `None` when a connection works
/// now (or for SQLite, whose errors already name the cause).
pub async fn explain_unreachable(url: &DatabaseUrl, timeout: Duration) -> Option<String> {
    let DatabaseUrl::Postgres(u) = url else {
        return None;
    };
    match tokio::time::timeout(timeout, tokio_postgres::connect(u, tokio_postgres::NoTls)).await {
        Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
        Ok(Ok(_)) => None,
        Ok(Err(e)) => {
            let mut chain = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                chain.push_str(": ");
                chain.push_str(&s.to_string());
                source = s.source();
            }
            Some(chain)
        }
    }
}
