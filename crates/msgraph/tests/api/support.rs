//! Shared helpers: a Graph client pointed at a wiremock server, a token source that counts
//! refreshes, and a sleeper that records waits instead of sleeping.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use msgraph::{Error, GraphClient, GraphConfig, RetryPolicy, Sleeper, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use url::Url;
use wiremock::MockServer;

/// Records every wait the retry policy asks for; never actually sleeps.
#[derive(Debug, Default)]
pub struct RecordingSleeper {
    pub waits: Mutex<Vec<Duration>>,
}

impl RecordingSleeper {
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl Sleeper for RecordingSleeper {
    async fn sleep(&self, duration: Duration) {
        self.waits.lock().unwrap().push(duration);
    }
}

/// Hands out `token-1`; a refresh hands out `token-2` (or fails if told to).
#[derive(Debug, Default)]
pub struct CountingTokens {
    pub refreshes: AtomicUsize,
    pub refused_with: Mutex<Option<msgraph::oauth::TokenError>>,
    pub rejected_seen: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl TokenSource for CountingTokens {
    async fn access_token(&self) -> Result<SecretString, Error> {
        Ok(SecretString::from("token-1"))
    }

    async fn refresh_after_unauthorized(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, Error> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        self.rejected_seen
            .lock()
            .unwrap()
            .push(rejected.expose_secret().to_owned());
        if let Some(error) = self.refused_with.lock().unwrap().clone() {
            return Err(error.into());
        }
        Ok(SecretString::from("token-2"))
    }
}

/// A wiremock "Graph" plus a client pointed at it.
pub struct FakeGraph {
    pub server: MockServer,
    pub client: GraphClient,
    pub sleeper: Arc<RecordingSleeper>,
    pub tokens: Arc<CountingTokens>,
}

pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
        max_retry_after: Duration::from_secs(30),
    }
}

impl FakeGraph {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut GraphConfig)) -> Self {
        let server = MockServer::start().await;
        let mut config = GraphConfig::new(Url::parse(&server.uri()).unwrap());
        config.retry = fast_policy();
        config.timeout = Duration::from_secs(10);
        adjust(&mut config);
        let sleeper = Arc::new(RecordingSleeper::default());
        let tokens = Arc::new(CountingTokens::default());
        let client = GraphClient::with_sleeper(config, tokens.clone(), sleeper.clone()).unwrap();
        Self {
            server,
            client,
            sleeper,
            tokens,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.server.uri(), path_and_query)
    }

    pub async fn requests(&self) -> Vec<wiremock::Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    pub fn refreshes(&self) -> usize {
        self.tokens.refreshes.load(Ordering::SeqCst)
    }
}

/// A minimal valid chat message.
pub fn message(id: &str, modified: &str) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "messageType": "message",
        "createdDateTime": modified,
        "lastModifiedDateTime": modified,
        "from": {"user": {"id": "u1", "displayName": "Pat Client", "userIdentityType": "aadUser"}},
        "body": {"contentType": "text", "content": format!("message {id}")}
    })
}

/// A Graph collection page.
pub fn page(values: Vec<serde_json::Value>, next_link: Option<&str>) -> serde_json::Value {
    let mut page = serde_json::json!({ "value": values });
    if let Some(link) = next_link {
        page["@odata.nextLink"] = serde_json::Value::String(link.to_owned());
    }
    page
}

/// The OData error body Graph sends.
pub fn odata_error(code: &str, message: &str, request_id: &str) -> serde_json::Value {
    serde_json::json!({"error": {"code": code, "message": message,
        "innerError": {"date": "2025-03-02T14:05:13", "request-id": request_id, "client-request-id": request_id}}})
}
