//! The demo's starting data: a technician, an API token, the three client organisations, the
//! MSP's imported Teams external-access settings, and — for Fabrikam — a short history that
//! explains why Verify Client Federation calls it Blocked.
//!
//! Everything goes through the normal repository functions (and the simulator's own in-process
//! API), so the data is exactly what the product would have written. Seeding is idempotent on a
//! reused `--data-dir`: existing clients, settings and history are kept; only the technician's
//! password is renewed (it is printed once per start).
//!
//! This module must never seed anything outside the demo's own made-up world (ids and names
//! come from `m365_sim::demo` or the given scenario).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use m365_sim::{ExternalAccess, ExternalAccessMode, PostOutcome, Scenario, Sim, UserPost};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};
use time::macros::format_description;
use time::{Duration, OffsetDateTime};

use crate::app::AppState;
use crate::bridge::federation::{ImportError, import_federation_configuration};
use crate::store::entries::DeliveryUpdate;
use crate::store::outbox::{NewOutboxRow, OutboxState};
use crate::store::tickets::InboundClientMessage;
use crate::store::{self, StoreError};
use crate::tickets::{
    ChatId, EntraObjectId, GraphMessageId, NewClient, NewContact, ReopenWindow, TechnicianEmail,
    TechnicianId, TenantId, text_to_html,
};

/// The technician login the demo creates.
pub const DEMO_TECHNICIAN_EMAIL: &str = "admin@northwind-it.example";
pub const DEMO_TECHNICIAN_NAME: &str = "Alex Morgan";
/// The message of the "what to try" story.
pub const PRINTER_MESSAGE: &str = "Printer on floor 2 is offline";
/// Tailspin Toys' domain (the tenant itself does not exist in the simulator).
pub const TAILSPIN_DOMAIN: &str = "tailspintoys.example";

/// Fabrikam's history: Sam asked three days ago, while Fabrikam still allowed external chat.
/// Its first line becomes the ticket's subject.
pub const FABRIKAM_HISTORY_REQUEST: &str = "New starter needs the Sales mailbox\n\
     Hi, could you give Jo access to the Sales shared mailbox from Monday? Thanks, Sam";
/// The technician's answer two days ago, which Teams refused after Fabrikam blocked external chat.
pub const FABRIKAM_HISTORY_REPLY: &str =
    "Done: Jo has access to the Sales mailbox now. It can take an hour to appear in Outlook.";
/// How the refusal reads on the ticket: the outbox's words for a 403 from Teams
/// (`bridge::outbox`), which Verify Client Federation recognises as a federation refusal.
const FABRIKAM_REFUSAL: &str = "Teams refused: this client's organisation blocks external chat \
     with us (or the support user is no longer in this chat). Run Verify Client Federation, \
     then press Retry";

/// The MSP's Teams settings as `Get-CsTenantFederationConfiguration | ConvertTo-Json` prints
/// them: external access on, all known domains allowed, nothing blocked.
const MSP_FEDERATION_EXPORT: &str = include_str!("msp-federation.json");

/// The label of the API token the demo creates.
const API_TOKEN_LABEL: &str = "demo";

