//! Simulator settings: token lifetimes, throttling limits, size limits and the one place that
//! decides what a federation-blocked post looks like.
//!
//! Defaults follow `graph-facts.md` (§5 throttling table, §6 token lifetimes, §4 message size).
//! This module must never read the environment or files: callers build a `SimConfig` and pass it in.

use std::ops::RangeInclusive;
use std::time::Duration;

use time::OffsetDateTime;

/// Everything a test or the demo may want to tune. `SimConfig::default()` is the realistic setup.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Port to bind on 127.0.0.1; 0 picks a free port.
    pub port: u16,
    /// Access-token lifetime in seconds, drawn at random per token (Entra: 60–90 minutes).
    pub access_token_lifetime_secs: RangeInclusive<u64>,
    /// A refresh token unused for this long fails with AADSTS700082 (Entra: 90 days).
    pub refresh_token_inactivity: Duration,
    /// Authorization codes expire after this (Entra: about 10 minutes).
    pub auth_code_lifetime: Duration,
    /// Per-second limits from the Teams throttling table.
    pub throttling: ThrottleLimits,
    /// Message size limit for `POST /chats/{id}/messages` (body content + attachment content).
    pub max_message_bytes: usize,
    /// What Graph answers when the caller posts into a chat whose federation is now blocked.
    /// Microsoft does not document this response (`graph-facts.md` §12), so it lives here only.
    pub federation_blocked_post: GraphErrorSpec,
    /// Where the simulator's clock starts.
    pub clock: ClockStart,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            port: 0,
            access_token_lifetime_secs: 3600..=5400,
            refresh_token_inactivity: Duration::from_secs(90 * 24 * 3600),
            auth_code_lifetime: Duration::from_secs(600),
            throttling: ThrottleLimits::default(),
            max_message_bytes: 28 * 1024,
            federation_blocked_post: GraphErrorSpec {
                status: 403,
                code: "Forbidden".to_owned(),
                message: "Forbidden".to_owned(),
            },
            clock: ClockStart::Now,
        }
    }
}

/// How the simulator clock behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockStart {
    /// Wall-clock time plus whatever `/_sim/clock` added.
    Now,
    /// Stands still at this instant and moves only through `/_sim/clock` (deterministic tests).
    FrozenAt(OffsetDateTime),
}

/// A Graph error the simulator returns in the OData shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphErrorSpec {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// At most `max` requests within `window`. Counted on the simulator clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub max: u32,
    pub window: Duration,
}

impl RateLimit {
    pub const fn per_second(max: u32) -> Self {
        RateLimit {
            max,
            window: Duration::from_secs(1),
        }
    }
}

/// Teams service limits (`graph-facts.md` §5). `None` switches a limit off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleLimits {
    /// "One request per second per user … POST message in a given chat."
    pub post_message_per_user_per_chat: Option<RateLimit>,
    /// "One request per second per app per tenant … on a given channel or chat" (GET messages).
    pub get_messages_per_app_per_chat: Option<RateLimit>,
    /// "Five requests per second per user … List chats or Get chat."
    pub list_chats_per_user: Option<RateLimit>,
    /// GET/POST chat message: 20 per second per app per tenant.
    pub chat_messages_per_app_per_tenant: Option<RateLimit>,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        ThrottleLimits {
            post_message_per_user_per_chat: Some(RateLimit::per_second(1)),
            get_messages_per_app_per_chat: Some(RateLimit::per_second(1)),
            list_chats_per_user: Some(RateLimit::per_second(5)),
            chat_messages_per_app_per_tenant: Some(RateLimit::per_second(20)),
        }
    }
}

impl ThrottleLimits {
    /// No throttling at all (scripted 429s through `/_sim/faults` still work).
    pub fn disabled() -> Self {
        ThrottleLimits {
            post_message_per_user_per_chat: None,
            get_messages_per_app_per_chat: None,
            list_chats_per_user: None,
            chat_messages_per_app_per_tenant: None,
        }
    }
}
