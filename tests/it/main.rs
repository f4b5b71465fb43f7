//! Integration tests: one binary (linking each file in tests/ separately would cost minutes on
//! two cores), one module per area. Every test runs the real server binary over real sockets;
//! `both!` runs a scenario on SQLite and on Postgres.

// The harness is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

mod auth_keys;
mod auth_limits;
mod backpressure;
mod behind_nginx;
mod cli;
mod clients;
mod cluster;
mod cluster_faults;
mod concurrency;
mod docs;
mod faults;
mod first_run;
mod idle;
mod isolation;
mod layout;
mod messages;
mod metrics;
mod notifications;
mod openapi;
mod presence;
mod receipts;
mod rest;
mod roster;
mod server_api;
mod shutdown;
mod sse;
mod store;
mod threads;
mod webhooks;
mod ws_frames;
