//! Handing envelopes to the local sessions they address: resolving the audience, putting a
//! user's message events back in seq order when they come from several nodes, delivering a
//! multi-part envelope once per session, and counting what could not be delivered.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;

use super::{Part, Pushed, SessionRegistry, reorder};
use crate::envelope::{ENVELOPE_VERSION, Envelope, Lane, Payload, per_user_frame};
use crate::metrics::{self, DropReason};

/// Multi-part envelopes remembered for delivering each once per session.
const RECENT_IDS: usize = 1024;
/// Sessions remembered across those envelopes: one envelope can address every session of
/// the node, so the count of ids alone would not bound the bytes.
const RECENT_SESSIONS: usize = 65_536;

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
    /// The local sessions `env` addresses.
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
