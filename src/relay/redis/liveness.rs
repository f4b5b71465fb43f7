//! Node liveness and recovery: the once-a-second tick that refreshes this node's key, makes
//! Redis agree with the node again after an outage (or a lost keyspace, or a restart under
//! the same name), and reaps nodes whose key expired.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::scripts::{user_channel, watch_channel};
use super::{NODE_TTL_MS, REAP_LOCK_MS, RedisRelay};
use crate::protocol::Ts;
use crate::relay::RelayError;
use crate::relay::Transition;
use crate::relay::subscriber::Ping;

impl RedisRelay {
    /// Refreshes this node's liveness key; runs in its own loop so that long recovery or
    /// reaping work can never let the key expire. Remembers when the key had been lost.
    pub(super) async fn refresh_liveness(&self) {
        if self.left.load(Ordering::SeqCst) {
            return;
        }
        let mut conn = match self.conn().await {
            Ok(c) => c,
            Err(e) => return self.down(&e),
        };
        let previous: Result<Option<String>, RelayError> = self
            .timed(
                redis::cmd("SET")
                    .arg(format!("sb:node:{}", self.node_id))
                    .arg("1")
                    .arg("PX")
                    .arg(NODE_TTL_MS)
                    .arg("GET")
                    .query_async(&mut conn),
            )
            .await;
        if matches!(previous, Ok(None)) {
            self.key_lost.store(true, Ordering::SeqCst);
        }
    }

