//! How an envelope travels between nodes. A small audience goes as one part per addressed
//! user on that user's channel, which only the nodes holding that user subscribe to. A large
//! one goes as a single part on the channel every node subscribes to: the payload crosses
//! Redis once per node instead of once per recipient, and each node picks out its own users.
//! A watched user's part goes on that user's watch channel. Parts that can reach one session
//! twice share the envelope id the registry dedupes on.
//!
//! A part is a JSON header (the envelope less its frame), then a newline, then the frame as
//! it is written to clients. The frame is serialised once, at the origin; each part only adds
//! its own audience, so the cost of an event is linear in its recipients, never in
//! recipients times the audience. Carried inside the header as a JSON string, every quote of
//! the frame was escaped for each part and unescaped again at every receiving node.

use serde::{Deserialize, Serialize};

use super::scripts::{user_channel, watch_channel};
use crate::envelope::{Audience, Envelope, Order, Payload};

/// The channel every node subscribes to, for envelopes addressed to many users.
pub const ALL_CHANNEL: &str = "sb:all";

/// From this many addressed users, one part for every node beats one part per user.
pub const BROADCAST_FROM: usize = 32;

/// An envelope without its audience and frame, serialised once for all its parts.
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
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    sessions: &'a [String],
}

/// A part's header as it is read back.
#[derive(Deserialize)]
struct Header {
    v: u8,
    #[serde(default)]
    id: Option<String>,
    origin: String,
    audience: Audience,
    payload: Payload,
    #[serde(default)]
    order: Option<Order>,
}

/// Why a part could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BadPart {
    /// The header is not the JSON of an envelope.
    #[error("unreadable header: {0}")]
    Header(#[from] serde_json::Error),
    /// The bytes after the header are not UTF-8.
    #[error("the frame is not UTF-8")]
    NotUtf8,
    /// A frame payload with nothing after its header.
    #[error("a frame envelope without its frame")]
    NoFrame,
}

/// The frame an envelope carries, if it carries one.
fn frame_of(payload: &Payload) -> Option<&str> {
    match payload {
        Payload::Frame { json, .. } | Payload::PerUser { json, .. } => Some(json),
        Payload::Close { .. } | Payload::Unwatch { .. } => None,
    }
}

impl<'a> Shell<'a> {
    /// The shell of `env`, borrowed.
    fn of(env: &'a Envelope) -> Shell<'a> {
        Shell {
            v: env.v,
            id: env.id.as_ref(),
            origin: &env.origin,
            payload: &env.payload,
            order: env.order.as_ref(),
        }
    }
}

/// A part from its header (a JSON object, `}` included) and the envelope's frame.
fn part(header: &[&str], frame: Option<&str>) -> String {
    let len = header.iter().map(|h| h.len()).sum::<usize>() + frame.map_or(0, |f| f.len() + 1);
    let mut part = String::with_capacity(len);
    for h in header {
        part.push_str(h);
    }
    if let Some(frame) = frame {
        // serde_json writes no raw newline: the first one ends the header.
        part.push('\n');
        part.push_str(frame);
    }
    part
}

/// The parts of an envelope: the channel to publish on, and the bytes to publish.
pub fn parts(env: &Envelope) -> Vec<(String, String)> {
    let shell = serde_json::to_string(&Shell::of(env)).unwrap_or_default();
    // `shell` is an object: reopen it to add the audience.
    let Some(open) = shell.strip_suffix('}') else {
        log::error!("an envelope could not be serialised; not sent to other nodes");
        return Vec::new();
    };
    let frame = frame_of(&env.payload);
    let with = |audience: PartAudience| {
        let audience = serde_json::to_string(&audience).unwrap_or_default();
        part(&[open, ",\"audience\":", &audience, "}"], frame)
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
                sessions: &[],
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
                    sessions: &[],
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
                sessions: &[],
            }),
        ));
    }
    out
}

