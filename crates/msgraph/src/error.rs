//! The one error type of the Graph client, shaped for callers that branch on it.
//!
//! The poller and the outbox act differently on each variant (wait, refresh, reconnect, mark a
//! reply failed, reconcile an unknown send), so the variants follow those decisions rather than
//! HTTP status codes. Every variant that came from Microsoft carries the ids support needs
//! (`request-id`, `client-request-id`, AADSTS `trace_id`/`correlation_id`). Messages say what
//! happened and what to do. This module must never put a token or secret into a message.

use std::fmt;
use std::time::Duration;

use crate::oauth::TokenError;

/// Graph's per-request ids, copied from the response headers or the error body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// `request-id` (header, or `innerError.request-id`).
    pub request_id: Option<String>,
    /// `client-request-id` as echoed by Graph.
    pub client_request_id: Option<String>,
}

impl fmt::Display for RequestIds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.request_id, &self.client_request_id) {
            (Some(request), Some(client)) if request != client => {
                write!(f, "request-id {request}, client-request-id {client}")
            }
            (Some(request), _) => write!(f, "request-id {request}"),
            (None, Some(client)) => write!(f, "client-request-id {client}"),
            (None, None) => f.write_str("no request-id"),
        }
    }
}

/// Everything that can go wrong talking to Graph.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 429 (or 503/504 on reads) still failing after the retry budget, or a `Retry-After` longer
    /// than the policy is willing to wait inside one call.
    #[error(
        "Microsoft Graph is throttling these requests{} ({ids}); wait before retrying and keep the cursor where it is",
        retry_after.map(|d| format!(" and asked to wait {:.3} s", d.as_secs_f64())).unwrap_or_default()
    )]
    Throttled {
        retry_after: Option<Duration>,
        ids: RequestIds,
    },

    /// 401 even after one token refresh.
    #[error(
        "Microsoft Graph rejected the access token ({code}) even after a refresh ({ids}); reconnect the support account if this persists"
    )]
    Unauthorized {
        code: String,
        message: String,
        ids: RequestIds,
    },

    /// The refresh token can no longer be used: the connection needs a human.
    #[error("the Microsoft 365 connection must be renewed: {0}")]
    ReconnectRequired(Box<TokenError>),

    /// Any other failure of the token endpoint during a refresh (transient, configuration, …).
    #[error("getting a fresh access token failed: {0}")]
    Token(Box<TokenError>),

    /// The caller's token store could not provide a token (not connected, storage error, …).
    #[error("no access token is available: {message}; connect the Microsoft 365 account first")]
    TokenUnavailable { message: String },

    /// 403: missing scope, or the user lost access to the chat.
    #[error(
        "Microsoft Graph refused access ({code}: {message}) ({ids}); check the granted scopes and that the support user is still a member of the chat"
    )]
    Forbidden {
        code: String,
        message: String,
        ids: RequestIds,
    },

    /// 404: the chat or message is not (or no longer) visible.
    #[error(
        "Microsoft Graph could not find it ({code}: {message}) ({ids}); it may have been deleted or hidden from the support user — do not forget the chat on a single 404"
    )]
    NotFound {
        code: String,
        message: String,
        ids: RequestIds,
    },

    /// 400: malformed request, unsupported query, or a chat that does not accept posts.
    #[error(
        "Microsoft Graph rejected the request as invalid ({code}: {message}) ({ids}); this will not succeed by retrying as is"
    )]
    BadRequest {
        code: String,
        message: String,
        ids: RequestIds,
    },

    /// 413: the message is larger than Teams accepts (about 28 KB).
    #[error("the message is too large for Teams ({ids}); shorten it or send attachments as links")]
    PayloadTooLarge { ids: RequestIds },

    /// Any other final 4xx (409, 412, …).
    #[error(
        "Microsoft Graph answered {status} ({code}: {message}) ({ids}); this will not succeed by retrying as is"
    )]
    Rejected {
        status: u16,
        code: String,
        message: String,
        ids: RequestIds,
    },

    /// Network failure or 5xx on a request that is safe to repeat, after the retry budget.
    #[error(
        "Microsoft Graph is unreachable or failing ({detail}) ({ids}); the next cycle will try again"
    )]
    Transient {
        status: Option<u16>,
        detail: String,
        ids: RequestIds,
    },

    /// A POST was sent but no trustworthy answer came back (timeout, dropped connection, 5xx).
    /// The message may or may not exist in Teams: look for it before sending again.
    #[error(
        "the outcome of {method} {path} is unknown ({detail}) ({ids}); check whether it arrived in the chat before sending again"
    )]
    OutcomeUnknown {
        method: String,
        path: String,
        detail: String,
        ids: RequestIds,
    },

    /// A success status with a body that could not be read.
    #[error(
        "Microsoft Graph sent a response that could not be read ({detail}) ({ids}); report this with the request id"
    )]
    BadResponse { detail: String, ids: RequestIds },

    /// An `@odata.nextLink` pointed at a different origin; it was not followed and no token was
    /// sent there.
    #[error(
        "refused to follow a paging link to {link_origin} because the configured Graph URL is {expected_origin}; no token was sent, and paging stopped"
    )]
    ForeignNextLink {
        link_origin: String,
        expected_origin: String,
    },

    /// A hosted-content URL pointed at a different origin; no token was sent there.
    #[error(
        "refused to download {link_origin} with the Graph token because the configured Graph URL is {expected_origin}"
    )]
    ForeignUrl {
        link_origin: String,
        expected_origin: String,
    },

    /// The caller passed something unusable (e.g. a URL that does not parse).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl Error {
    /// The Graph `request-id`, when the failure came from a Graph response.
    pub fn request_ids(&self) -> Option<&RequestIds> {
        match self {
            Error::Throttled { ids, .. }
            | Error::Unauthorized { ids, .. }
            | Error::Forbidden { ids, .. }
            | Error::NotFound { ids, .. }
            | Error::BadRequest { ids, .. }
            | Error::PayloadTooLarge { ids }
            | Error::Rejected { ids, .. }
            | Error::Transient { ids, .. }
            | Error::OutcomeUnknown { ids, .. }
            | Error::BadResponse { ids, .. } => Some(ids),
            _ => None,
        }
    }

    /// The Graph `request-id` for logs.
    pub fn request_id(&self) -> Option<&str> {
        self.request_ids().and_then(|ids| ids.request_id.as_deref())
    }

    /// True when waiting and trying again later can help (throttling, outages).
    pub fn is_retryable_later(&self) -> bool {
        match self {
            Error::Throttled { .. } | Error::Transient { .. } => true,
            Error::Token(token) => token.class == crate::oauth::TokenErrorClass::Transient,
            _ => false,
        }
    }

    /// True when polling must stop until an administrator reconnects the account.
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, Error::ReconnectRequired(_))
    }
}

impl From<TokenError> for Error {
    /// A dead grant, missing consent or required interaction all mean "reconnect"; anything else
    /// (outage, configuration) stays a plain token failure.
    fn from(error: TokenError) -> Self {
        use crate::oauth::TokenErrorClass;
        match error.class {
            TokenErrorClass::ReconnectRequired
            | TokenErrorClass::ConsentRequired
            | TokenErrorClass::InteractionRequired => Error::ReconnectRequired(Box::new(error)),
            TokenErrorClass::Configuration
            | TokenErrorClass::Transient
            | TokenErrorClass::Other => Error::Token(Box::new(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_request_id_and_the_next_step() {
        let error = Error::Throttled {
            retry_after: Some(Duration::from_millis(2128)),
            ids: RequestIds {
                request_id: Some("req-1".into()),
                client_request_id: None,
            },
        };
        let text = error.to_string();
        assert!(text.contains("2.128 s"), "{text}");
        assert!(text.contains("request-id req-1"), "{text}");
        assert!(text.contains("keep the cursor"), "{text}");
        assert_eq!(error.request_id(), Some("req-1"));
        assert!(error.is_retryable_later());
    }
}
