//! `msgraph`: the only code in Regentra that talks to Microsoft.
//!
//! * [`oauth`] — identity platform v2.0: authorize URL (state + PKCE S256), code redemption,
//!   refresh with rotation, admin-consent link, typed AADSTS classification.
//! * [`GraphClient`] — typed Graph calls (`me`, `organization`, chats, messages, members, hosted
//!   content, send) with paging guards, one retry policy and the 401 refresh path.
//! * [`model`] — tolerant serde models of the Graph resources.
//! * [`Error`] — what went wrong, shaped for callers that branch on it.
//!
//! This crate knows nothing about tickets or the database, and it never logs or prints tokens
//! or secrets (they only travel as `secrecy` types).

pub mod client;
pub mod error;
pub mod model;
pub mod oauth;
pub mod retry;

pub use client::{
    ChatPage, ChatPager, GraphClient, GraphConfig, HostedContentBytes, HostedContentRef,
    IncompleteReason, MembersListing, MessagesListing, RequestCounter, StaticTokenSource,
    TokenSource,
};
pub use error::{Error, RequestIds};
pub use retry::{RetryPolicy, Sleeper, TokioSleeper};
