//! What a failed delivery attempt means for the reply: try again later, give up with a reason a
//! technician understands, or stop sending until the support account is reconnected.
//!
//! Pure decisions over [`msgraph::Error`]; the worker applies them. Texts are shown on the
//! ticket ("Not delivered: …"), so they say what happened and what to do, in plain words, and
//! never contain a token or a raw request.

use std::time::Duration;

use msgraph::Error;

use crate::store::outbox::AttemptOutcome;

/// Teams' documented size limit for one chat message ("approximately 28 KB", graph-facts §4),
/// applied to the HTML body we post.
pub const TEAMS_MAX_MESSAGE_BYTES: usize = 28 * 1024;

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try again: after `after` when Teams said how long to wait, else after the backoff.
    Retry {
        reason: String,
        after: Option<Duration>,
        outcome: AttemptOutcome,
    },
    /// Give up until a technician presses Retry.
    Fail { reason: String },
    /// The account must be reconnected: keep the reply queued and stop sending.
    Reconnect { reason: String },
    /// No usable account right now (disconnected meanwhile): keep the reply queued.
    Pause { reason: String },
}

/// The reason shown on a reply that stays queued because the account must be reconnected.
pub const RECONNECT_REASON: &str = "the support account must be reconnected (Settings → \
     Integrations); this reply stays queued and is sent once it is";

/// The reason shown on a reply too large for Teams.
pub fn too_large_reason(html_bytes: usize) -> String {
    format!(
        "too long for Teams: this reply needs {:.1} KB and a Teams message holds at most {} KB \
         (characters such as < > & count several times). Shorten it or split it into several \
         replies; it was not sent",
        html_bytes as f64 / 1024.0,
        TEAMS_MAX_MESSAGE_BYTES / 1024
    )
}

/// The reason shown when the retry budget is used up.
pub fn gave_up_reason(attempts: i64, last: &str) -> String {
    format!("gave up after {attempts} attempts ({last}); press Retry to try again")
}

