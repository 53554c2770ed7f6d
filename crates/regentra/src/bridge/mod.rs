//! The Teams Chat Bridge: everything between Microsoft Graph (via `msgraph`) and the ticket domain.

pub mod connection;
pub mod content;
pub mod federation;
pub mod ingest;
pub mod metrics;
pub mod outbox;
pub mod poller;
pub mod vault;
