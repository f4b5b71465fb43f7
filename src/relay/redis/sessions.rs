//! Sessions opening and closing on this node: the user's channel subscription, the
//! cluster-wide online set and session cap, and the presence transitions they decide, one
//! user at a time.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::RedisRelay;
use super::scripts::user_channel;
use crate::envelope::{Audience, Envelope};
use crate::protocol::{Ts, close};
use crate::registry::Deliver;
use crate::relay::Transition;

impl RedisRelay {
    /// See `Relay::session_opened`.
    pub(super) async fn open_session(&self, user: &str, session: &str, name: Option<String>) {
        {
            // One user's opens and closes, one at a time: the local count, the Redis sets and
            // the transitions then agree on the order.
            let _turn = self.turns.lock(user).await;
            let first_here = {
                let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                let set = local.sessions.entry(user.to_string()).or_default();
                set.insert(session.to_string());
                set.len() == 1
            };
            if first_here {
                self.subscribe(user_channel(user), true).await;
            }
            if !self.broadcast_on.load(Ordering::SeqCst) {
                self.subscribe_broadcast().await;
            }
            // After `leave`, Redis is not touched: nothing may re-add a node that left.
            let conn = match self.left.load(Ordering::SeqCst) {
                true => None,
                false => self.up_conn().await,
            };
            let first_anywhere = match conn {
                // Without Redis this node can only speak for itself.
                None => first_here,
                Some(mut conn) => {
                    let first = first_here
                        && self
                            .presence_edge(&self.scripts.arrive, user, &mut conn)
                            .await
                            .unwrap_or(true);
                    let excess: Result<Vec<String>, _> = self
                        .timed(
                            self.scripts
                                .open
                                .key(format!("sb:sess:{user}"))
                                .arg(format!("{}|{session}", self.node_id))
                                .arg(chrono::Utc::now().timestamp_millis())
                                .arg(self.max_sessions)
                                .invoke_async(&mut conn),
                        )
                        .await;
                    if let Ok(excess) = excess {
                        self.close_sessions(user, excess, &mut conn).await;
                    }
                    first
                }
            };
            if first_anywhere {
                self.tell(Transition::Online {
                    user_id: user.to_string(),
                    name,
                })
                .await;
            }
        }
    }

    /// See `Relay::session_closed`.
    pub(super) async fn close_session(&self, user: &str, session: &str) {
        {
            let _turn = self.turns.lock(user).await;
            let last_here = {
                let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                local
                    .sessions
                    .get(user)
                    .is_some_and(|set| set.len() == 1 && set.contains(session))
            };
            if last_here {
                self.subscribe(user_channel(user), false).await;
            }
            let conn = match self.left.load(Ordering::SeqCst) {
                true => None,
                false => self.up_conn().await,
            };
            // `None`: decided from this node's view alone, to be checked again on recovery.
            let decided = match conn {
                None => None,
                Some(mut conn) => {
                    let removed = self
                        .timed(
                            redis::cmd("ZREM")
                                .arg(format!("sb:sess:{user}"))
                                .arg(format!("{}|{session}", self.node_id))
                                .query_async::<i64>(&mut conn),
                        )
                        .await;
                    match (removed, last_here) {
                        (Err(_), _) => None,
                        (Ok(_), false) => Some(false),
                        (Ok(_), true) => {
                            self.presence_edge(&self.scripts.leave, user, &mut conn)
                                .await
                        }
                    }
                }
            };
            let last_anywhere = match decided {
                Some(last) => last,
                None => {
                    if last_here {
                        self.offline_while_down
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(user.to_string());
                    }
                    last_here
                }
            };
            if last_anywhere {
                self.tell(Transition::Offline {
                    user_id: user.to_string(),
                    at: Ts::now(),
                })
                .await;
            }
            // Counted as local until here, so a drain waits for this close to be told.
            let mut local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(set) = local.sessions.get_mut(user) {
                set.remove(session);
                if set.is_empty() {
                    local.sessions.remove(user);
                }
            }
        }
    }

    /// Closes sessions evicted by the cap: locally, or through the owning node's channel.
    /// Uses the caller's connection (taking a second one could starve the pool).
    async fn close_sessions(
        &self,
        user: &str,
        members: Vec<String>,
        conn: &mut deadpool_redis::Connection,
    ) {
        for m in members {
            let Some((node, sid)) = m.split_once('|') else {
                continue;
            };
            let env = Envelope::close(
                &self.node_id,
                Audience {
                    sessions: vec![sid.to_string()],
                    ..Audience::default()
                },
                close::REPLACED,
                "too many sessions",
            );
            if node == self.node_id {
                let _ = self
                    .registry
                    .send(Deliver {
                        envelope: Arc::new(env),
                    })
                    .await;
            } else {
                crate::metrics::relay_published();
                let json = super::routing::whole(&env);
                let _ = self
                    .timed(
                        redis::cmd("PUBLISH")
                            .arg(user_channel(user))
                            .arg(json)
                            .query_async::<i64>(conn),
                    )
                    .await;
            }
        }
    }
}
