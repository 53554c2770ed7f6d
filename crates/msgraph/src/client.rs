//! `GraphClient`: the typed Microsoft Graph calls the Teams Chat Bridge needs, with paging,
//! retries, the 401 refresh path and error classification in one place.
//!
//! Rules this module enforces for every call:
//! * `Prefer: include-unknown-enum-members` is always sent;
//! * a bearer token is only ever sent to the configured Graph origin (foreign `@odata.nextLink`s
//!   and hosted-content URLs are refused before any request is made);
//! * `@odata.nextLink` is followed as received (no decoding or re-encoding of `%3d%3d`);
//! * 429/503/504 honour `Retry-After`, else capped exponential backoff with full jitter;
//!   401 → exactly one token refresh and one retry; other 4xx are final and typed;
//! * a POST whose outcome is unknown (timeout after sending, dropped connection, 5xx) is never
//!   retried: the caller gets [`Error::OutcomeUnknown`] and must reconcile.
//!
//! It knows nothing about tickets, cursors' storage or the database, and it must never log a
//! token or a query string (queries can carry skip tokens and user data).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;
use tracing::Instrument;
use url::Url;

use crate::error::{Error, RequestIds};
use crate::model::{
    Chat, ChatMessage, ConversationMember, ODataCollection, ODataError, Organization, SkippedItem,
    User, parse_items,
};
use crate::retry::{RetryPolicy, Sleeper, TokioSleeper, parse_retry_after};

/// Sent on every request so system events arrive as `systemEventMessage`, not
/// `unknownFutureValue`.
pub const PREFER_HEADER_VALUE: &str = "include-unknown-enum-members";

/// Graph's maximum `$top` for chats and chat messages.
pub const MAX_PAGE_SIZE: u32 = 50;

/// Where and how to call Graph.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// `https://graph.microsoft.com` or the simulator's base URL (`/v1.0` is appended unless the
    /// URL already ends with it).
    pub base_url: Url,
    /// Whole-request timeout (connect + send + read).
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub retry: RetryPolicy,
    /// Most pages one listing call will read before it reports itself incomplete.
    pub page_cap: u32,
}

impl GraphConfig {
    /// Sensible defaults for the given base URL.
    pub fn new(base_url: Url) -> Self {
        Self {
            base_url,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            page_cap: 20,
        }
    }
}

/// Supplies access tokens; the app implements it over its token vault.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A currently valid access token (refresh proactively if it is about to expire).
    async fn access_token(&self) -> Result<SecretString, Error>;

    /// Graph rejected `rejected` with 401: refresh (unless another task already did and the
    /// stored token differs) and return the new token. Called at most once per request.
    async fn refresh_after_unauthorized(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, Error>;
}

/// A fixed token, for tools and tests. A 401 cannot be repaired, so refreshing fails.
#[derive(Debug, Clone)]
pub struct StaticTokenSource(SecretString);

impl StaticTokenSource {
    pub fn new(token: SecretString) -> Self {
        Self(token)
    }
}

#[async_trait::async_trait]
impl TokenSource for StaticTokenSource {
    async fn access_token(&self) -> Result<SecretString, Error> {
        Ok(self.0.clone())
    }

    async fn refresh_after_unauthorized(
        &self,
        _rejected: &SecretString,
    ) -> Result<SecretString, Error> {
        Err(Error::TokenUnavailable {
            message: "a static token cannot be refreshed".to_owned(),
        })
    }
}

/// Why a listing stopped before Graph said it was finished. Cursors must not advance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncompleteReason {
    /// Graph returned an `@odata.nextLink` that was already followed (a known Graph bug).
    RepeatedNextLink,
    /// The configured page cap was reached.
    PageCapReached { pages: u32 },
}

/// One page of chats.
#[derive(Debug, Clone)]
pub struct ChatPage {
    pub chats: Vec<Chat>,
    /// Chats that could not be read (the rest of the page was kept).
    pub skipped: Vec<SkippedItem>,
}

/// Messages of one chat changed since a cursor, newest-modified first.
#[derive(Debug, Clone)]
pub struct MessagesListing {
    /// Deduplicated by id across pages (first occurrence kept).
    pub messages: Vec<ChatMessage>,
    /// Items that could not be read (bad timestamp, missing id, …).
    pub skipped: Vec<SkippedItem>,
    /// True only if Graph said "no more pages" (or the cursor was reached): only then may the
    /// caller advance its cursor.
    pub complete: bool,
    pub incomplete_reason: Option<IncompleteReason>,
    /// Graph rejected `$filter` and the listing fell back to unfiltered newest-first paging up to
    /// the cursor (field report B2).
    pub filter_fallback: bool,
    /// Pages read.
    pub pages: u32,
}