    /// Recovery after an outage or a lost keyspace, and reaping dead nodes.
    pub(super) async fn tick(&self, first: bool) {
        if self.left.load(Ordering::SeqCst) {
            return;
        }
        let mut conn = match self.conn().await {
            Ok(c) => c,
            Err(e) => return self.down(&e),
        };
        if let Err(e) = self.ask_subscriber(Ping).await {
            return self.down(&e);
        }
        // Before this node counts as up again (and `/readyz` says so), the other nodes hear of
        // the membership changes it made while it could not reach them.
        if !self.pay_forgets(&mut conn).await {
            return;
        }
        let was_down = !self.up.swap(true, Ordering::SeqCst);
        if was_down {
            log::info!("redis is back: re-registering this node's users and sessions");
            crate::metrics::redis_reconnected();
            *self.recovered_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        }
        if self.left.load(Ordering::SeqCst) {
            return;
        }
        let Ok(added) = self
            .timed(
                redis::cmd("SADD")
                    .arg("sb:nodes")
                    .arg(&self.node_id)
                    .query_async::<i64>(&mut conn),
            )
            .await
        else {
            return;
        };
        // First tick: a predecessor with this NODE_ID may have left users behind. Otherwise:
        // an outage, a lost keyspace (our key was gone), or a peer reaped us (we were not in
        // sb:nodes any more).
        let key_lost = self.key_lost.swap(false, Ordering::SeqCst);
        if first || was_down || key_lost || added == 1 {
            self.reassert(&mut conn).await;
        }
        let settling = self
            .recovered_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|t| t.elapsed() < Duration::from_millis(NODE_TTL_MS));
        self.trust_roster().await;
        if !settling {
            self.reap_dead(&mut conn).await;
        }
    }

    /// Makes Redis agree with this node again after an outage, a restart that lost the
    /// keyspace, or a silence long enough to have been reaped: users who left meanwhile are
    /// withdrawn (offline if it was their last node), users here are re-added (online if
    /// another node had declared them gone), and each user's sessions are listed afresh.
    async fn reassert(&self, conn: &mut deadpool_redis::Connection) {
        let sessions: HashMap<String, Vec<String>> = {
            let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local
                .sessions
                .iter()
                .map(|(u, s)| (u.clone(), s.iter().cloned().collect()))
                .collect()
        };
        let listed: Vec<String> = self
            .timed(
                redis::cmd("SMEMBERS")
                    .arg(format!("sb:nu:{}", self.node_id))
                    .query_async(conn),
            )
            .await
            .unwrap_or_default();
        let now = Ts::now();
        // Every user's work is done in that user's turn, re-reading what is here: sessions
        // keep opening and closing meanwhile, and their own steps must not interleave.
        let mut users: Vec<&String> = listed.iter().chain(sessions.keys()).collect();
        users.sort_unstable();
        users.dedup();
        for user in users {
            let _turn = self.turns.lock(user).await;
            let here: Vec<String> = {
                let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
                local
                    .sessions
                    .get(user.as_str())
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default()
            };
            if here.is_empty() {
                if self.withdraw(conn, user).await {
                    self.tell(Transition::Offline {
                        user_id: user.clone(),
                        at: now,
                    })
                    .await;
                }
                continue;
            }
            // Re-add what is really here, in one atomic step with dropping stale entries.
            let first: Result<i64, _> = self
                .timed(
                    self.scripts
                        .resync
                        .key(format!("sb:on:{user}"))
                        .key(format!("sb:sess:{user}"))
                        .key(format!("sb:nu:{}", self.node_id))
                        .arg(&self.node_id)
                        .arg(user.as_str())
                        .invoke_async(conn),
                )
                .await;
            // No node had them: peers may have announced them offline; say they are here.
            if matches!(first, Ok(1)) {
                self.tell(Transition::Online {
                    user_id: user.clone(),
                    name: None,
                })
                .await;
            }
            let mut pipe = redis::pipe();
            for sid in &here {
                pipe.cmd("ZADD")
                    .arg(format!("sb:sess:{user}"))
                    .arg(now.0.timestamp_millis())
                    .arg(format!("{}|{sid}", self.node_id))
                    .ignore();
            }
            let _ = self.timed(pipe.query_async::<()>(conn)).await;
        }
        // Subscriptions made while Redis was down were skipped; the connection manager only
        // restores the ones Redis had confirmed. SUBSCRIBE is idempotent.
        let watched: Vec<String> = {
            let local = self.local.lock().unwrap_or_else(|p| p.into_inner());
            local
                .watched
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(u, _)| u.clone())
                .collect()
        };
        self.subscribe_broadcast().await;
        for user in sessions.keys() {
            self.subscribe(user_channel(user), true).await;
        }
        for user in &watched {
            self.subscribe(watch_channel(user), true).await;
        }
        let stale: Vec<String> = self
            .stale_channels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for channel in stale {
            let needed = sessions.keys().any(|u| user_channel(u) == channel)
                || watched.iter().any(|u| watch_channel(u) == channel);
            if !needed {
                self.subscribe(channel, false).await;
            }
        }
        // Offline announced from this node's view alone, for users still online elsewhere.
        let doubtful: Vec<String> = self
            .offline_while_down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for user in doubtful.iter().filter(|u| !sessions.contains_key(*u)) {
            let nodes: Result<i64, _> = self
                .timed(
                    redis::cmd("SCARD")
                        .arg(format!("sb:on:{user}"))
                        .query_async(conn),
                )
                .await;
            if matches!(nodes, Ok(n) if n > 0) {
                self.tell(Transition::Online {
                    user_id: user.clone(),
                    name: None,
                })
                .await;
            }
        }
        if !sessions.is_empty() || !listed.is_empty() {
            log::info!("re-registered {} user(s) with redis", sessions.len());
        }
    }

    /// Removes this node from a user's sets (REAP on ourselves); true if it was their last.
    pub(super) async fn withdraw(&self, conn: &mut deadpool_redis::Connection, user: &str) -> bool {
        let gone: Result<i64, _> = self
            .timed(
                self.scripts
                    .reap
                    .key(format!("sb:on:{user}"))
                    .key(format!("sb:sess:{user}"))
                    // No liveness check when withdrawing ourselves.
                    .key("sb:never")
                    .arg(&self.node_id)
                    .invoke_async(conn),
            )
            .await;
        let _ = self
            .timed(
                redis::cmd("SREM")
                    .arg(format!("sb:nu:{}", self.node_id))
                    .arg(user)
                    .query_async::<i64>(conn),
            )
            .await;
        matches!(gone, Ok(1))
    }

    async fn reap_dead(&self, conn: &mut deadpool_redis::Connection) {
        let Ok(nodes) = self
            .timed(
                redis::cmd("SMEMBERS")
                    .arg("sb:nodes")
                    .query_async::<Vec<String>>(conn),
            )
            .await
        else {
            return;
        };
        for node in nodes.into_iter().filter(|n| *n != self.node_id) {
            let alive: Result<bool, _> = self
                .timed(
                    redis::cmd("EXISTS")
                        .arg(format!("sb:node:{node}"))
                        .query_async(conn),
                )
                .await;
            if alive.unwrap_or(true) {
                continue;
            }
            let locked: Result<Option<String>, _> = self
                .timed(
                    redis::cmd("SET")
                        .arg(format!("sb:reap:{node}"))
                        .arg(&self.node_id)
                        .arg("NX")
                        .arg("PX")
                        .arg(REAP_LOCK_MS)
                        .query_async(conn),
                )
                .await;
            if matches!(locked, Ok(Some(_))) {
                self.reap(conn, &node).await;
            }
        }
    }

    async fn reap(&self, conn: &mut deadpool_redis::Connection, node: &str) {
        let Ok(users) = self
            .timed(
                redis::cmd("SMEMBERS")
                    .arg(format!("sb:nu:{node}"))
                    .query_async::<Vec<String>>(conn),
            )
            .await
        else {
            return;
        };
        let mut offline = 0;
        for user in &users {
            let _turn = self.turns.lock(user).await;
            let gone: Result<i64, _> = self
                .timed(
                    self.scripts
                        .reap
                        .key(format!("sb:on:{user}"))
                        .key(format!("sb:sess:{user}"))
                        .key(format!("sb:node:{node}"))
                        .arg(node)
                        .invoke_async(conn),
                )
                .await;
            match gone {
                Ok(1) => {
                    offline += 1;
                    self.tell(Transition::Offline {
                        user_id: user.clone(),
                        at: Ts::now(),
                    })
                    .await;
                }
                // It refreshed its liveness after all: it is not dead.
                Ok(-1) => {
                    log::info!("node {node} is alive again; not reaping it");
                    return;
                }
                _ => {}
            }
        }
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(format!("sb:nu:{node}")).ignore();
        pipe.cmd("SREM").arg("sb:nodes").arg(node).ignore();
        let _ = self.timed(pipe.query_async::<()>(conn)).await;
        log::warn!(
            "node {node} stopped refreshing its liveness: declared dead, {offline} of its {} user(s) now offline",
            users.len()
        );
    }
}
