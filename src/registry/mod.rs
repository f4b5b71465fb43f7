//! The session registry actor: which sessions are open on this node, for whom, and who
//! watches whose presence. It resolves an envelope's audience to local sessions and pushes the
//! frame into each session's bounded outbox without ever waiting on a client. WebSockets and
//! SSE streams register the same way: the registry holds a [`SessionSink`], not a socket or
//! stream type. Whether a user is online anywhere is the relay's business, not this node's.

pub mod reorder;
mod sink;

pub use sink::{Pushed, SessionSink};

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytestring::ByteString;

use crate::envelope::{ENVELOPE_VERSION, Envelope, Lane, Payload, per_user_frame};
use crate::metrics::{self, DropReason};
use crate::protocol::close;

/// Envelopes the registry's mailbox holds before publishers wait.
const MAILBOX: usize = 4096;
/// Multi-part envelopes remembered for delivering each once per session.
const RECENT_IDS: usize = 1024;
/// Sessions remembered across those envelopes: one envelope can address every session of
/// the node, so the count of ids alone would not bound the bytes.
const RECENT_SESSIONS: usize = 65_536;

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

    fn targets(&self, env: &Envelope) -> HashSet<&str> {
        let mut out: HashSet<&str> = HashSet::new();
        for u in &env.audience.users {
            if let Some(list) = self.by_user.get(u) {
                out.extend(list.iter().map(String::as_str));
            }
        }
        if let Some(w) = &env.audience.watchers_of {
            if let Some(set) = self.watchers.get(w) {
                out.extend(set.iter().map(String::as_str));
            }
        }
        for sid in &env.audience.sessions {
            if let Some((k, _)) = self.sessions.get_key_value(sid) {
                out.insert(k.as_str());
            }
        }
        if let Some(except) = &env.audience.except_session {
            out.remove(except.as_str());
        }
        out
    }

    /// Of `targets`, those this multi-part envelope has not reached yet; remembers them.
    fn first_time(&mut self, id: &str, targets: Vec<String>) -> Vec<String> {
        let at = match self.recent.iter().position(|(i, _)| i == id) {
            Some(p) => p,
            None => {
                self.recent.push_back((id.to_string(), HashSet::new()));
                self.recent.len() - 1
            }
        };
        let Some((_, seen)) = self.recent.get_mut(at) else {
            return targets;
        };
        let fresh: Vec<String> = targets
            .into_iter()
            .filter(|t| seen.insert(t.clone()))
            .collect();
        self.recent_sessions += fresh.len();
        // A forgotten id can reach a session twice (presence is state, so a repeat is
        // harmless); an unbounded memory of them could not be afforded.
        while self.recent.len() > 1
            && (self.recent.len() > RECENT_IDS || self.recent_sessions > RECENT_SESSIONS)
        {
            if let Some((_, s)) = self.recent.pop_front() {
                self.recent_sessions -= s.len();
            }
        }
        fresh
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

/// Hands an envelope to the local sessions it addresses. Replies with the users this node
/// no longer watches (an [`Payload::Unwatch`] took their last watcher), for the relay to
/// unsubscribe.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct Deliver {
    pub envelope: Arc<Envelope>,
}

/// Hands several envelopes, in order, to the local sessions they address: one mailbox trip
/// for a committed batch. Replies as [`Deliver`] does.
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct DeliverAll {
    pub envelopes: Vec<Arc<Envelope>>,
}

impl Handler<DeliverAll> for SessionRegistry {
    type Result = Vec<String>;

    fn handle(&mut self, msg: DeliverAll, ctx: &mut Self::Context) -> Vec<String> {
        let mut edges = Vec::new();
        for envelope in msg.envelopes {
            edges.extend(<Self as Handler<Deliver>>::handle(
                self,
                Deliver { envelope },
                ctx,
            ));
        }
        edges
    }
}

impl Handler<Deliver> for SessionRegistry {
    type Result = Vec<String>;

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) -> Vec<String> {
        let env = msg.envelope;
        if env.v != ENVELOPE_VERSION {
            log::warn!("dropping an envelope of unknown version {}", env.v);
            metrics::event_dropped(DropReason::BadEnvelope, 1);
            return Vec::new();
        }
        match (&env.order, env.audience.users.as_slice()) {
            (Some(o), users) if self.ordered && !users.is_empty() => {
                // Only users with a session here: nothing can be delivered to the others, and
                // keeping order for them would only cost memory.
                let here: Vec<&String> = users
                    .iter()
                    .filter(|u| self.by_user.contains_key(*u))
                    .collect();
                for user in here {
                    let key = format!("{}\u{1f}{user}", o.thread_id);
                    let part = Part {
                        env: env.clone(),
                        user: user.clone(),
                    };
                    for p in self.reorder.accept(&key, o.seq, o.follows, part) {
                        self.deliver_now(&p.env, Some(&p.user));
                    }
                }
                self.arm_reorder_timer(ctx);
                Vec::new()
            }
            _ => self.deliver_now(&env, None),
        }
    }
}

impl SessionRegistry {
    fn arm_reorder_timer(&mut self, ctx: &mut Context<Self>) {
        if self.reorder_timer || !self.reorder.waiting() {
            return;
        }
        self.reorder_timer = true;
        ctx.run_later(reorder::FIRST_HOLD / 4, |act, ctx| {
            act.reorder_timer = false;
            for p in act.reorder.expire() {
                act.deliver_now(&p.env, Some(&p.user));
            }
            act.arm_reorder_timer(ctx);
        });
    }

