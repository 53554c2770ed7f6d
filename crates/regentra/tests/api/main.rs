//! The one integration-test binary of the `regentra` crate: the real application over real HTTP
//! on 127.0.0.1:0 with a fresh database per test (see `helpers::TestApp`).

mod api_auth;
mod browser_flow;
mod cli;
mod clients;
mod csrf;
mod demo_story;
mod federation;
mod health;
mod helpers;
mod inbound;
mod inbound_content;
mod inbound_faults;
mod login;
mod outbound;
mod secrets;
mod teams_connect;
mod teams_flow;
mod tickets;