/// Members of one chat.
#[derive(Debug, Clone)]
pub struct MembersListing {
    pub members: Vec<ConversationMember>,
    pub skipped: Vec<SkippedItem>,
    pub complete: bool,
    pub incomplete_reason: Option<IncompleteReason>,
}

/// Which hosted content (pasted image) to download.
#[derive(Debug, Clone, Copy)]
pub enum HostedContentRef<'a> {
    /// The `src` of an `<img>` in a message body (`…/hostedContents/{id}/$value`).
    Url(&'a str),
    Ids {
        chat_id: &'a str,
        message_id: &'a str,
        hosted_content_id: &'a str,
    },
}

/// Downloaded hosted content.
#[derive(Debug, Clone)]
pub struct HostedContentBytes {
    pub bytes: Vec<u8>,
    /// The response's `Content-Type`, if any.
    pub content_type: Option<String>,
}

/// The Graph client. Cheap to clone (shares one connection pool).
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
    /// Where this handle counts its requests (see [`GraphClient::counting_into`]).
    counter: Option<Arc<RequestCounter>>,
    /// This handle's page cap, when it differs from the configuration's (see
    /// [`GraphClient::with_page_cap`]).
    page_cap: Option<u32>,
}

/// Counts the HTTP requests a [`GraphClient`] handle sends (every attempt, retries included) and
/// how many of them Graph answered with 429/503 (throttled). Shared by clones of the handle.
#[derive(Debug, Default)]
pub struct RequestCounter {
    requests: std::sync::atomic::AtomicU64,
    throttled: std::sync::atomic::AtomicU64,
}

impl RequestCounter {
    /// A counter at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests sent so far (each retry counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Answers that were 429 Too Many Requests or 503 Service Unavailable.
    pub fn throttled(&self) -> u64 {
        self.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn count_request(&self) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn count_throttled(&self) {
        self.throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

struct Inner {
    http: reqwest::Client,
    config: GraphConfig,
    /// `{base_url}/v1.0/`.
    api_root: Url,
    tokens: Arc<dyn TokenSource>,
    sleeper: Arc<dyn Sleeper>,
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient")
            .field("api_root", &self.inner.api_root.as_str())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A 2xx answer.
struct Success {
    headers: HeaderMap,
    body: Vec<u8>,
    ids: RequestIds,
}

/// Characters left readable in query values (OData syntax); everything else is
/// percent-encoded (spaces as `%20`, never `+`).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b'(')
    .remove(b')')
    .remove(b'\'');

/// `lastModifiedDateTime` cursor in the form Graph's examples use (UTC, milliseconds). Truncating
/// sub-millisecond precision only widens a `gt` filter, never narrows it.
pub fn format_filter_time(time: OffsetDateTime) -> String {
    let utc = time.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    )
}

/// The `$filter` for "changed after `cursor`". Only `gt` exists for this (Graph rejects `ge`/`le`
/// with "operationKind … is not allowed"), so this is the only place a filter is built.
pub fn messages_changed_after_filter(cursor: OffsetDateTime) -> String {
    format!("lastModifiedDateTime gt {}", format_filter_time(cursor))
}

impl GraphClient {
    /// Builds a client that sleeps with tokio between retries.
    pub fn new(config: GraphConfig, token_source: Arc<dyn TokenSource>) -> Result<Self, Error> {
        Self::with_sleeper(config, token_source, Arc::new(TokioSleeper))
    }

    /// Builds a client with an injected [`Sleeper`] (tests record waits instead of sleeping).
    pub fn with_sleeper(
        config: GraphConfig,
        token_source: Arc<dyn TokenSource>,
        sleeper: Arc<dyn Sleeper>,
    ) -> Result<Self, Error> {
        if !matches!(config.base_url.scheme(), "http" | "https")
            || config.base_url.cannot_be_a_base()
        {
            return Err(Error::InvalidInput(format!(
                "the Graph URL {} must be an http(s) URL",
                config.base_url
            )));
        }
        let mut api_root = config.base_url.clone();
        api_root.set_query(None);
        api_root.set_fragment(None);
        if !api_root.path().ends_with('/') {
            let path = format!("{}/", api_root.path());
            api_root.set_path(&path);
        }
        if !api_root.path().ends_with("/v1.0/") {
            api_root = api_root
                .join("v1.0/")
                .map_err(|error| Error::InvalidInput(format!("bad Graph URL: {error}")))?;
        }
        let mut default_headers = HeaderMap::new();
        default_headers.insert("Prefer", HeaderValue::from_static(PREFER_HEADER_VALUE));
        default_headers.insert(
            reqwest::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .default_headers(default_headers)
            // Never carry the bearer token through a redirect to somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("regentra-msgraph/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| {
                Error::InvalidInput(format!("could not build the Graph HTTP client: {error}"))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                config,
                api_root,
                tokens: token_source,
                sleeper,
            }),
            counter: None,
            page_cap: None,
        })
    }