/// What seeding produced.
#[derive(Debug)]
pub struct Seeded {
    pub technician_id: TechnicianId,
    /// Generated for this start; shown once.
    pub technician_password: SecretString,
    pub api_token: SecretString,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{what} failed")]
    Store {
        what: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("--api-token cannot be used: {0}")]
    ApiToken(String),
    #[error("the built-in MSP Teams settings could not be imported")]
    Federation(#[source] ImportError),
    #[error("the simulator refused the demo history: {0}")]
    Simulator(String),
}

fn store_error(what: &'static str) -> impl FnOnce(StoreError) -> SeedError {
    move |source| SeedError::Store { what, source }
}

/// Seeds the demo. With a `--scenario` file (`custom`), the clients come from its tenants and
/// there is no Fabrikam history.
pub async fn seed(
    state: &AppState,
    sim: &Sim,
    api_token: Option<SecretString>,
    custom: Option<&Scenario>,
) -> Result<Seeded, SeedError> {
    let builtin_world = custom.is_none();
    let now = OffsetDateTime::now_utc();
    let mut conn = state
        .db
        .acquire()
        .await
        .map_err(store_error("opening the database"))?;

    let technician_password = generate_password();
    let email = TechnicianEmail::parse(DEMO_TECHNICIAN_EMAIL)
        .map_err(|error| store_error("checking the demo e-mail")(error.into()))?;
    let existing = store::technicians::find_by_email(&mut conn, email.as_str())
        .await
        .map_err(store_error("looking up the demo technician"))?;
    let technician_id = match existing {
        Some(technician) => {
            store::technicians::set_password(&mut conn, technician.id, technician_password.clone())
                .await
                .map_err(store_error("renewing the demo technician's password"))?;
            technician.id
        }
        None => {
            store::technicians::create(
                &mut conn,
                store::technicians::NewTechnician {
                    email,
                    display_name: DEMO_TECHNICIAN_NAME.to_owned(),
                    password: technician_password.clone(),
                },
                now,
            )
            .await
            .map_err(store_error("creating the demo technician"))?
            .id
        }
    };

    let api_token = match api_token {
        None => {
            store::api_tokens::create(&mut conn, technician_id, API_TOKEN_LABEL, now)
                .await
                .map_err(store_error("creating the demo API token"))?
                .1
        }
        Some(token) => {
            match store::api_tokens::create_with_value(
                &mut conn,
                technician_id,
                API_TOKEN_LABEL,
                &token,
                now,
            )
            .await
            {
                Ok(_) => token,
                // A reused --data-dir with the same --api-token: fine if it is ours.
                Err(StoreError::Conflict(_)) => {
                    let owner =
                        store::api_tokens::authenticate(&mut conn, token.expose_secret(), now)
                            .await
                            .map_err(store_error("checking the given API token"))?;
                    if owner != Some(technician_id) {
                        return Err(SeedError::ApiToken(
                            "that token belongs to another technician in this data directory"
                                .into(),
                        ));
                    }
                    token
                }
                Err(StoreError::Invalid(message)) => return Err(SeedError::ApiToken(message)),
                Err(other) => return Err(store_error("storing the given API token")(other)),
            }
        }
    };

    let clients = match custom {
        None => demo_clients(),
        Some(scenario) => scenario_clients(scenario),
    };
    let mut fabrikam_is_new = false;
    for client in clients {
        let Some(tenant) = client.entra_tenant_id.clone() else {
            continue;
        };
        let known = store::clients::by_tenant(&mut conn, &tenant)
            .await
            .map_err(store_error("looking up a demo client"))?;
        if known.is_none() {
            store::clients::create(&mut conn, &client, now)
                .await
                .map_err(store_error("creating a demo client"))?;
            fabrikam_is_new |= tenant.as_str() == m365_sim::demo::FABRIKAM_TENANT_ID;
        }
    }

    let imported = store::federation::msp_settings(&mut conn)
        .await
        .map_err(store_error("reading the imported Teams settings"))?;
    if imported.is_none() {
        let settings = import_federation_configuration(MSP_FEDERATION_EXPORT, now)
            .map_err(SeedError::Federation)?;
        store::federation::save_msp_settings(&mut conn, &settings, Some(technician_id))
            .await
            .map_err(store_error("storing the MSP's Teams settings"))?;
    }
    drop(conn);

    if builtin_world && fabrikam_is_new {
        seed_fabrikam_history(state, sim, technician_id).await?;
    }

    Ok(Seeded {
        technician_id,
        technician_password,
        api_token,
    })
}

/// A password for this start: 16 random bytes, readable and easy to copy.
fn generate_password() -> SecretString {
    let random: [u8; 16] = rand::random();
    SecretString::from(format!("demo-{}", URL_SAFE_NO_PAD.encode(random)))
}

/// Contoso (its tenant allows the MSP), Fabrikam (its tenant blocks external chat) and Tailspin
/// Toys (its recorded tenant ID does not exist).
fn demo_clients() -> Vec<NewClient> {
    use m365_sim::demo::*;
    [
        (CONTOSO_TENANT_NAME, CONTOSO_TENANT_ID, CONTOSO_DOMAIN),
        (FABRIKAM_TENANT_NAME, FABRIKAM_TENANT_ID, FABRIKAM_DOMAIN),
        (
            UNKNOWN_CLIENT_NAME,
            UNKNOWN_CLIENT_TENANT_ID,
            TAILSPIN_DOMAIN,
        ),
    ]
    .into_iter()
    .filter_map(|(name, tenant, domain)| {
        NewClient::parse(name, Some(tenant), &[domain.to_owned()]).ok()
    })
    .collect()
}

/// One client per tenant of a custom scenario except the first (the MSP's, by the same
/// convention as the simulator's Teams page).
fn scenario_clients(scenario: &Scenario) -> Vec<NewClient> {
    scenario
        .tenants
        .iter()
        .skip(1)
        .filter_map(|tenant| {
            // `verifiedDomains` holds plain names or Graph verifiedDomain objects.
            let domains: Vec<String> = tenant
                .verified_domains
                .iter()
                .filter_map(|domain| {
                    domain
                        .as_str()
                        .or_else(|| domain.get("name").and_then(Value::as_str))
                        .map(str::to_owned)
                })
                .collect();
            match NewClient::parse(&tenant.display_name, Some(&tenant.id), &domains) {
                Ok(client) => Some(client),
                Err(error) => {
                    tracing::warn!(
                        tenant.id = %tenant.id,
                        "not seeding a client for this scenario tenant: {error}"
                    );
                    None
                }
            }
        })
        .collect()
}

/// Fabrikam's story: three days ago Sam King asked for something in Teams (Fabrikam still
/// allowed external chat then), a ticket was opened; two days ago the technician answered,
/// and Teams refused the reply because Fabrikam had turned external access off since.
///
/// In the simulator the chat and Sam's message are created through its own code paths, with
/// Fabrikam's external access briefly set to what it was three days ago; in Regentra the ticket,
/// the reply and its failed outbox row are written by the normal repository functions.
async fn seed_fabrikam_history(
    state: &AppState,
    sim: &Sim,
    technician_id: TechnicianId,
) -> Result<(), SeedError> {
    use m365_sim::demo::{
        FABRIKAM_TENANT_ID, FABRIKAM_USER_ID, FABRIKAM_USER_UPN, SUPPORT_USER_ID,
    };
    let sim_error = |error: m365_sim::ControlError| SeedError::Simulator(error.to_string());
    let asked_at = truncate_to_millis(sim.now() - Duration::days(3));
    let replied_at = asked_at + Duration::days(1) + Duration::minutes(17);

    let (_, chat) = sim
        .create_chat(
            "oneOnOne",
            &[SUPPORT_USER_ID.to_owned(), FABRIKAM_USER_ID.to_owned()],
            None,
        )
        .map_err(sim_error)?;
    let chat_id = chat
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| SeedError::Simulator("the created chat has no id".into()))?
        .to_owned();

