//! The wire contract (PROTOCOL.md) as types: client and server frames, the objects inside
//! them, REST bodies, error codes and close codes. Nothing else in the crate builds wire JSON,
//! and this module imports nothing else of the crate, so every layer may use it.

pub mod close;
pub mod error;
pub mod frames;
pub mod objects;
pub mod rest;
pub mod webhooks;

pub use error::ErrorCode;
pub use frames::{
    BadFrame, ClientFrame, FrameError, HistoryPage, HistoryQuery, MessageReply, PresenceList, Ref,
    Reply, SendRequest, ServerFrame, ThreadPage, ThreadsQuery,
};
pub use objects::{Message, Notification, Presence, Priority, Receipt, Thread, ThreadEvent, Ts};
