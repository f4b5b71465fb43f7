//! Who watches whose presence on this node, and who is online here.

use foldhash::HashSet;

use actix::prelude::*;

use super::SessionRegistry;

/// Most users one session may watch at once.
pub const MAX_WATCHES: usize = 1000;

/// Why a watch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("a session may watch at most {max} users")]
    TooMany { max: usize },
}

/// Starts or stops a session watching users' presence. Replies with the users whose first
/// watcher on this node just arrived (or last one just left), for the relay to subscribe, or
/// with an error when the session would watch more than `MAX_WATCHES` users.
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, WatchError>")]
pub struct Watch {
    pub session_id: String,
    pub user_ids: Vec<String>,
    pub watch: bool,
}

impl Handler<Watch> for SessionRegistry {
    type Result = Result<Vec<String>, WatchError>;

    fn handle(&mut self, msg: Watch, _: &mut Self::Context) -> Result<Vec<String>, WatchError> {
        let Some(entry) = self.sessions.get_mut(&msg.session_id) else {
            return Ok(Vec::new());
        };
        if msg.watch {
            let new = msg
                .user_ids
                .iter()
                .filter(|u| !entry.watching.contains(*u))
                .collect::<HashSet<_>>()
                .len();
            if entry.watching.len() + new > MAX_WATCHES {
                return Err(WatchError::TooMany { max: MAX_WATCHES });
            }
        }
        let mut changed = Vec::new();
        for u in msg.user_ids {
            if msg.watch {
                if entry.watching.insert(u.clone()) {
                    changed.push(u);
                }
            } else if entry.watching.remove(&u) {
                changed.push(u);
            }
        }
        let mut edges = Vec::new();
        for u in changed {
            if msg.watch {
                let set = self.watchers.entry(u.clone()).or_default();
                set.insert(msg.session_id.clone());
                if set.len() == 1 {
                    edges.push(u);
                }
            } else if self.unwatch(&u, &msg.session_id) {
                edges.push(u);
            }
        }
        Ok(edges)
    }
}

/// Which of these users have a session on this node.
#[derive(Message)]
#[rtype(result = "Vec<bool>")]
pub struct Online {
    pub user_ids: Vec<String>,
}

impl Handler<Online> for SessionRegistry {
    type Result = Vec<bool>;

    fn handle(&mut self, msg: Online, _: &mut Self::Context) -> Vec<bool> {
        msg.user_ids
            .iter()
            .map(|u| self.by_user.contains_key(u))
            .collect()
    }
}

/// Which of `users` have a session on this node (all false if the registry is gone).
pub async fn online_here(registry: &Addr<SessionRegistry>, users: &[String]) -> Vec<bool> {
    registry
        .send(Online {
            user_ids: users.to_vec(),
        })
        .await
        .unwrap_or_else(|_| vec![false; users.len()])
}
