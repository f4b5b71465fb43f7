//! Switchboard: a WebSocket-first real-time chat gateway.
//!
//! Layout, following a message from socket to database to sockets:
//! - [`ws`]: `GET /ws`. [`ws::session`] is the actor per socket, [`ws::frames`] every wire
//!   shape, [`ws::outbox`] the bounded queue in front of each socket, [`ws::dispatch`] frame →
//!   service.
//! - [`api`]: the REST routes (`/api/v1`), `/healthz` and `/readyz`.
//! - [`service`]: what WS and REST share: messages, threads, receipts, typing.
//! - [`store`]: the store seam over Postgres and SQLite; queries written once.
//! - [`relay`]: the relay seam and the node's view of the cluster: [`relay::memory`] for one
//!   node; [`relay::redis`] and its [`relay::subscriber`] actor for many.
//! - [`registry`]: the session registry actor: user → sessions, watchers, caps, drain, and
//!   per-thread seq order ([`registry::reorder`]).
//! - [`presence`]: online/offline transitions, last seen, lookups.
//! - [`auth`], [`config`], [`error`], [`limits`], [`stripes`], [`cli`], [`app`], [`shutdown`].

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod limits;
pub mod presence;
pub mod registry;
pub mod relay;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod stripes;
pub mod ws;