    /// A handle on the same client (same connection pool and token source) that counts every
    /// request it sends into `counter` — e.g. one poll cycle's Graph requests and throttles.
    pub fn counting_into(&self, counter: Arc<RequestCounter>) -> GraphClient {
        GraphClient {
            counter: Some(counter),
            ..self.clone()
        }
    }

    /// A handle on the same client whose listings read at most `pages` pages before reporting
    /// themselves incomplete — for a caller whose own stop condition (a watermark) bounds the
    /// paging and that must be able to get past a large backlog.
    pub fn with_page_cap(&self, pages: u32) -> GraphClient {
        GraphClient {
            page_cap: Some(pages.max(1)),
            ..self.clone()
        }
    }

    fn page_cap(&self) -> u32 {
        self.page_cap.unwrap_or(self.inner.config.page_cap)
    }

    /// The configuration in use.
    pub fn config(&self) -> &GraphConfig {
        &self.inner.config
    }

    /// `GET /v1.0/me`: the connected support user.
    pub async fn me(&self) -> Result<User, Error> {
        let url = self.api_url(&["me"], &[]);
        self.get_json(url).await
    }

    /// `GET /v1.0/organization`: the connected user's tenant (id + verified domains).
    pub async fn organization(&self) -> Result<Organization, Error> {
        let url = self.api_url(&["organization"], &[]);
        let success = self.execute(Method::GET, url, None).await?;
        let page: ODataCollection<Organization> = parse_body(&success)?;
        page.value
            .into_iter()
            .next()
            .ok_or_else(|| Error::BadResponse {
                detail: "the organization list was empty".to_owned(),
                ids: success.ids.clone(),
            })
    }

    /// `GET /v1.0/chats/{id}`.
    pub async fn get_chat(&self, chat_id: &str) -> Result<Chat, Error> {
        let url = self.api_url(&["chats", chat_id], &[]);
        let success = self.execute(Method::GET, url, None).await?;
        let raw: Value = parse_body(&success)?;
        Chat::from_json(raw).map_err(|error| Error::BadResponse {
            detail: format!("the chat could not be read: {error}"),
            ids: success.ids.clone(),
        })
    }

    /// The support user's chats, most recent message first
    /// (`$expand=lastMessagePreview&$orderby=lastMessagePreview/createdDateTime desc&$top=50`).
    /// Pages are fetched lazily so the caller can stop at its watermark.
    pub fn list_chats_by_recent_activity(&self) -> ChatPager {
        let url = self.api_url(
            &["me", "chats"],
            &[
                ("$expand", "lastMessagePreview".to_owned()),
                (
                    "$orderby",
                    "lastMessagePreview/createdDateTime desc".to_owned(),
                ),
                ("$top", MAX_PAGE_SIZE.to_string()),
            ],
        );
        ChatPager {
            client: self.clone(),
            walker: PageWalker::new(url, self.page_cap()),
        }
    }

    /// Messages of `chat_id` modified after `cursor` (all of them if `None`), newest-modified
    /// first, every page followed. Subtract your overlap from the cursor before calling.
    ///
    /// If Graph rejects the `$filter` with 400, falls back once to unfiltered newest-first paging
    /// and stops at the first message at or before the cursor (`filter_fallback` says so).
    pub async fn list_messages_since(
        &self,
        chat_id: &str,
        cursor: Option<OffsetDateTime>,
    ) -> Result<MessagesListing, Error> {
        match self.read_messages(chat_id, cursor, true).await {
            Err(Error::BadRequest { code, message, ids }) if cursor.is_some() => {
                tracing::warn!(
                    chat.id = chat_id,
                    graph.request_id = ids.request_id.as_deref().unwrap_or(""),
                    graph.error_code = %code,
                    graph.error_message = %message,
                    "Graph rejected the $filter on chat messages; reading newest-first without it up to the cursor"
                );
                self.read_messages(chat_id, cursor, false).await
            }
            other => other,
        }
    }