    let stamp = graph_time(asked_at);
    let mut message = Map::new();
    message.insert(
        "id".into(),
        json!((asked_at.unix_timestamp_nanos() / 1_000_000).to_string()),
    );
    message.insert("createdDateTime".into(), json!(stamp));
    message.insert("lastModifiedDateTime".into(), json!(stamp));
    message.insert(
        "body".into(),
        json!({"contentType": "html", "content": teams_html(FABRIKAM_HISTORY_REQUEST)}),
    );
    sim.set_external_access(FABRIKAM_TENANT_ID, access(ExternalAccessMode::AllowAll))
        .map_err(sim_error)?;
    let posted = sim.post_as_user(&chat_id, FABRIKAM_USER_ID, UserPost::Raw(message));
    // Fabrikam blocks external chat now, whatever happened above.
    sim.set_external_access(FABRIKAM_TENANT_ID, access(ExternalAccessMode::BlockAll))
        .map_err(sim_error)?;
    let posted = match posted.map_err(sim_error)? {
        PostOutcome::Delivered(message) => message,
        PostOutcome::Dropped { reason } => return Err(SeedError::Simulator(reason)),
    };
    let message_id = posted
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();

    let invalid = |error: crate::tickets::ValidationError| SeedError::Store {
        what: "building the Fabrikam history",
        source: error.into(),
    };
    let chat_id = ChatId::parse(&chat_id).map_err(invalid)?;
    let inbound = InboundClientMessage {
        chat_id: chat_id.clone(),
        graph_message_id: GraphMessageId::parse(&message_id).map_err(invalid)?,
        sender: NewContact {
            entra_object_id: EntraObjectId::parse(FABRIKAM_USER_ID).map_err(invalid)?,
            entra_tenant_id: TenantId::parse(FABRIKAM_TENANT_ID).map_err(invalid)?,
            display_name: "Sam King".to_owned(),
            email: Some(FABRIKAM_USER_UPN.to_owned()),
        },
        text: FABRIKAM_HISTORY_REQUEST.to_owned(),
        html: text_to_html(FABRIKAM_HISTORY_REQUEST),
        sent_at: asked_at,
        last_modified: asked_at,
        attachments: Vec::new(),
    };

    let window = ReopenWindow::days(u16::try_from(state.config.reopen_days).unwrap_or(u16::MAX));
    let mut tx = state
        .db
        .begin()
        .await
        .map_err(store_error("opening a transaction"))?;
    let received = store::tickets::receive_client_message(&mut tx, &inbound, window, asked_at)
        .await
        .map_err(store_error("recording Sam King's message"))?;
    let reply = store::entries::add_reply(
        &mut tx,
        received.ticket_id,
        technician_id,
        FABRIKAM_HISTORY_REPLY,
        replied_at,
    )
    .await
    .map_err(store_error("recording the technician's reply"))?;
    let html = crate::bridge::content::reply_html(FABRIKAM_HISTORY_REPLY);
    store::outbox::insert(
        &mut tx,
        &NewOutboxRow {
            entry_id: reply.id,
            chat_id: &chat_id,
            html: &html,
            state: OutboxState::Failed,
            error: Some(FABRIKAM_REFUSAL),
        },
        replied_at,
    )
    .await
    .map_err(store_error("recording the refused send"))?;
    store::entries::update_delivery(
        &mut tx,
        reply.id,
        &DeliveryUpdate::Failed {
            error: FABRIKAM_REFUSAL.to_owned(),
        },
    )
    .await
    .map_err(store_error("recording the refused send"))?;
    tx.commit()
        .await
        .map_err(|error| store_error("saving the Fabrikam history")(error.into()))?;
    Ok(())
}

