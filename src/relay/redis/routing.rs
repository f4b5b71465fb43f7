//! How an envelope travels between nodes: one part per addressed user on that user's
//! channel, and one on the watched user's channel, each addressed so that a receiving node
//! delivers it once per session. A node subscribes only to its own users' channels, so it
//! receives only what concerns them.

use super::scripts::{user_channel, watch_channel};
use crate::envelope::{Audience, Envelope};

/// The parts of an envelope, one per channel, each addressed so that a node delivers it
/// once per session.
pub fn parts(env: &Envelope) -> Vec<(String, Envelope)> {
    let mut out = Vec::new();
    for user in &env.audience.users {
        let mut part = env.clone();
        part.audience = Audience {
            users: vec![user.clone()],
            watchers_of: None,
            except_session: env.audience.except_session.clone(),
            sessions: Vec::new(),
        };
        out.push((user_channel(user), part));
    }
    if let Some(w) = &env.audience.watchers_of {
        let mut part = env.clone();
        part.audience = Audience {
            watchers_of: Some(w.clone()),
            ..Audience::default()
        };
        out.push((watch_channel(w), part));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Lane, Payload};
    use crate::protocol::{Presence, ServerFrame};

    #[test]
    fn one_part_per_user_and_one_for_watchers() {
        let audience = Audience {
            users: vec!["a".into(), "b".into()],
            watchers_of: Some("w".into()),
            except_session: Some("s1".into()),
            sessions: Vec::new(),
        };
        let frame = ServerFrame::Presence(Presence {
            user_id: "w".into(),
            online: true,
            last_seen: None,
        });
        let env = Envelope::frame("n1", audience, Lane::Durable, &frame);
        let parts = parts(&env);
        let channels: Vec<&str> = parts.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(channels, vec!["sb:u:a", "sb:u:b", "sb:w:w"]);
        assert_eq!(parts[0].1.audience.users, vec!["a".to_string()]);
        assert_eq!(parts[0].1.audience.except_session.as_deref(), Some("s1"));
        assert!(parts[2].1.audience.users.is_empty());
        // Parts that can overlap at one session share the id the registry dedupes on.
        assert!(env.id.is_some());
        assert!(parts.iter().all(|(_, p)| p.id == env.id));
        assert!(matches!(parts[1].1.payload, Payload::Frame { .. }));
    }
}