    async fn read_messages(
        &self,
        chat_id: &str,
        cursor: Option<OffsetDateTime>,
        use_filter: bool,
    ) -> Result<MessagesListing, Error> {
        let mut query = vec![
            ("$top", MAX_PAGE_SIZE.to_string()),
            ("$orderby", "lastModifiedDateTime desc".to_owned()),
        ];
        if let (Some(cursor), true) = (cursor, use_filter) {
            query.push(("$filter", messages_changed_after_filter(cursor)));
        }
        let url = self.api_url(&["chats", chat_id, "messages"], &query);
        let mut walker = PageWalker::new(url, self.page_cap());
        let mut listing = MessagesListing {
            messages: Vec::new(),
            skipped: Vec::new(),
            complete: false,
            incomplete_reason: None,
            filter_fallback: !use_filter && cursor.is_some(),
            pages: 0,
        };
        let mut seen_ids = HashSet::new();
        let mut reached_cursor = false;
        while let Some(page) = walker.fetch_next(self).await? {
            let (messages, skipped) = parse_items(page.value, ChatMessage::from_json);
            listing.skipped.extend(skipped);
            for message in messages {
                if !use_filter
                    && let (Some(cursor), Some(modified)) =
                        (cursor, message.last_modified_date_time)
                    && modified <= cursor
                {
                    // Newest-modified first: everything from here on is already known.
                    reached_cursor = true;
                    break;
                }
                if seen_ids.insert(message.id.clone()) {
                    listing.messages.push(message);
                }
            }
            if reached_cursor {
                break;
            }
        }
        listing.pages = walker.pages;
        listing.complete = reached_cursor || walker.is_complete();
        listing.incomplete_reason = if listing.complete {
            None
        } else {
            walker.incomplete_reason()
        };
        Ok(listing)
    }

    /// `GET /v1.0/chats/{chat}/messages/{id}`.
    pub async fn get_message(&self, chat_id: &str, message_id: &str) -> Result<ChatMessage, Error> {
        let url = self.api_url(&["chats", chat_id, "messages", message_id], &[]);
        let success = self.execute(Method::GET, url, None).await?;
        let raw: Value = parse_body(&success)?;
        ChatMessage::from_json(raw).map_err(|error| Error::BadResponse {
            detail: format!("the message could not be read: {error}"),
            ids: success.ids.clone(),
        })
    }

    /// Downloads a pasted image (`…/hostedContents/{id}/$value`). A URL must point at the
    /// configured Graph origin, or it is refused without sending the token.
    pub async fn get_hosted_content(
        &self,
        reference: HostedContentRef<'_>,
    ) -> Result<HostedContentBytes, Error> {
        let url = match reference {
            HostedContentRef::Url(text) => {
                let url = Url::parse(text).map_err(|error| {
                    Error::InvalidInput(format!("hosted content URL {text:?}: {error}"))
                })?;
                if url.origin() != self.inner.api_root.origin() {
                    return Err(Error::ForeignUrl {
                        link_origin: url.origin().ascii_serialization(),
                        expected_origin: self.inner.api_root.origin().ascii_serialization(),
                    });
                }
                url
            }
            HostedContentRef::Ids {
                chat_id,
                message_id,
                hosted_content_id,
            } => self.api_url(
                &[
                    "chats",
                    chat_id,
                    "messages",
                    message_id,
                    "hostedContents",
                    hosted_content_id,
                    "$value",
                ],
                &[],
            ),
        };
        let success = self.execute(Method::GET, url, None).await?;
        let content_type = success
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        Ok(HostedContentBytes {
            bytes: success.body,
            content_type,
        })
    }

    /// `POST /v1.0/chats/{chat}/messages` with an HTML body (already escaped by the caller).
    /// Never retried on an unknown outcome: see [`Error::OutcomeUnknown`].
    pub async fn send_message(&self, chat_id: &str, html: &str) -> Result<ChatMessage, Error> {
        let url = self.api_url(&["chats", chat_id, "messages"], &[]);
        let body = serde_json::json!({ "body": { "contentType": "html", "content": html } });
        let path = url.path().to_owned();
        let success = self.execute(Method::POST, url, Some(&body)).await?;
        let parsed = serde_json::from_slice::<Value>(&success.body)
            .map_err(|error| error.to_string())
            .and_then(|raw| ChatMessage::from_json(raw).map_err(|error| error.to_string()));
        parsed.map_err(|detail| Error::OutcomeUnknown {
            method: "POST".to_owned(),
            path,
            detail: format!("Graph accepted the message but its answer could not be read ({detail}); it is probably in the chat"),
            ids: success.ids.clone(),
        })
    }

