//! Integration tests of the `msgraph` crate: real fixtures, scripted HTTP fakes (wiremock) for
//! every field report that concerns the client, and end-to-end runs against the simulator.

mod fixtures;
mod graph_errors;
mod oauth_flow;
mod paging;
mod retries;
mod simulator;
mod support;
