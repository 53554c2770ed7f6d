//! Identity platform: discovery, authorize pages, token endpoint errors, and Graph token checks.

use m365_sim::demo;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{REDIRECT_URI, TestSim, VERIFIER, query_param};

#[tokio::test]
async fn discovery_document_names_the_endpoints_on_the_simulator() {
    let sim = TestSim::start().await;
    let doc = sim
        .control_get(&format!(
            "/{}/v2.0/.well-known/openid-configuration",
            demo::MSP_TENANT_ID
        ))
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(
        doc.body["issuer"],
        format!(
            "https://login.microsoftonline.com/{}/v2.0",
            demo::MSP_TENANT_ID
        )
    );
    assert_eq!(
        doc.body["token_endpoint"],
        format!("{}/{}/oauth2/v2.0/token", sim.base, demo::MSP_TENANT_ID)
    );
    assert_eq!(
        doc.body["authorization_endpoint"],
        format!("{}/{}/oauth2/v2.0/authorize", sim.base, demo::MSP_TENANT_ID)
    );
    // A verified domain resolves to the same tenant, as in Entra.
    let by_domain = sim
        .control_get(&format!(
            "/{}/v2.0/.well-known/openid-configuration",
            demo::MSP_DOMAIN
        ))
        .await;
    assert_eq!(by_domain.body["issuer"], doc.body["issuer"]);
}

#[tokio::test]
async fn discovery_for_an_unknown_tenant_is_the_real_aadsts90002_error() {
    let sim = TestSim::start().await;
    let answer = sim
        .send(
            sim.http
                .get(sim.url(&format!(
                    "/{}/v2.0/.well-known/openid-configuration",
                    demo::UNKNOWN_CLIENT_TENANT_ID
                )))
                .header("client-request-id", "7b29aaaa-0000-4000-8000-000000000001"),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_tenant");
    assert_eq!(answer.body["error_codes"], json!([90002]));
    let description = answer.body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!(
            "AADSTS90002: Tenant '{}' not found.",
            demo::UNKNOWN_CLIENT_TENANT_ID
        )),
        "{description}"
    );
    assert!(description.contains("\r\nTrace ID: "));
    assert_eq!(
        answer.body["correlation_id"],
        "7b29aaaa-0000-4000-8000-000000000001"
    );
    for key in ["timestamp", "trace_id", "error_uri"] {
        assert!(answer.body[key].is_string(), "{key} missing");
    }
}

#[tokio::test]
async fn sign_in_and_consent_redirect_back_with_code_and_state_and_the_code_redeems_once() {
    let sim = TestSim::start().await;
    let page = sim.authorize("organizations", &[]).await;
    assert!(page.text.contains("id=\"login\"") && page.text.contains("id=\"user-select\""));
    let consent = sim.submit_sign_in(&page, demo::SUPPORT_UPN).await;
    assert_eq!(consent.status, StatusCode::OK);
    for scope in ["Chat.Read", "ChatMessage.Send", "offline_access"] {
        assert!(
            consent.text.contains(&format!("data-scope=\"{scope}\"")),
            "consent page lists {scope}"
        );
    }
    let redirect = sim.submit_consent(&consent, "accept").await;
    assert_eq!(redirect.status, StatusCode::FOUND);
    let location = redirect.headers["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    assert_eq!(
        query_param(&location, "state").as_deref(),
        Some("state-123")
    );
    let code = query_param(&location, "code").unwrap();

    let tokens = sim
        .redeem(&code, VERIFIER, demo::REGENTRA_CLIENT_SECRET)
        .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 3600);
    assert!(tokens.body["refresh_token"].is_string() && tokens.body["id_token"].is_string());
    let scope = tokens.body["scope"].as_str().unwrap();
    assert!(
        scope.contains("https://graph.microsoft.com/Chat.Read"),
        "{scope}"
    );
    let claims = m365_sim::decode_claims(tokens.body["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(claims["tid"], demo::MSP_TENANT_ID);
    assert_eq!(claims["oid"], demo::SUPPORT_USER_ID);
    let id_claims = m365_sim::decode_claims(tokens.body["id_token"].as_str().unwrap()).unwrap();
    assert_eq!(id_claims["tid"], demo::MSP_TENANT_ID);

    let reused = sim
        .redeem(&code, VERIFIER, demo::REGENTRA_CLIENT_SECRET)
        .await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);
    assert_eq!(reused.body["error"], "invalid_grant");
    assert_eq!(reused.body["error_codes"], json!([54005]));
}

