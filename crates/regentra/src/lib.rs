//! Regentra: the helpdesk application library. The `regentra` binary is a thin CLI over it.
//!
//! Layering (dependencies point downwards only):
//! - `web` / `cli`: HTTP UI + JSON API and the command line; thin.
//! - `bridge`: the Teams Chat Bridge (connection + token vault, poller + ingest, outbox,
//!   federation). Talks to Microsoft only through the `msgraph` crate.
//! - `tickets`: the helpdesk domain and its lifecycle rules; knows nothing of HTTP or Graph.
//! - `store`: SQLite / PostgreSQL persistence behind small repository functions.

pub mod app;
pub mod bridge;
pub mod cli;
pub mod config;
pub mod demo;
pub mod store;
pub mod tickets;
pub mod web;