    /// `GET /v1.0/chats/{chat}/members`, every page.
    pub async fn list_chat_members(&self, chat_id: &str) -> Result<MembersListing, Error> {
        let url = self.api_url(&["chats", chat_id, "members"], &[]);
        let mut walker = PageWalker::new(url, self.page_cap());
        let mut listing = MembersListing {
            members: Vec::new(),
            skipped: Vec::new(),
            complete: false,
            incomplete_reason: None,
        };
        while let Some(page) = walker.fetch_next(self).await? {
            let (members, skipped) =
                parse_items(page.value, serde_json::from_value::<ConversationMember>);
            listing.members.extend(members);
            listing.skipped.extend(skipped);
        }
        listing.complete = walker.is_complete();
        listing.incomplete_reason = walker.incomplete_reason();
        Ok(listing)
    }

    /// `{api_root}/seg/seg?query` with path segments escaped and query values percent-encoded.
    fn api_url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.inner.api_root.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            // `api_root` is an http(s) base URL (checked in `with_sleeper`), so this branch is
            // always taken.
            path.pop_if_empty().extend(segments);
        }
        if !query.is_empty() {
            let text = query
                .iter()
                .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, QUERY_VALUE)))
                .collect::<Vec<_>>()
                .join("&");
            url.set_query(Some(&text));
        }
        url
    }

    /// Resolves an `@odata.nextLink` as received, refusing other origins.
    fn next_link_url(&self, link: &str) -> Result<Url, Error> {
        let url = self
            .inner
            .api_root
            .join(link)
            .map_err(|error| Error::BadResponse {
                detail: format!("the @odata.nextLink is not a URL: {error}"),
                ids: RequestIds::default(),
            })?;
        if url.origin() != self.inner.api_root.origin() {
            return Err(Error::ForeignNextLink {
                link_origin: url.origin().ascii_serialization(),
                expected_origin: self.inner.api_root.origin().ascii_serialization(),
            });
        }
        Ok(url)
    }

    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<T, Error> {
        let success = self.execute(Method::GET, url, None).await?;
        parse_body(&success)
    }

    async fn get_collection(&self, url: Url) -> Result<ODataCollection<Value>, Error> {
        self.get_json(url).await
    }

    /// Sends one logical request through the retry policy and the 401 refresh path.
    async fn execute(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Success, Error> {
        let span = tracing::info_span!(
            "graph.call",
            http.method = %method,
            url.path = url.path(),
            http.status = tracing::field::Empty,
            graph.request_id = tracing::field::Empty,
            attempts = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = self
            .execute_with_retries(&method, &url, body)
            .instrument(span.clone())
            .await;
        span.record("duration_ms", started.elapsed().as_millis() as u64);
        result
    }

    async fn execute_with_retries(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Success, Error> {
        let span = tracing::Span::current();
        let policy = &self.inner.config.retry;
        let repeatable = *method == Method::GET;
        let mut token = self.inner.tokens.access_token().await?;
        let mut refreshed = false;
        let mut retries: u32 = 0;
        let mut attempts: u32 = 0;
        loop {
            attempts += 1;
            span.record("attempts", attempts);
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.expose_secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            let attempt_started = Instant::now();
            if let Some(counter) = &self.counter {
                counter.count_request();
            }
            let outcome = request.send().await;
            let response = match outcome {
                Ok(response) => response,
                Err(error) => {
                    let sent = !error.is_connect();
                    let detail = describe_transport_error(&error);
                    tracing::debug!(duration_ms = attempt_started.elapsed().as_millis() as u64, %detail, "Graph request failed in transit");
                    if sent && !repeatable {
                        return Err(self.outcome_unknown(
                            method,
                            url,
                            detail,
                            RequestIds::default(),
                        ));
                    }
                    if retries + 1 < policy.max_attempts {
                        let delay = policy.backoff_delay(retries, &mut rand::rng());
                        retries += 1;
                        self.inner.sleeper.sleep(delay).await;
                        continue;
                    }
                    return Err(Error::Transient {
                        status: None,
                        detail,
                        ids: RequestIds::default(),
                    });
                }
            };
            let status = response.status();
            let headers = response.headers().clone();
            let mut ids = ids_from_headers(&headers);
            span.record("http.status", status.as_u16());
            if let Some(request_id) = &ids.request_id {
                span.record("graph.request_id", request_id.as_str());
            }
            let body_bytes = match response.bytes().await {
                Ok(bytes) => bytes.to_vec(),
                Err(error) => {
                    let detail = format!(
                        "the answer ({status}) was cut off: {}",
                        describe_transport_error(&error)
                    );
                    if !repeatable {
                        return Err(self.outcome_unknown(method, url, detail, ids));
                    }
                    if retries + 1 < policy.max_attempts {
                        let delay = policy.backoff_delay(retries, &mut rand::rng());
                        retries += 1;
                        self.inner.sleeper.sleep(delay).await;
                        continue;
                    }
                    return Err(Error::Transient {
                        status: Some(status.as_u16()),
                        detail,
                        ids,
                    });
                }
            };
            tracing::debug!(
                http.status = status.as_u16(),
                graph.request_id = ids.request_id.as_deref().unwrap_or(""),
                duration_ms = attempt_started.elapsed().as_millis() as u64,
                "Graph answered"
            );
            if status.is_success() {
                return Ok(Success {
                    headers,
                    body: body_bytes,
                    ids,
                });
            }
            let odata = serde_json::from_slice::<ODataError>(&body_bytes)
                .ok()
                .map(|e| e.error);
            if let Some(inner) = odata.as_ref().and_then(|e| e.inner_error.as_ref()) {
                if ids.request_id.is_none() {
                    ids.request_id = inner.request_id.clone();
                }
                if ids.client_request_id.is_none() {
                    ids.client_request_id = inner.client_request_id.clone();
                }
            }
            let (code, message) = match odata {
                Some(detail) => (detail.code, detail.message),
                None => (
                    status
                        .canonical_reason()
                        .unwrap_or("Unknown")
                        .replace(' ', ""),
                    format!("HTTP {status} without an OData error body"),
                ),
            };
            match status {
                StatusCode::UNAUTHORIZED if !refreshed => {
                    refreshed = true;
                    tracing::info!(
                        graph.request_id = ids.request_id.as_deref().unwrap_or(""),
                        "Graph rejected the access token; refreshing once"
                    );
                    token = self.inner.tokens.refresh_after_unauthorized(&token).await?;
                    continue;
                }
                StatusCode::UNAUTHORIZED => return Err(Error::Unauthorized { code, message, ids }),
                StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
                | StatusCode::GATEWAY_TIMEOUT => {
                    let throttled = status == StatusCode::TOO_MANY_REQUESTS;
                    if let Some(counter) = &self.counter
                        && status != StatusCode::GATEWAY_TIMEOUT
                    {
                        counter.count_throttled();
                    }
                    // A throttled request was not processed, so even a POST may be repeated;
                    // a 503/504 on a POST may have been processed.
                    if !throttled && !repeatable {
                        return Err(self.outcome_unknown(
                            method,
                            url,
                            format!("Graph answered {status}"),
                            ids,
                        ));
                    }
                    let retry_after = headers
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| parse_retry_after(value, OffsetDateTime::now_utc()));
                    let give_up = retries + 1 >= policy.max_attempts
                        || retry_after.is_some_and(|wait| wait > policy.max_retry_after);
                    if give_up {
                        return Err(if throttled {
                            Error::Throttled { retry_after, ids }
                        } else {
                            Error::Transient {
                                status: Some(status.as_u16()),
                                detail: format!("{code}: {message}"),
                                ids,
                            }
                        });
                    }
                    let delay = retry_after
                        .unwrap_or_else(|| policy.backoff_delay(retries, &mut rand::rng()));
                    tracing::info!(
                        http.status = status.as_u16(),
                        graph.request_id = ids.request_id.as_deref().unwrap_or(""),
                        delay_ms = delay.as_millis() as u64,
                        retry_after_given = retry_after.is_some(),
                        "Graph asked us to slow down; waiting before retrying"
                    );
                    retries += 1;
                    self.inner.sleeper.sleep(delay).await;
                }
                status if status.is_server_error() => {
                    if !repeatable {
                        return Err(self.outcome_unknown(
                            method,
                            url,
                            format!("Graph answered {status}"),
                            ids,
                        ));
                    }
                    if retries + 1 >= policy.max_attempts {
                        return Err(Error::Transient {
                            status: Some(status.as_u16()),
                            detail: format!("{code}: {message}"),
                            ids,
                        });
                    }
                    let delay = policy.backoff_delay(retries, &mut rand::rng());
                    retries += 1;
                    self.inner.sleeper.sleep(delay).await;
                }
                StatusCode::FORBIDDEN => return Err(Error::Forbidden { code, message, ids }),
                StatusCode::NOT_FOUND => return Err(Error::NotFound { code, message, ids }),
                StatusCode::BAD_REQUEST => return Err(Error::BadRequest { code, message, ids }),
                StatusCode::PAYLOAD_TOO_LARGE => return Err(Error::PayloadTooLarge { ids }),
                other => {
                    return Err(Error::Rejected {
                        status: other.as_u16(),
                        code,
                        message,
                        ids,
                    });
                }
            }
        }
    }

    fn outcome_unknown(
        &self,
        method: &Method,
        url: &Url,
        detail: String,
        ids: RequestIds,
    ) -> Error {
        Error::OutcomeUnknown {
            method: method.to_string(),
            path: url.path().to_owned(),
            detail,
            ids,
        }
    }
}

fn parse_body<T: DeserializeOwned>(success: &Success) -> Result<T, Error> {
    serde_json::from_slice(&success.body).map_err(|error| Error::BadResponse {
        detail: format!("unexpected JSON: {error}"),
        ids: success.ids.clone(),
    })
}

fn ids_from_headers(headers: &HeaderMap) -> RequestIds {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    RequestIds {
        request_id: text("request-id"),
        client_request_id: text("client-request-id"),
    }
}

/// reqwest's message without the URL (the URL's query can carry skip tokens).
fn describe_transport_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the body could not be read"
    } else {
        "network error"
    };
    let mut source = std::error::Error::source(error);
    let mut causes = Vec::new();
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