    /// Pushes to each of `targets` the frame `frame_for` makes for its user, and counts.
    fn push_frames(
        &self,
        targets: &[String],
        lane: &Lane,
        mut frame_for: impl FnMut(&str) -> Option<ByteString>,
    ) {
        let (mut delivered, mut shed, mut closing, mut overflow, mut bad) = (0, 0, 0, 0, 0);
        for sid in targets {
            let Some(e) = self.sessions.get(sid) else {
                continue;
            };
            let Some(frame) = frame_for(&e.user_id) else {
                bad += 1;
                continue;
            };
            match e.sink.push(lane, frame) {
                Pushed::Queued => delivered += 1,
                Pushed::Shed => shed += 1,
                Pushed::Closed => closing += 1,
                Pushed::Overflow { dropped } => {
                    overflow += dropped as u64;
                    log::warn!(
                        "session {sid} of {} closed: outgoing queue full (4008)",
                        e.user_id
                    );
                }
            }
        }
        metrics::events_delivered(delivered);
        metrics::event_dropped(DropReason::Shed, shed);
        metrics::event_dropped(DropReason::Closing, closing);
        metrics::event_dropped(DropReason::SlowSession, overflow);
        metrics::event_dropped(DropReason::BadEnvelope, bad);
    }

    /// Pushes an envelope's frame (or close, or unwatch) to the local sessions it addresses
    /// (only to `user`'s, when given). Returns the users this node no longer watches.
    fn deliver_now(&mut self, env: &Envelope, user: Option<&str>) -> Vec<String> {
        let mut targets: Vec<String> = match user {
            Some(u) => self
                .by_user
                .get(u)
                .map(|list| {
                    list.iter()
                        .filter(|s| env.audience.except_session.as_ref() != Some(*s))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
            None => self.targets(env).into_iter().map(str::to_string).collect(),
        };
        // Only Redis splits an envelope into parts (the user's channel and the watched
        // user's); on one node it arrives whole, and `targets` is already distinct.
        if let Some(id) = env.id.as_deref().filter(|_| self.ordered) {
            targets = self.first_time(id, targets);
        }
        match &env.payload {
            Payload::Frame { lane, json } => {
                // One allocation for all recipients: ByteString clones share the buffer.
                let frame = ByteString::from(json.as_str());
                self.push_frames(&targets, lane, |_| Some(frame.clone()));
            }
            Payload::PerUser {
                lane,
                json,
                at,
                values,
            } => {
                // One copy per recipient user, shared by that user's sessions.
                let mut made: HashMap<String, Option<ByteString>> = HashMap::new();
                self.push_frames(&targets, lane, |user| {
                    made.entry(user.to_string())
                        .or_insert_with(|| {
                            let value = values.get(user).copied().unwrap_or(0);
                            per_user_frame(json, *at, value).map(ByteString::from)
                        })
                        .clone()
                });
            }
            Payload::Close { code, reason } => {
                for sid in &targets {
                    if let Some(e) = self.sessions.get(sid) {
                        log::info!(
                            "session {sid} of {} closed by the server ({code})",
                            e.user_id
                        );
                        e.sink.close(*code, reason);
                    }
                }
            }
            Payload::Unwatch { users } => return self.end_watches(&targets, users),
        }
        Vec::new()
    }

    /// Ends `sessions`' watches of `users`; returns the users this node no longer watches.
    fn end_watches(&mut self, sessions: &[String], users: &[String]) -> Vec<String> {
        let mut ended = Vec::new();
        for sid in sessions {
            if let Some(e) = self.sessions.get_mut(sid) {
                ended.extend(
                    users
                        .iter()
                        .filter(|u| e.watching.remove(*u))
                        .map(|u| (sid.clone(), u.clone())),
                );
            }
        }
        ended
            .into_iter()
            .filter(|(sid, u)| self.unwatch(u, sid))
            .map(|(_, u)| u)
            .collect()
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions(from: usize, to: usize) -> Vec<String> {
        (from..to).map(|i| format!("s{i}")).collect()
    }

    #[test]
    fn a_multi_part_envelope_reaches_each_session_once() {
        let mut r = SessionRegistry::new(10, true);
        assert_eq!(r.first_time("e1", sessions(0, 3)), sessions(0, 3));
        // The watched user's part overlaps the user's own.
        assert_eq!(r.first_time("e1", sessions(2, 5)), sessions(3, 5));
        assert_eq!(r.first_time("e2", sessions(0, 2)), sessions(0, 2));
    }

    #[test]
    fn the_memory_of_parts_is_bounded_in_sessions_as_well_as_ids() {
        let mut r = SessionRegistry::new(10, true);
        // Each envelope reaches 1,000 sessions: the session bound, not the id bound, holds.
        for e in 0..200 {
            r.first_time(&format!("e{e}"), sessions(0, 1000));
            assert!(r.recent_sessions <= RECENT_SESSIONS);
            let held: usize = r.recent.iter().map(|(_, s)| s.len()).sum();
            assert_eq!(held, r.recent_sessions);
        }
        assert_eq!(r.recent.len(), RECENT_SESSIONS / 1000);
        // Small envelopes: the id bound.
        for e in 0..2 * RECENT_IDS {
            r.first_time(&format!("f{e}"), sessions(0, 1));
        }
        assert_eq!(r.recent.len(), RECENT_IDS);
        // The newest is still remembered.
        let last = format!("f{}", 2 * RECENT_IDS - 1);
        assert!(r.first_time(&last, sessions(0, 1)).is_empty());
    }
}