/// The envelope as one part with its whole audience, for a caller that picks the channel
/// itself (closing one session on the node that holds it).
pub fn whole(env: &Envelope) -> String {
    #[derive(Serialize)]
    struct Whole<'a> {
        #[serde(flatten)]
        shell: Shell<'a>,
        audience: PartAudience<'a>,
    }
    let header = serde_json::to_string(&Whole {
        shell: Shell::of(env),
        audience: PartAudience {
            users: &env.audience.users,
            watchers_of: env.audience.watchers_of.as_deref(),
            except_session: env.audience.except_session.as_deref(),
            sessions: &env.audience.sessions,
        },
    })
    .unwrap_or_default();
    part(&[&header], frame_of(&env.payload))
}

/// A part's header: its bytes up to the first newline (the whole part when it carries no
/// frame).
pub fn header_of(part: &[u8]) -> &[u8] {
    memchr::memchr(b'\n', part).map_or(part, |at| &part[..at])
}

/// Recognises a node's own parts from their header's bytes, unparsed. A node hears its own
/// publishes on its users' channels (a sender's channel carries the send to the sender's
/// other sessions), and it delivered them locally already: in `direct` across two nodes the
/// sending node heard back every send, and parsed each in full only to drop it.
pub struct OwnParts {
    needle: Vec<u8>,
}

impl OwnParts {
    /// For the node named `node_id`.
    pub fn new(node_id: &str) -> OwnParts {
        let origin = serde_json::to_string(node_id).unwrap_or_default();
        OwnParts {
            needle: format!(",\"origin\":{origin},\"payload\":").into_bytes(),
        }
    }

    /// Whether `part` was published by this node. `Shell` writes `origin` right before
    /// `payload`, and any string in a header that quotes the pair has its quotes escaped, so
    /// only the field itself matches.
    pub fn is_own(&self, part: &[u8]) -> bool {
        memchr::memmem::find(header_of(part), &self.needle).is_some()
    }
}