/// Follows `@odata.nextLink`s with the guards: same origin only, stop on a repeated link or at
/// the page cap (reported as incomplete), retry a nextLink that answers 400 once.
struct PageWalker {
    next: Option<Url>,
    followed: HashSet<String>,
    pages: u32,
    cap: u32,
    finished: bool,
    incomplete: Option<IncompleteReason>,
}

impl PageWalker {
    fn new(first: Url, cap: u32) -> Self {
        let mut followed = HashSet::new();
        followed.insert(first.as_str().to_owned());
        Self {
            next: Some(first),
            followed,
            pages: 0,
            cap: cap.max(1),
            finished: false,
            incomplete: None,
        }
    }

    fn is_complete(&self) -> bool {
        self.finished && self.incomplete.is_none()
    }

    fn incomplete_reason(&self) -> Option<IncompleteReason> {
        self.incomplete.clone()
    }

    async fn fetch_next(
        &mut self,
        client: &GraphClient,
    ) -> Result<Option<ODataCollection<Value>>, Error> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        if self.pages >= self.cap {
            tracing::warn!(
                pages = self.pages,
                "page cap reached; the listing is incomplete"
            );
            self.incomplete = Some(IncompleteReason::PageCapReached { pages: self.pages });
            return Ok(None);
        }
        let is_next_link = self.pages > 0;
        let page = match client.get_collection(url.clone()).await {
            // Field report B7: a nextLink can answer 400 once; try it exactly once more.
            Err(Error::BadRequest { ids, .. }) if is_next_link => {
                tracing::warn!(
                    graph.request_id = ids.request_id.as_deref().unwrap_or(""),
                    "a paging link answered 400; retrying it once"
                );
                client.get_collection(url).await?
            }
            other => other?,
        };
        self.pages += 1;
        match page.next_link.as_deref() {
            None => self.finished = true,
            Some(link) => {
                let next = client.next_link_url(link)?;
                if self.followed.insert(next.as_str().to_owned()) {
                    self.next = Some(next);
                } else {
                    tracing::warn!(
                        pages = self.pages,
                        "Graph repeated a paging link; stopping, the listing is incomplete"
                    );
                    self.incomplete = Some(IncompleteReason::RepeatedNextLink);
                }
            }
        }
        Ok(Some(page))
    }
}

