//! The membership cache's side of the Redis relay: telling the other nodes which threads'
//! members changed (`sb:members`), owing them what could not be told while Redis was out of
//! reach, and trusting this node's `roster` only while that channel is subscribed.

use std::collections::HashSet;

use super::RedisRelay;
use crate::relay::subscriber::{FORGET_ALL, MEMBERS_CHANNEL, Subscription};

/// Threads whose forget is owed to the other nodes; past it they are told to forget all.
pub(super) const OWED_FORGETS: usize = 4096;

/// Forgets owed to the other nodes, published once Redis answers again.
#[derive(Default)]
pub(super) struct Owed {
    threads: HashSet<String>,
    /// Too many to list: the other nodes are told to forget everything.
    all: bool,
}

impl Owed {
    /// Owes a forget of `thread_id` (`None`: of everything); past `OWED_FORGETS` threads,
    /// of everything.
    fn add(&mut self, thread_id: Option<&str>) {
        match thread_id {
            Some(t)
                if !self.all && (self.threads.len() < OWED_FORGETS || self.threads.contains(t)) =>
            {
                self.threads.insert(t.to_string());
            }
            _ => {
                self.all = true;
                self.threads = HashSet::new();
            }
        }
    }
}

impl RedisRelay {
    /// Tells the other nodes that `thread_id`'s members changed, or owes it to them.
    pub(super) async fn tell_members_changed(&self, thread_id: &str) {
        let told = match self.up_conn().await {
            Some(mut conn) => self
                .timed(
                    redis::cmd("PUBLISH")
                        .arg(MEMBERS_CHANNEL)
                        .arg(thread_id)
                        .query_async::<i64>(&mut conn),
                )
                .await
                .is_ok(),
            None => false,
        };
        if !told {
            self.owe_forget(Some(thread_id));
        }
    }

    /// Remembers a forget the other nodes could not be told of (`None`: forget all).
    pub(super) fn owe_forget(&self, thread_id: Option<&str>) {
        self.owed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(thread_id);
    }

    /// Publishes the forgets owed to the other nodes, in one round trip; whether none is
    /// owed any more.
    pub(super) async fn pay_forgets(&self, conn: &mut deadpool_redis::Connection) -> bool {
        let owed = std::mem::take(&mut *self.owed.lock().unwrap_or_else(|p| p.into_inner()));
        if !owed.all && owed.threads.is_empty() {
            return true;
        }
        let mut pipe = redis::pipe();
        if owed.all {
            pipe.cmd("PUBLISH")
                .arg(MEMBERS_CHANNEL)
                .arg(FORGET_ALL)
                .ignore();
        }
        for t in &owed.threads {
            pipe.cmd("PUBLISH").arg(MEMBERS_CHANNEL).arg(t).ignore();
        }
        if self.timed(pipe.query_async::<()>(conn)).await.is_ok() {
            log::info!(
                "told the other nodes of membership changes made while redis was away ({})",
                if owed.all {
                    "all threads".to_string()
                } else {
                    format!("{} thread(s)", owed.threads.len())
                }
            );
            return true;
        }
        if owed.all {
            self.owe_forget(None);
        } else {
            for t in &owed.threads {
                self.owe_forget(Some(t));
            }
        }
        false
    }

    /// Trusts the membership cache once `sb:members` is subscribed: from then on every
    /// other node's changes reach it.
    pub(super) async fn trust_roster(&self) {
        if self.roster.is_trusted() {
            return;
        }
        // A disconnection seen while this subscribes means the subscription confirmed may
        // already be gone: then trust waits for the next tick.
        let distrusts = self.roster.distrusts();
        let on = Subscription {
            channel: MEMBERS_CHANNEL.to_string(),
            on: true,
        };
        match self.ask_subscriber(on).await {
            Ok(()) => {
                self.roster.trust_if(distrusts);
            }
            Err(e) => self.down(&e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{OWED_FORGETS, Owed};

    #[test]
    fn owed_forgets_are_bounded_and_past_the_bound_become_forget_all() {
        let mut owed = Owed::default();
        for i in 0..OWED_FORGETS {
            owed.add(Some(&format!("t{i}")));
        }
        owed.add(Some("t0"));
        assert!(!owed.all && owed.threads.len() == OWED_FORGETS);
        owed.add(Some("one-more"));
        assert!(owed.all && owed.threads.is_empty());
        owed.add(Some("after"));
        assert!(owed.threads.is_empty(), "forget all covers it");
    }
}