/// Text as the Teams client sends it: one `<p>` per line (the demo's texts need no escaping).
fn teams_html(text: &str) -> String {
    text.lines().map(|line| format!("<p>{line}</p>")).collect()
}

fn access(mode: ExternalAccessMode) -> ExternalAccess {
    ExternalAccess {
        mode,
        allowed_domains: Vec::new(),
        blocked_domains: Vec::new(),
    }
}

fn truncate_to_millis(at: OffsetDateTime) -> OffsetDateTime {
    let millis = at.nanosecond() / 1_000_000;
    at.replace_nanosecond(millis * 1_000_000).unwrap_or(at)
}

/// Graph's timestamp form, e.g. `2024-05-01T09:30:00.123Z`.
fn graph_time(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    utc.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    // The fixed format has no component a UTC date-time could lack.
    .unwrap_or_else(|_| utc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_msp_export_allows_every_known_domain() {
        let settings =
            import_federation_configuration(MSP_FEDERATION_EXPORT, OffsetDateTime::UNIX_EPOCH)
                .unwrap();
        assert!(settings.allow_federated_users);
        assert_eq!(
            settings.allowed,
            crate::bridge::federation::AllowedDomains::All
        );
        assert!(settings.blocked.is_empty());
    }

    #[test]
    fn demo_clients_are_contoso_fabrikam_and_tailspin_with_their_tenants() {
        let clients = demo_clients();
        let summary: Vec<(String, String, Vec<String>)> = clients
            .iter()
            .map(|client| {
                (
                    client.name.to_string(),
                    client
                        .entra_tenant_id
                        .as_ref()
                        .map(|t| t.as_str().to_owned())
                        .unwrap_or_default(),
                    client.domains.iter().map(|d| d.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "Contoso".to_owned(),
                    m365_sim::demo::CONTOSO_TENANT_ID.to_owned(),
                    vec!["contoso.example".to_owned()]
                ),
                (
                    "Fabrikam".to_owned(),
                    m365_sim::demo::FABRIKAM_TENANT_ID.to_owned(),
                    vec!["fabrikam.example".to_owned()]
                ),
                (
                    "Tailspin Toys".to_owned(),
                    m365_sim::demo::UNKNOWN_CLIENT_TENANT_ID.to_owned(),
                    vec!["tailspintoys.example".to_owned()]
                ),
            ]
        );
    }

    #[test]
    fn a_custom_scenario_seeds_every_tenant_but_the_first_as_a_client() {
        let scenario = Scenario::from_json(
            r#"{"tenants": [
                {"id": "11111111-2222-4333-8444-555555555555", "displayName": "Litware IT",
                 "verifiedDomains": ["litware.example"]},
                {"id": "66666666-7777-4888-9999-000000000000", "displayName": "Adatum",
                 "verifiedDomains": [{"name": "adatum.example", "isDefault": true}, "adatum.test"]}
            ]}"#,
        )
        .unwrap();
        let clients = scenario_clients(&scenario);
        assert_eq!(clients.len(), 1);
        assert_eq!(clients[0].name.to_string(), "Adatum");
        assert_eq!(
            clients[0].entra_tenant_id.as_ref().map(|t| t.as_str()),
            Some("66666666-7777-4888-9999-000000000000")
        );
        let domains: Vec<String> = clients[0].domains.iter().map(|d| d.to_string()).collect();
        assert_eq!(domains, ["adatum.example", "adatum.test"]);
    }

    #[test]
    fn the_seeded_refusal_counts_as_a_federation_refusal() {
        assert!(crate::bridge::federation::check::is_federation_refusal(
            FABRIKAM_REFUSAL
        ));
    }

    #[test]
    fn generated_passwords_are_long_enough_and_differ() {
        let a = generate_password();
        let b = generate_password();
        assert!(a.expose_secret().chars().count() >= store::technicians::MIN_PASSWORD_CHARS);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn graph_time_has_milliseconds_and_z() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_714_555_800_123_456_789).unwrap();
        assert_eq!(graph_time(at), "2024-05-01T09:30:00.123Z");
    }
}