/// Lazily pages through the support user's chats.
pub struct ChatPager {
    client: GraphClient,
    walker: PageWalker,
}

impl ChatPager {
    /// The next non-empty page, or `None` when paging ended (check [`ChatPager::is_complete`]).
    /// Empty pages in the middle are skipped, not treated as the end.
    pub async fn next_page(&mut self) -> Result<Option<ChatPage>, Error> {
        while let Some(page) = self.walker.fetch_next(&self.client).await? {
            let (chats, skipped) = parse_items(page.value, Chat::from_json);
            if chats.is_empty() && skipped.is_empty() {
                continue;
            }
            return Ok(Some(ChatPage { chats, skipped }));
        }
        Ok(None)
    }

    /// True once Graph said there are no more pages (false if the caller stopped early, the page
    /// cap was hit, or a link repeated).
    pub fn is_complete(&self) -> bool {
        self.walker.is_complete()
    }

    /// Why paging stopped early, if it did.
    pub fn incomplete_reason(&self) -> Option<IncompleteReason> {
        self.walker.incomplete_reason()
    }

    /// Pages fetched so far.
    pub fn pages_fetched(&self) -> u32 {
        self.walker.pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> GraphClient {
        GraphClient::new(
            GraphConfig::new(Url::parse(base).unwrap()),
            Arc::new(StaticTokenSource::new(SecretString::from("t"))),
        )
        .unwrap()
    }

    #[test]
    fn filter_only_ever_uses_gt() {
        let cursor = time::macros::datetime!(2023-01-15 17:16:32.057123 +02:00);
        let filter = messages_changed_after_filter(cursor);
        assert_eq!(filter, "lastModifiedDateTime gt 2023-01-15T15:16:32.057Z");
        for forbidden in [" ge ", " le ", " eq ", " lt "] {
            assert!(!filter.contains(forbidden));
        }
    }

    proptest::proptest! {
        /// Field report B3: whatever the cursor (any offset, any precision), the filter is a
        /// single `gt` on lastModifiedDateTime and never `ge`/`le`.
        #[test]
        fn filter_never_uses_ge_or_le(seconds in 0i64..4_102_444_800, nanos in 0u32..1_000_000_000, offset_minutes in -720i32..=840) {
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let cursor = OffsetDateTime::from_unix_timestamp(seconds).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(offset);
            let filter = messages_changed_after_filter(cursor);
            let words: Vec<&str> = filter.split(' ').collect();
            proptest::prop_assert_eq!(words.len(), 3);
            proptest::prop_assert_eq!(words[0], "lastModifiedDateTime");
            proptest::prop_assert_eq!(words[1], "gt");
            let parsed = OffsetDateTime::parse(words[2], &time::format_description::well_known::Rfc3339).unwrap();
            // Truncated to milliseconds, never later than the cursor.
            proptest::prop_assert!(parsed <= cursor && cursor - parsed < time::Duration::milliseconds(1));
        }
    }

    #[test]
    fn messages_url_encodes_spaces_as_percent_20_and_keeps_odata_syntax() {
        let client = client("https://graph.example.test");
        let url = client.api_url(
            &["chats", "19:abc@thread.v2", "messages"],
            &[(
                "$filter",
                "lastModifiedDateTime gt 2023-01-15T15:16:32.057Z".into(),
            )],
        );
        assert_eq!(
            url.as_str(),
            "https://graph.example.test/v1.0/chats/19:abc@thread.v2/messages?$filter=lastModifiedDateTime%20gt%202023-01-15T15:16:32.057Z"
        );
    }

    #[test]
    fn base_url_with_or_without_version_and_prefix() {
        assert_eq!(
            client("https://g.test").inner.api_root.as_str(),
            "https://g.test/v1.0/"
        );
        assert_eq!(
            client("https://g.test/v1.0").inner.api_root.as_str(),
            "https://g.test/v1.0/"
        );
        assert_eq!(
            client("http://127.0.0.1:9/graph/").inner.api_root.as_str(),
            "http://127.0.0.1:9/graph/v1.0/"
        );
    }

    #[test]
    fn next_links_keep_their_encoding_and_must_share_the_origin() {
        let client = client("https://graph.example.test");
        let link = "https://graph.example.test/v1.0/chats/19:a@thread.v2/messages?$skiptoken=M2Ux%3d%3d&$filter=lastModifiedDateTime gt 2022";
        let url = client.next_link_url(link).unwrap();
        assert!(url.as_str().contains("M2Ux%3d%3d"), "{url}");
        assert!(
            url.as_str().contains("lastModifiedDateTime%20gt%202022"),
            "{url}"
        );
        let foreign = client.next_link_url("https://evil.example.test/v1.0/chats?$skiptoken=x");
        assert!(matches!(foreign, Err(Error::ForeignNextLink { .. })));
        let other_port = client.next_link_url("https://graph.example.test:8443/v1.0/chats");
        assert!(matches!(other_port, Err(Error::ForeignNextLink { .. })));
    }
}
