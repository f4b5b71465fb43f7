//! The session registry actor: which sessions are open on this node, for whom, and who
//! watches whose presence. It resolves an envelope's audience to local sessions and pushes the
//! frame into each session's bounded outbox without ever waiting on a client. WebSockets and
//! SSE streams register the same way: the registry holds a [`SessionSink`], not a socket or
//! stream type. Whether a user is online anywhere is the relay's business, not this node's.
//!
//! This file holds the registry and its sessions' lifecycle (register, unregister, drain);
//! `deliver.rs` hands envelopes to sessions, and `watch.rs` keeps who watches whose presence.

mod deliver;
pub mod reorder;
mod sink;
mod watch;

pub use deliver::{Deliver, DeliverAll};
pub use sink::{Pushed, SessionSink};
pub use watch::{MAX_WATCHES, Online, Watch, WatchError, online_here};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;

use crate::envelope::{Envelope, Lane};
use crate::protocol::close;

/// Envelopes the registry's mailbox holds before publishers wait.
const MAILBOX: usize = 4096;

/// One user's share of a message event, waiting for its turn.
struct Part {
    env: Arc<Envelope>,
    user: String,
}

struct Entry {
    user_id: String,
    sink: Arc<dyn SessionSink>,
    watching: HashSet<String>,
}

/// The per-node registry of sessions.
pub struct SessionRegistry {
    sessions: HashMap<String, Entry>,
    /// Each user's sessions, oldest first.
    by_user: HashMap<String, Vec<String>>,
    /// Watched user → sessions watching them.
    watchers: HashMap<String, HashSet<String>>,
    max_per_user: usize,
    draining: bool,
    /// Recent multi-part envelope ids and the sessions each already reached.
    recent: std::collections::VecDeque<(String, HashSet<String>)>,
    /// The sessions held in `recent`, all ids together.
    recent_sessions: usize,
    /// Seq order of message events, per thread and user.
    reorder: reorder::Reorder<Part>,
    /// Whether a timer to let held messages through is pending.
    reorder_timer: bool,
    /// Whether envelopes come from several nodes: message events may then arrive out of
    /// order and a multi-part envelope in parts. On one node events leave their group-commit
    /// shard in order and each envelope arrives whole, so neither is tracked.
    ordered: bool,
}

impl SessionRegistry {
    /// A registry allowing `max_per_user` sessions per user; `ordered` when events come
    /// from several nodes and must be put back in seq order.
    pub fn new(max_per_user: usize, ordered: bool) -> Self {
        SessionRegistry {
            sessions: HashMap::new(),
            by_user: HashMap::new(),
            watchers: HashMap::new(),
            max_per_user,
            draining: false,
            recent: std::collections::VecDeque::new(),
            recent_sessions: 0,
            reorder: reorder::Reorder::default(),
            reorder_timer: false,
            ordered,
        }
    }

    /// Forgets a session and its watches; returns the users this node no longer watches.
    fn detach(&mut self, session_id: &str) -> Vec<String> {
        let Some(entry) = self.sessions.remove(session_id) else {
            return Vec::new();
        };
        let edges = entry
            .watching
            .iter()
            .filter(|w| self.unwatch(w, session_id))
            .cloned()
            .collect();
        if let Some(list) = self.by_user.get_mut(&entry.user_id) {
            list.retain(|s| s != session_id);
            if list.is_empty() {
                self.by_user.remove(&entry.user_id);
            }
        }
        edges
    }

    /// Drops one watch; true when it was this node's last watcher of `watched`.
    fn unwatch(&mut self, watched: &str, session_id: &str) -> bool {
        let Some(set) = self.watchers.get_mut(watched) else {
            return false;
        };
        set.remove(session_id);
        if !set.is_empty() {
            return false;
        }
        self.watchers.remove(watched);
        true
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        // Forget the order state of quiet threads even when nothing is held.
        ctx.run_interval(Duration::from_secs(30), |act, _| act.reorder.forget_quiet());
    }
}

/// Adds a session and queues its `hello` ahead of every event. Replies `false` while
/// draining (the caller closes with 1001).
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Register {
    pub session_id: String,
    pub user_id: String,
    pub sink: Arc<dyn SessionSink>,
    pub hello: ByteString,
}

impl Handler<Register> for SessionRegistry {
    type Result = bool;

    fn handle(&mut self, msg: Register, _: &mut Self::Context) -> bool {
        if self.draining {
            return false;
        }
        msg.sink.push(&Lane::Durable, msg.hello);
        let list = self.by_user.entry(msg.user_id.clone()).or_default();
        list.push(msg.session_id.clone());
        // Over the cap: the oldest go, so a user who opens a new tab is never refused.
        let excess = list.len().saturating_sub(self.max_per_user);
        let evicted: Vec<String> = list.drain(..excess).collect();
        // They stay registered until their sockets close (and unregister, releasing their
        // watches); they no longer count against the cap.
        for old in evicted {
            if let Some(e) = self.sessions.get(&old) {
                log::info!(
                    "session {old} of {} replaced (over the session cap)",
                    msg.user_id
                );
                e.sink.close(close::REPLACED, "too many sessions");
            }
        }
        self.sessions.insert(
            msg.session_id,
            Entry {
                user_id: msg.user_id.clone(),
                sink: msg.sink,
                watching: HashSet::new(),
            },
        );
        true
    }
}

/// Removes a session (its socket closed). Replies with the users this node no longer
/// watches, for the relay to unsubscribe.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Unregister {
    pub session_id: String,
}

impl Handler<Unregister> for SessionRegistry {
    type Result = Vec<String>;

    fn handle(&mut self, msg: Unregister, _: &mut Self::Context) -> Vec<String> {
        self.detach(&msg.session_id)
    }
}

/// Stops accepting sessions and closes every open one with 1001, after what each has queued
/// but within `within` (the drain's window). Replies with how many were open.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Drain {
    pub within: Duration,
}

impl Handler<Drain> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, d: Drain, _: &mut Self::Context) -> usize {
        self.draining = true;
        for e in self.sessions.values() {
            e.sink
                .close_within(close::GOING_AWAY, "server shutting down", d.within);
        }
        self.sessions.len()
    }
}

/// How many sessions are open on this node.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct SessionCount;

impl Handler<SessionCount> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, _: SessionCount, _: &mut Self::Context) -> usize {
        self.sessions.len()
    }
}