#[tokio::test]
async fn a_second_sign_in_with_consent_already_given_skips_the_consent_page() {
    let sim = TestSim::start().await;
    sim.connect(demo::SUPPORT_UPN).await;
    let page = sim.authorize("organizations", &[]).await;
    let answer = sim.submit_sign_in(&page, demo::SUPPORT_UPN).await;
    assert_eq!(answer.status, StatusCode::FOUND);
}

#[tokio::test]
async fn wrong_pkce_verifier_is_aadsts501481() {
    let sim = TestSim::start().await;
    let location = sim
        .sign_in_and_consent("organizations", demo::SUPPORT_UPN)
        .await;
    let code = query_param(&location, "code").unwrap();
    let answer = sim
        .redeem(
            &code,
            "a-different-verifier-that-does-not-match-the-challenge-xyz",
            demo::REGENTRA_CLIENT_SECRET,
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_grant");
    assert_eq!(answer.body["error_codes"], json!([501481]));
    // The failed attempt did not burn the code.
    assert_eq!(
        sim.redeem(&code, VERIFIER, demo::REGENTRA_CLIENT_SECRET)
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client_aadsts7000215_with_401() {
    let sim = TestSim::start().await;
    let location = sim
        .sign_in_and_consent("organizations", demo::SUPPORT_UPN)
        .await;
    let code = query_param(&location, "code").unwrap();
    let answer = sim.redeem(&code, VERIFIER, "not-the-secret").await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.body["error"], "invalid_client");
    assert_eq!(answer.body["error_codes"], json!([7000215]));
    assert!(
        answer.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS7000215: Invalid client secret provided.")
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_revoked_user_gets_invalid_grant_aadsts50173() {
    let sim = TestSim::start().await;
    let first = sim.connect(demo::SUPPORT_UPN).await;
    let old_refresh = first["refresh_token"].as_str().unwrap().to_owned();
    let second = sim.refresh(&old_refresh).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let new_refresh = second.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(
        new_refresh, old_refresh,
        "refresh tokens rotate on every use"
    );
    assert_ne!(second.body["access_token"], first["access_token"]);

    let revoked = sim
        .control_post(
            &format!("/_sim/users/{}/revoke", demo::SUPPORT_USER_ID),
            &json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    let answer = sim.refresh(&new_refresh).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.body["error"], "invalid_grant");
    assert_eq!(answer.body["error_codes"], json!([50173]));
    assert!(
        answer.body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("AADSTS50173: The provided grant has expired due to it being revoked")
    );
}

#[tokio::test]
async fn a_refresh_token_unused_for_ninety_days_is_aadsts700082() {
    let sim = TestSim::start().await;
    let tokens = sim.connect(demo::SUPPORT_UPN).await;
    sim.advance(91 * 24 * 3600).await;
    let answer = sim.refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(answer.body["error"], "invalid_grant");
    assert_eq!(answer.body["error_codes"], json!([700082]));
}

#[tokio::test]
async fn cancelling_consent_redirects_with_access_denied_and_the_state() {
    let sim = TestSim::start().await;
    let page = sim.authorize("organizations", &[]).await;
    let consent = sim.submit_sign_in(&page, demo::SUPPORT_UPN).await;
    let answer = sim.submit_consent(&consent, "cancel").await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let location = answer.headers["location"].to_str().unwrap();
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(location, "state").as_deref(), Some("state-123"));
    assert!(query_param(location, "code").is_none());
}

#[tokio::test]
async fn a_tenant_that_requires_admin_consent_answers_aadsts90094_until_an_admin_consents() {
    let mut world = crate::support::demo_world();
    world
        .tenants
        .iter_mut()
        .find(|t| t.id == demo::MSP_TENANT_ID)
        .unwrap()
        .admin_consent_required = true;
    let sim = TestSim::start_with(crate::support::test_config(), world).await;
    let page = sim.authorize(demo::MSP_TENANT_ID, &[]).await;
    let answer = sim.submit_sign_in(&page, demo::SUPPORT_UPN).await;
    assert_eq!(answer.status, StatusCode::FOUND);
    let location = answer.headers["location"].to_str().unwrap();
    assert_eq!(
        query_param(location, "error").as_deref(),
        Some("consent_required")
    );
    assert!(
        query_param(location, "error_description")
            .unwrap()
            .starts_with("AADSTS90094:")
    );

    let granted = sim
        .control_post(
            &format!("/_sim/tenants/{}/admin-consent", demo::MSP_TENANT_ID),
            &json!({"client_id": demo::REGENTRA_CLIENT_ID}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::NO_CONTENT);
    let page = sim.authorize(demo::MSP_TENANT_ID, &[]).await;
    let answer = sim.submit_sign_in(&page, demo::SUPPORT_UPN).await;
    let location = answer.headers["location"].to_str().unwrap();
    assert!(query_param(location, "code").is_some(), "{location}");
}

#[tokio::test]
async fn a_redirect_uri_that_is_not_registered_exactly_gets_an_error_page_not_a_redirect() {
    let sim = TestSim::start().await;
    let answer = sim
        .authorize(
            "organizations",
            &[(
                "redirect_uri",
                "http://127.0.0.1:10/integrations/teams/callback",
            )],
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.headers.get("location").is_none());
    assert!(answer.text.contains("AADSTS50011"));
}

#[tokio::test]
async fn a_user_of_another_tenant_cannot_sign_in_to_a_specific_tenant() {
    let sim = TestSim::start().await;
    let page = sim.authorize(demo::MSP_TENANT_ID, &[]).await;
    let answer = sim.submit_sign_in(&page, demo::CONTOSO_USER_1_UPN).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text.contains("AADSTS50034"));
}

#[tokio::test]
async fn graph_refuses_expired_tokens_and_missing_scopes_with_the_real_messages() {
    let sim = TestSim::start().await;
    let token = sim.support_token().await;
    assert_eq!(
        sim.graph_get("/v1.0/me", &token, "microsoft.graph.user")
            .await
            .status,
        StatusCode::OK
    );

    sim.advance(3600).await;
    let expired = sim.graph_get("/v1.0/me", &token, "").await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(expired.body["error"]["code"], "InvalidAuthenticationToken");
    assert_eq!(
        expired.body["error"]["message"],
        "Access token has expired or is not yet valid."
    );
    assert!(expired.headers.contains_key("www-authenticate"));

    let empty = sim.graph_get("/v1.0/me", "", "").await;
    assert_eq!(empty.body["error"]["message"], "Access token is empty.");

    // A token without Chat.Read: sign in asking for User.Read only.
    let page = sim
        .authorize("organizations", &[("scope", "offline_access User.Read")])
        .await;
    let consent = sim.submit_sign_in(&page, demo::STAFF_UPN).await;
    let redirect = sim.submit_consent(&consent, "accept").await;
    let code = query_param(redirect.headers["location"].to_str().unwrap(), "code").unwrap();
    let narrow = sim
        .redeem(&code, VERIFIER, demo::REGENTRA_CLIENT_SECRET)
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let forbidden = sim.graph_get("/v1.0/me/chats", &narrow, "").await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(
        forbidden.body["error"]["message"],
        "Missing scope permissions on the request. API requires one of 'Chat.ReadBasic, Chat.Read, Chat.ReadWrite'. Scopes on the request 'User.Read'"
    );
}

#[tokio::test]
async fn the_admin_consent_endpoint_grants_the_whole_tenant_and_redirects_with_admin_consent_true()
{
    let mut world = crate::support::demo_world();
    world
        .tenants
        .iter_mut()
        .find(|t| t.id == demo::MSP_TENANT_ID)
        .unwrap()
        .admin_consent_required = true;
    let sim = TestSim::start_with(crate::support::test_config(), world).await;
    let url = format!("{}/{}/v2.0/adminconsent", sim.base, demo::MSP_TENANT_ID);
    let params = [
        ("client_id", demo::REGENTRA_CLIENT_ID),
        ("scope", "https://graph.microsoft.com/.default"),
        ("redirect_uri", REDIRECT_URI),
        ("state", "admin-1"),
    ];
    let page = sim.send(sim.http.get(url).query(&params)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let consent = sim.submit_sign_in(&page, demo::STAFF_UPN).await;
    let redirect = sim.submit_consent(&consent, "accept").await;
    let location = redirect.headers["location"].to_str().unwrap();
    assert_eq!(
        query_param(location, "admin_consent").as_deref(),
        Some("True")
    );
    assert_eq!(
        query_param(location, "tenant").as_deref(),
        Some(demo::MSP_TENANT_ID)
    );
    assert_eq!(query_param(location, "state").as_deref(), Some("admin-1"));
    // Users of that tenant now sign in without a consent page.
    let page = sim.authorize(demo::MSP_TENANT_ID, &[]).await;
    let answer = sim.submit_sign_in(&page, demo::SUPPORT_UPN).await;
    assert!(query_param(answer.headers["location"].to_str().unwrap(), "code").is_some());
}
