//! How an envelope travels between nodes. A small audience goes as one part per addressed
//! user on that user's channel, which only the nodes holding that user subscribe to. A large
//! one goes as a single part on the channel every node subscribes to: the payload crosses
//! Redis once per node instead of once per recipient, and each node picks out its own users.
//! A watched user's part goes on that user's watch channel. Parts that can reach one session
//! twice share the envelope id the registry dedupes on.
//!
//! The envelope is serialised once; each part only adds its own audience, so the cost of an
//! event is linear in its recipients, never in recipients times the audience.

use serde::Serialize;

use super::scripts::{user_channel, watch_channel};
use crate::envelope::{Envelope, Order, Payload};

/// The channel every node subscribes to, for envelopes addressed to many users.
pub const ALL_CHANNEL: &str = "sb:all";

/// From this many addressed users, one part for every node beats one part per user.
pub const BROADCAST_FROM: usize = 32;

/// An envelope without its audience, serialised once for all its parts.
#[derive(Serialize)]
struct Shell<'a> {
    v: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a String>,
    origin: &'a str,
    payload: &'a Payload,
    #[serde(skip_serializing_if = "Option::is_none")]
    order: Option<&'a Order>,
}

/// A part's audience, borrowed from the envelope's (same field names as `Audience`).
#[derive(Serialize)]
struct PartAudience<'a> {
    users: &'a [String],
    watchers_of: Option<&'a str>,
    except_session: Option<&'a str>,
}

/// The parts of an envelope: the channel to publish on, and the JSON to publish.
pub fn parts(env: &Envelope) -> Vec<(String, String)> {
    let shell = serde_json::to_string(&Shell {
        v: env.v,
        id: env.id.as_ref(),
        origin: &env.origin,
        payload: &env.payload,
        order: env.order.as_ref(),
    })
    .unwrap_or_default();
    // `shell` is an object: reopen it to add the audience.
    let Some(open) = shell.strip_suffix('}') else {
        log::error!("an envelope could not be serialised; not sent to other nodes");
        return Vec::new();
    };
    let with = |audience: PartAudience| {
        let audience = serde_json::to_string(&audience).unwrap_or_default();
        format!("{open},\"audience\":{audience}}}")
    };
    let except = env.audience.except_session.as_deref();
    let users = env.audience.users.as_slice();
    let mut out = Vec::new();
    if users.len() >= BROADCAST_FROM {
        out.push((
            ALL_CHANNEL.to_string(),
            with(PartAudience {
                users,
                watchers_of: None,
                except_session: except,
            }),
        ));
    } else {
        for user in users {
            out.push((
                user_channel(user),
                with(PartAudience {
                    users: std::slice::from_ref(user),
                    watchers_of: None,
                    except_session: except,
                }),
            ));
        }
    }
    if let Some(w) = &env.audience.watchers_of {
        out.push((
            watch_channel(w),
            with(PartAudience {
                users: &[],
                watchers_of: Some(w),
                except_session: None,
            }),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Audience, Lane};
    use crate::protocol::{Presence, ServerFrame};

    fn presence() -> ServerFrame {
        ServerFrame::Presence(Presence {
            user_id: "w".into(),
            online: true,
            last_seen: None,
        })
    }

    fn decode(parts: &[(String, String)]) -> Vec<(&str, Envelope)> {
        parts
            .iter()
            .map(|(c, json)| (c.as_str(), serde_json::from_str(json).unwrap()))
            .collect()
    }

    #[test]
    fn one_part_per_user_and_one_for_watchers() {
        let audience = Audience {
            users: vec!["a".into(), "b".into()],
            watchers_of: Some("w".into()),
            except_session: Some("s1".into()),
            sessions: Vec::new(),
        };
        let env = Envelope::frame("n1", audience, Lane::Durable, &presence());
        let parts = parts(&env);
        let parts = decode(&parts);
        let channels: Vec<&str> = parts.iter().map(|(c, _)| *c).collect();
        assert_eq!(channels, vec!["sb:u:a", "sb:u:b", "sb:w:w"]);
        assert_eq!(parts[0].1.audience.users, vec!["a".to_string()]);
        assert_eq!(parts[0].1.audience.except_session.as_deref(), Some("s1"));
        assert!(parts[2].1.audience.users.is_empty());
        assert_eq!(parts[2].1.audience.watchers_of.as_deref(), Some("w"));
        // Parts that can overlap at one session share the id the registry dedupes on.
        assert!(env.id.is_some());
        assert!(parts.iter().all(|(_, p)| p.id == env.id));
        assert!(parts.iter().all(|(_, p)| p.origin == "n1"));
        let Payload::Frame { json, .. } = &parts[1].1.payload else {
            panic!("not a frame");
        };
        assert_eq!(json, &presence().to_json());
    }

    #[test]
    fn a_large_audience_is_one_part_for_every_node() {
        let users: Vec<String> = (0..1000).map(|i| format!("u{i}")).collect();
        let env = Envelope::frame(
            "n1",
            Audience::users(users.clone()),
            Lane::Durable,
            &presence(),
        );
        let parts = parts(&env);
        assert_eq!(parts.len(), 1);
        let decoded = decode(&parts);
        assert_eq!(decoded[0].0, ALL_CHANNEL);
        assert_eq!(decoded[0].1.audience.users, users);
        // Linear: the one part is the audience plus the payload, not one per member.
        assert!(parts[0].1.len() < 1000 * 8 + 500, "{}", parts[0].1.len());
    }
}
