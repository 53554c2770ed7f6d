//! Integration tests for the Microsoft 365 simulator: one binary, one module per area.
//! Every test starts its own simulator on 127.0.0.1:0 and talks to it over real HTTP.

mod control;
mod graph_chats;
mod graph_messages;
mod identity;
mod replay;
mod schema;
mod support;
mod teams_page;