/// Reads a part back into its envelope.
pub fn decode(part: &[u8]) -> Result<Envelope, BadPart> {
    let head = header_of(part);
    let frame = part.get(head.len() + 1..);
    let header: Header = serde_json::from_slice(head)?;
    let mut payload = header.payload;
    match &mut payload {
        Payload::Frame { json, .. } | Payload::PerUser { json, .. } => {
            let frame = frame.ok_or(BadPart::NoFrame)?;
            *json = std::str::from_utf8(frame)
                .map_err(|_| BadPart::NotUtf8)?
                .to_owned();
        }
        Payload::Close { .. } | Payload::Unwatch { .. } => {}
    }
    Ok(Envelope {
        v: header.v,
        id: header.id,
        origin: header.origin,
        audience: header.audience,
        payload,
        order: header.order,
    })
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

    fn decode_all(parts: &[(String, String)]) -> Vec<(&str, Envelope)> {
        parts
            .iter()
            .map(|(c, part)| (c.as_str(), decode(part.as_bytes()).unwrap()))
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
        let parts = decode_all(&parts);
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
        let decoded = decode_all(&parts);
        assert_eq!(decoded[0].0, ALL_CHANNEL);
        assert_eq!(decoded[0].1.audience.users, users);
        // Linear: the one part is the audience plus the payload, not one per member.
        assert!(parts[0].1.len() < 1000 * 8 + 500, "{}", parts[0].1.len());
    }

    #[test]
    fn a_part_carries_the_frame_verbatim_after_its_header() {
        let frame = ServerFrame::Typing {
            thread_id: "t\"1".into(),
            user_id: "line\nbreak".into(),
            is_typing: true,
        };
        let env = Envelope::frame(
            "n1",
            Audience::users(vec!["a".into()]),
            Lane::Durable,
            &frame,
        );
        let parts = parts(&env);
        let (header, carried) = parts[0].1.split_once('\n').unwrap();
        // Not escaped into the header: written once, read back as the same bytes.
        assert_eq!(carried, frame.to_json());
        assert!(!header.contains("is_typing"), "{header}");
        let back = decode(parts[0].1.as_bytes()).unwrap();
        let Payload::Frame { json, .. } = &back.payload else {
            panic!("not a frame");
        };
        assert_eq!(json, &frame.to_json());
    }

    #[test]
    fn every_payload_kind_survives_the_trip() {
        let per_user = Envelope::per_user(
            "n1",
            Audience::users(vec!["a".into()]),
            Lane::Lossy { key: "k".into() },
            &ServerFrame::Read(crate::protocol::Receipt {
                thread_id: "t".into(),
                user_id: "u".into(),
                seq: crate::envelope::PER_USER_SLOT,
                at: crate::protocol::Ts::now(),
            }),
            std::collections::HashMap::from([("a".to_string(), 3)]),
        );
        let close = Envelope::close(
            "n1",
            Audience {
                sessions: vec!["s9".into()],
                ..Audience::default()
            },
            4003,
            "revoked",
        );
        let unwatch = Envelope::unwatch("n1", Audience::users(vec!["a".into()]), vec!["w".into()]);
        let back = decode(whole(&close).as_bytes()).unwrap();
        assert_eq!(back.audience.sessions, vec!["s9".to_string()]);
        assert!(
            matches!(back.payload, Payload::Close { code: 4003, ref reason } if reason == "revoked")
        );
        let back = decode(parts(&unwatch)[0].1.as_bytes()).unwrap();
        assert!(
            matches!(back.payload, Payload::Unwatch { ref users } if users == &["w".to_string()])
        );
        let back = decode(parts(&per_user)[0].1.as_bytes()).unwrap();
        let (
            Payload::PerUser {
                json,
                at,
                values,
                lane,
            },
            Payload::PerUser {
                json: sent,
                at: sent_at,
                ..
            },
        ) = (&back.payload, &per_user.payload)
        else {
            panic!("not per user");
        };
        assert_eq!((json, *at, values["a"]), (sent, *sent_at, 3));
        // The slot is still where the number goes.
        let filled = crate::envelope::per_user_frame(json, *at, 3).unwrap();
        let filled: serde_json::Value = serde_json::from_str(&filled).unwrap();
        assert_eq!(filled["seq"], 3);
        assert_eq!(lane, &Lane::Lossy { key: "k".into() });
    }

    #[test]
    fn a_broken_part_is_refused_not_guessed() {
        let env = Envelope::frame(
            "n1",
            Audience::users(vec!["a".into()]),
            Lane::Durable,
            &presence(),
        );
        let part = parts(&env).remove(0).1;
        let (header, _) = part.split_once('\n').unwrap();
        assert!(matches!(decode(header.as_bytes()), Err(BadPart::NoFrame)));
        assert!(matches!(decode(b"{not json"), Err(BadPart::Header(_))));
        let mut bad = header.as_bytes().to_vec();
        bad.extend_from_slice(b"\n\xff");
        assert!(matches!(decode(&bad), Err(BadPart::NotUtf8)));
    }

    #[test]
    fn a_node_knows_its_own_parts_and_only_those() {
        let own = OwnParts::new("n\"1");
        let mine = Envelope::frame(
            "n\"1",
            Audience::users(vec!["a".into()]),
            Lane::Durable,
            &presence(),
        );
        assert!(own.is_own(parts(&mine)[0].1.as_bytes()));
        assert!(own.is_own(whole(&mine).as_bytes()));
        // Another node's part quoting this node's origin field, in a user id and in the frame.
        let posing = ",\"origin\":\"n\\\"1\",\"payload\":";
        let frame = ServerFrame::Typing {
            thread_id: posing.into(),
            user_id: posing.into(),
            is_typing: true,
        };
        let theirs = Envelope::frame(
            "n2",
            Audience::users(vec![posing.into()]),
            Lane::Durable,
            &frame,
        );
        assert!(!own.is_own(parts(&theirs)[0].1.as_bytes()));
        assert!(!OwnParts::new("n").is_own(parts(&mine)[0].1.as_bytes()));
    }
}