/// Classifies a Graph error met while sending (or while looking for an earlier attempt's
/// message in the chat).
pub fn classify(error: &Error) -> Verdict {
    match error {
        Error::Throttled { retry_after, .. } => Verdict::Retry {
            reason: match retry_after {
                Some(wait) => format!(
                    "Teams asked Regentra to slow down; sending again in {} s",
                    wait.as_secs().max(1)
                ),
                None => "Teams asked Regentra to slow down; sending again shortly".to_owned(),
            },
            after: *retry_after,
            outcome: AttemptOutcome::NotSent,
        },
        Error::Transient { .. } => Verdict::Retry {
            reason: "Microsoft Teams could not be reached; trying again shortly".to_owned(),
            after: None,
            outcome: AttemptOutcome::NotSent,
        },
        Error::OutcomeUnknown { .. } => Verdict::Retry {
            reason: "Teams did not confirm the message in time; Regentra checks the chat before \
                     sending it again"
                .to_owned(),
            after: None,
            outcome: AttemptOutcome::Unknown,
        },
        Error::Token(token) if token.class == msgraph::oauth::TokenErrorClass::Transient => {
            Verdict::Retry {
                reason: "signing in to Microsoft failed for a moment; trying again shortly"
                    .to_owned(),
                after: None,
                outcome: AttemptOutcome::NotSent,
            }
        }
        Error::Unauthorized { .. } => Verdict::Retry {
            reason: "Microsoft did not accept the support account's sign-in; trying again. \
                     If this continues, reconnect the account under Settings → Integrations"
                .to_owned(),
            after: None,
            outcome: AttemptOutcome::NotSent,
        },
        Error::ReconnectRequired(_) => Verdict::Reconnect {
            reason: RECONNECT_REASON.to_owned(),
        },
        Error::TokenUnavailable { .. } => Verdict::Pause {
            reason: "the Teams support account is not connected; this reply stays queued and is \
                     sent once it is"
                .to_owned(),
        },
        Error::Forbidden { message, .. } if message.to_ascii_lowercase().contains("scope") => {
            Verdict::Fail {
                reason: "Teams refused: the support account lacks the permission to send chat \
                         messages (ChatMessage.Send). Reconnect it under Settings → Integrations \
                         and accept the permissions, then press Retry"
                    .to_owned(),
            }
        }
        // Teams answers a plain 403 when external access (federation) blocks the chat, and
        // also when the support user was removed from it; Graph does not say which.
        Error::Forbidden { .. } => Verdict::Fail {
            reason: "Teams refused: this client's organisation blocks external chat with us \
                     (or the support user is no longer in this chat). Run Verify Client \
                     Federation, then press Retry"
                .to_owned(),
        },
        Error::NotFound { .. } => Verdict::Fail {
            reason: "Teams could not find this chat: it was deleted or the support user lost \
                     access to it"
                .to_owned(),
        },
        Error::BadRequest { message, .. } => Verdict::Fail {
            reason: format!(
                "Teams refused the message as invalid (\"{message}\"); this chat may not accept \
                 messages sent through Microsoft Graph"
            ),
        },
        Error::PayloadTooLarge { .. } => Verdict::Fail {
            reason: "too long for Teams: Teams refused the message as too large. Shorten it or \
                     split it into several replies"
                .to_owned(),
        },
        Error::Rejected {
            status, message, ..
        } => Verdict::Fail {
            reason: format!("Teams refused the message (HTTP {status}: \"{message}\")"),
        },
        Error::InvalidInput(detail) => Verdict::Fail {
            reason: format!("the message could not be sent: {detail}"),
        },
        // A configuration or unreadable-answer problem: worth a few more tries, then the
        // retry budget turns it into a failure with this text.
        Error::Token(_)
        | Error::BadResponse { .. }
        | Error::ForeignNextLink { .. }
        | Error::ForeignUrl { .. } => Verdict::Retry {
            reason: format!("talking to Microsoft failed ({error}); trying again"),
            after: None,
            outcome: AttemptOutcome::NotSent,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msgraph::RequestIds;

    fn ids() -> RequestIds {
        RequestIds::default()
    }

    #[test]
    fn a_federation_403_reads_as_a_blocked_organisation() {
        let verdict = classify(&Error::Forbidden {
            code: "Forbidden".into(),
            message: "Forbidden".into(),
            ids: ids(),
        });
        let Verdict::Fail { reason } = verdict else {
            panic!("{verdict:?}")
        };
        assert!(
            reason.starts_with("Teams refused: this client's organisation blocks external chat"),
            "{reason}"
        );
    }

    #[test]
    fn a_missing_scope_403_names_the_permission() {
        let verdict = classify(&Error::Forbidden {
            code: "Forbidden".into(),
            message: "Missing scope permissions on the request. API requires one of \
                      'ChatMessage.Send'. Scopes on the request 'User.Read'"
                .into(),
            ids: ids(),
        });
        assert!(
            matches!(&verdict, Verdict::Fail { reason } if reason.contains("ChatMessage.Send")),
            "{verdict:?}"
        );
    }

    #[test]
    fn throttling_waits_as_long_as_teams_asks() {
        let verdict = classify(&Error::Throttled {
            retry_after: Some(Duration::from_secs(7)),
            ids: ids(),
        });
        assert_eq!(
            verdict,
            Verdict::Retry {
                reason: "Teams asked Regentra to slow down; sending again in 7 s".into(),
                after: Some(Duration::from_secs(7)),
                outcome: AttemptOutcome::NotSent,
            }
        );
    }

    #[test]
    fn an_unknown_outcome_keeps_the_marker_so_the_chat_is_checked_first() {
        let verdict = classify(&Error::OutcomeUnknown {
            method: "POST".into(),
            path: "/v1.0/chats/x/messages".into(),
            detail: "timed out".into(),
            ids: ids(),
        });
        assert!(
            matches!(
                verdict,
                Verdict::Retry {
                    outcome: AttemptOutcome::Unknown,
                    ..
                }
            ),
            "{verdict:?}"
        );
    }

    #[test]
    fn a_dead_grant_pauses_instead_of_failing() {
        let token_error = msgraph::oauth::TokenError {
            class: msgraph::oauth::TokenErrorClass::ReconnectRequired,
            error: "invalid_grant".into(),
            error_codes: vec![50173],
            description: None,
            suberror: None,
            trace_id: None,
            correlation_id: None,
            http_status: Some(400),
        };
        assert_eq!(
            classify(&Error::ReconnectRequired(Box::new(token_error))),
            Verdict::Reconnect {
                reason: RECONNECT_REASON.into()
            }
        );
    }

    #[test]
    fn too_large_names_both_sizes() {
        assert_eq!(
            too_large_reason(30 * 1024),
            "too long for Teams: this reply needs 30.0 KB and a Teams message holds at most 28 KB \
             (characters such as < > & count several times). Shorten it or split it into \
             several replies; it was not sent"
        );
    }
}
