//! End-to-end runs of the real client against the Microsoft 365 simulator: sign-in with code +
//! PKCE through the simulator's HTML forms, refresh rotation, Graph reads and a send, the 401
//! refresh path on an expired token, scripted faults, and a revoked grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use m365_sim::{
    ClockStart, RunningSimulator, SimConfig, Simulator, ThrottleLimits, UserPost, demo,
};
use msgraph::oauth::{OAuthClient, OAuthConfig, TokenErrorClass, TokenSet};
use msgraph::{Error, GraphClient, GraphConfig, TokenSource};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::support::{RecordingSleeper, fast_policy};

const REDIRECT_URI: &str = "http://127.0.0.1:9/integrations/teams/callback";
const SCOPES: &str =
    "openid profile offline_access User.Read Chat.Read ChatMessage.Read ChatMessage.Send";

async fn start_simulator() -> RunningSimulator {
    let config = SimConfig {
        clock: ClockStart::FrozenAt(time::macros::datetime!(2026-03-02 09:00:00 UTC)),
        access_token_lifetime_secs: 3600..=3600,
        throttling: ThrottleLimits::disabled(),
        ..SimConfig::default()
    };
    Simulator::start(config, demo::demo_scenario(REDIRECT_URI))
        .await
        .expect("simulator starts")
}

fn oauth_client(simulator: &RunningSimulator) -> OAuthClient {
    OAuthClient::new(OAuthConfig {
        authority: simulator.base_url(),
        tenant: demo::MSP_TENANT_ID.into(),
        client_id: demo::REGENTRA_CLIENT_ID.into(),
        client_secret: SecretString::from(demo::REGENTRA_CLIENT_SECRET),
        redirect_uri: Url::parse(REDIRECT_URI).unwrap(),
        scopes: SCOPES.split(' ').map(str::to_owned).collect(),
    })
    .unwrap()
}

/// `(action, flow)` of the form `form_id` on a simulator page.
fn form_fields(html: &str, form_id: &str) -> (String, String) {
    let document = scraper::Html::parse_document(html);
    let form = scraper::Selector::parse(&format!("#{form_id}")).unwrap();
    let flow = scraper::Selector::parse(&format!("#{form_id} input[name=flow]")).unwrap();
    let action = document
        .select(&form)
        .next()
        .expect("form")
        .value()
        .attr("action")
        .unwrap()
        .to_owned();
    let flow = document
        .select(&flow)
        .next()
        .expect("flow field")
        .value()
        .attr("value")
        .unwrap()
        .to_owned();
    (action, flow)
}

/// Signs the support user in through the simulator's pages, as a browser would, and redeems the
/// code with the PKCE verifier.
async fn connect(simulator: &RunningSimulator, oauth: &OAuthClient) -> TokenSet {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = simulator.base_url();
    let authorize = oauth.authorize_url(Some(demo::SUPPORT_UPN), None);
    let sign_in = browser.get(authorize.url.clone()).send().await.unwrap();
    assert_eq!(sign_in.status(), 200, "the sign-in page is shown");
    let (action, flow) = form_fields(&sign_in.text().await.unwrap(), "signin-form");
    let mut answer = browser
        .post(base.join(&action).unwrap())
        .form(&[("flow", flow.as_str()), ("login", demo::SUPPORT_UPN)])
        .send()
        .await
        .unwrap();
    if answer.status() == 200 {
        let (action, flow) = form_fields(&answer.text().await.unwrap(), "consent-form");
        answer = browser
            .post(base.join(&action).unwrap())
            .form(&[("flow", flow.as_str()), ("action", "accept")])
            .send()
            .await
            .unwrap();
    }
    assert_eq!(answer.status(), 302);
    let location = Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(REDIRECT_URI));
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(
        param("state").as_deref(),
        Some(authorize.state.as_str()),
        "state comes back unchanged"
    );
    let code = param("code").expect("an authorization code");
    oauth
        .redeem_code(&SecretString::from(code), &authorize.pkce_verifier)
        .await
        .unwrap()
}

