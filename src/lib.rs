//! Switchboard: a WebSocket-first real-time chat gateway.
//!
//! Imports run one way, from the transports down to the wire types; no module imports one
//! above it, and no two top-level modules import each other (docs/architecture.md draws it):
//!
//! ```text
//! main, cli, app, shutdown            wiring
//!   api/ (REST, SSE, ops)   ws/       transports
//!     error                           every layer's error → contract code, once
//!       service/                      messages, threads, receipts, typing, presence
//!         context                     the shared handles, behind accessors
//!          commit                     group commit: the node's message writer
//!           session/                  outbox; ordered attach/detach for every transport
//!             relay/                  the relay seam: memory, redis, subscriber
//!               registry/             local sessions, delivery, caps, seq reorder
//!                 store/              the store seam over Postgres and SQLite
//!                   auth, peer (the client's address behind trusted proxies)
//!                   envelope, config, limits, metrics, stripes, expiring, memo
//!                     protocol/       the wire: frames, objects, codes (imports nothing)
//! ```

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod commit;
pub mod config;
pub mod context;
pub mod envelope;
pub mod error;
pub mod expiring;
pub mod limits;
pub mod memo;
pub mod metrics;
pub mod peer;
pub mod protocol;
pub mod registry;
pub mod relay;
pub mod roster;
pub mod service;
pub mod session;
pub mod shutdown;
pub mod store;
pub mod stripes;
pub mod ws;