/// What the app's vault does: hand out the stored access token, refresh on 401 and keep the
/// newest refresh token.
struct Vault {
    oauth: OAuthClient,
    tokens: tokio::sync::Mutex<TokenSet>,
    refreshes: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenSource for Vault {
    async fn access_token(&self) -> Result<SecretString, Error> {
        Ok(self.tokens.lock().await.access_token.clone())
    }

    async fn refresh_after_unauthorized(
        &self,
        rejected: &SecretString,
    ) -> Result<SecretString, Error> {
        let mut tokens = self.tokens.lock().await;
        if tokens.access_token.expose_secret() != rejected.expose_secret() {
            return Ok(tokens.access_token.clone());
        }
        let refresh_token =
            tokens
                .refresh_token
                .clone()
                .ok_or_else(|| Error::TokenUnavailable {
                    message: "no refresh token".into(),
                })?;
        *tokens = self.oauth.refresh(&refresh_token).await?;
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(tokens.access_token.clone())
    }
}

async fn graph_client(
    simulator: &RunningSimulator,
    vault: Arc<Vault>,
) -> (GraphClient, Arc<RecordingSleeper>) {
    let mut config = GraphConfig::new(simulator.base_url());
    config.retry = fast_policy();
    let sleeper = Arc::new(RecordingSleeper::default());
    (
        GraphClient::with_sleeper(config, vault, sleeper.clone()).unwrap(),
        sleeper,
    )
}

async fn connected() -> (
    RunningSimulator,
    Arc<Vault>,
    GraphClient,
    Arc<RecordingSleeper>,
) {
    let simulator = start_simulator().await;
    let oauth = oauth_client(&simulator);
    let tokens = connect(&simulator, &oauth).await;
    let vault = Arc::new(Vault {
        oauth,
        tokens: tokio::sync::Mutex::new(tokens),
        refreshes: AtomicUsize::new(0),
    });
    let (client, sleeper) = graph_client(&simulator, vault.clone()).await;
    (simulator, vault, client, sleeper)
}

#[tokio::test]
async fn connect_read_chats_and_messages_then_reply() {
    let (simulator, _vault, graph, _sleeper) = connected().await;

    let me = graph.me().await.unwrap();
    assert_eq!(me.id, demo::SUPPORT_USER_ID);
    let organization = graph.organization().await.unwrap();
    assert_eq!(organization.id, demo::MSP_TENANT_ID);
    assert!(
        organization
            .verified_domains
            .iter()
            .any(|d| d.name.as_deref() == Some(demo::MSP_DOMAIN))
    );

    let (_, chat) = simulator
        .sim()
        .create_chat(
            "oneOnOne",
            &[demo::SUPPORT_USER_ID.into(), demo::CONTOSO_USER_1_ID.into()],
            None,
        )
        .unwrap();
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    simulator
        .sim()
        .post_as_user(
            &chat_id,
            demo::CONTOSO_USER_1_ID,
            UserPost::Html("<p>Printer is down again</p>".into()),
        )
        .unwrap();

    let mut pager = graph.list_chats_by_recent_activity();
    let page = pager.next_page().await.unwrap().expect("one page of chats");
    let listed = page
        .chats
        .iter()
        .find(|c| c.id == chat_id)
        .expect("the new chat is listed");
    let preview = listed.last_message_preview.as_ref().expect("a preview");
    assert_eq!(
        preview
            .from
            .as_ref()
            .unwrap()
            .user
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some(demo::CONTOSO_USER_1_ID)
    );

    let listing = graph.list_messages_since(&chat_id, None).await.unwrap();
    assert!(listing.complete);
    assert_eq!(listing.messages.len(), 1);
    let sender = listing.messages[0].sender_user().unwrap();
    assert_eq!(sender.tenant_id.as_deref(), Some(demo::CONTOSO_TENANT_ID));

    let members = graph.list_chat_members(&chat_id).await.unwrap();
    let mut member_ids: Vec<_> = members
        .members
        .iter()
        .filter_map(|m| m.user_id.clone())
        .collect();
    member_ids.sort();
    let mut expected = vec![
        demo::SUPPORT_USER_ID.to_owned(),
        demo::CONTOSO_USER_1_ID.to_owned(),
    ];
    expected.sort();
    assert_eq!(member_ids, expected);

    // The simulator clock is frozen: move it so the reply is strictly newer than the cursor.
    simulator.sim().advance_clock(60);
    let sent = graph
        .send_message(&chat_id, "<p>On it &mdash; ticket #1</p>")
        .await
        .unwrap();
    assert_eq!(
        sent.sender_user().unwrap().id.as_deref(),
        Some(demo::SUPPORT_USER_ID)
    );
    let fetched = graph.get_message(&chat_id, &sent.id).await.unwrap();
    assert_eq!(fetched.id, sent.id);

    // The cursor filter is applied by the simulator the way Graph applies it.
    let after_first = listing.messages[0].last_modified_date_time.unwrap();
    let newer = graph
        .list_messages_since(&chat_id, Some(after_first))
        .await
        .unwrap();
    let ids: Vec<_> = newer.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, [sent.id.as_str()]);
    simulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token() {
    let simulator = start_simulator().await;
    let oauth = oauth_client(&simulator);
    let first = connect(&simulator, &oauth).await;
    let first_refresh = first
        .refresh_token
        .clone()
        .expect("offline_access gives a refresh token");

    let second = oauth.refresh(&first_refresh).await.unwrap();

    let second_refresh = second.refresh_token.expect("a rotated refresh token");
    assert_ne!(
        second_refresh.expose_secret(),
        first_refresh.expose_secret()
    );
    assert_ne!(
        second.access_token.expose_secret(),
        first.access_token.expose_secret()
    );
    simulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn expired_access_token_is_refreshed_once_and_the_call_succeeds() {
    let (simulator, vault, graph, _sleeper) = connected().await;
    simulator.sim().advance_clock(2 * 3600);

    let me = graph.me().await.unwrap();

    assert_eq!(me.id, demo::SUPPORT_USER_ID);
    assert_eq!(vault.refreshes.load(Ordering::SeqCst), 1);
    simulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn revoked_grant_means_reconnect() {
    let (simulator, _vault, graph, _sleeper) = connected().await;
    simulator.sim().revoke_user(demo::SUPPORT_USER_ID).unwrap();
    simulator.sim().advance_clock(2 * 3600);

    let error = graph.me().await.unwrap_err();

    match error {
        Error::ReconnectRequired(token) => {
            assert_eq!(token.class, TokenErrorClass::ReconnectRequired);
            assert_eq!(token.error_codes, vec![50173]);
            assert!(token.trace_id.is_some());
        }
        other => panic!("expected ReconnectRequired, got {other:?}"),
    }
    simulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn scripted_throttling_is_waited_out_with_the_given_retry_after() {
    let (simulator, _vault, graph, sleeper) = connected().await;
    let control = reqwest::Client::new();
    let fault = control
        .post(simulator.base_url().join("/_sim/faults").unwrap())
        .json(&serde_json::json!({"path_prefix": "/v1.0/me", "status": 429, "retry_after": "2.128", "times": 2}))
        .send()
        .await
        .unwrap();
    assert!(fault.status().is_success());

    let me = graph.me().await.unwrap();

    assert_eq!(me.id, demo::SUPPORT_USER_ID);
    assert_eq!(sleeper.waits(), vec![Duration::from_millis(2128); 2]);
    simulator.shutdown().await.unwrap();
}

#[tokio::test]
async fn send_answered_by_a_gateway_timeout_is_unknown_yet_the_message_arrived() {
    let (simulator, _vault, graph, _sleeper) = connected().await;
    let (_, chat) = simulator
        .sim()
        .create_chat(
            "oneOnOne",
            &[demo::SUPPORT_USER_ID.into(), demo::CONTOSO_USER_1_ID.into()],
            None,
        )
        .unwrap();
    let chat_id = chat["id"].as_str().unwrap().to_owned();
    let control = reqwest::Client::new();
    control
        .post(simulator.base_url().join("/_sim/faults").unwrap())
        .json(&serde_json::json!({"method": "POST", "path_prefix": "/v1.0/chats/", "status": 504, "run_handler": true, "times": 1}))
        .send()
        .await
        .unwrap();

    let error = graph
        .send_message(&chat_id, "<p>reply</p>")
        .await
        .unwrap_err();

    assert!(
        matches!(error, Error::OutcomeUnknown { .. }),
        "got {error:?}"
    );
    // The caller reconciles by reading the chat: the reply is there exactly once.
    let listing = graph.list_messages_since(&chat_id, None).await.unwrap();
    let replies: Vec<_> = listing
        .messages
        .iter()
        .filter(|m| m.body.as_ref().and_then(|b| b.content.as_deref()) == Some("<p>reply</p>"))
        .collect();
    assert_eq!(replies.len(), 1);
    simulator.shutdown().await.unwrap();
}
