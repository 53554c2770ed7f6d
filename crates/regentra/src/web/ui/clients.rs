//! Client screens: the list (with the create form) and the edit form. Validation happens in the
//! domain (`NewClient::parse`, `ClientUpdate::parse`); a rejected form is shown again with the
//! message and what the technician typed, answered with status 400.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use super::Layout;
use crate::app::AppState;
use crate::store;
use crate::tickets::{Client, ClientId, ClientUpdate, NewClient};
use crate::web::auth::{SignedIn, flash_ok};
use crate::web::error::{WebError, WebResult};
use crate::web::extract::{Form, Path};

/// One row of the client list.
pub struct ClientRowView {
    pub id: String,
    pub name: String,
    pub tenant_id: Option<String>,
    pub domains: Vec<String>,
    /// Last Verify Client Federation verdict with its time, e.g. "Blocked · 2026-03-02 09:00 UTC".
    pub federation: String,
    /// `connected`, `blocked`, `unknown` or `not_checked` (badge class `state-<status>`).
    pub federation_status: &'static str,
    /// The deciding reason of the last verdict, if checked.
    pub federation_reason: Option<String>,
}

impl From<&Client> for ClientRowView {
    fn from(client: &Client) -> Self {
        ClientRowView {
            id: client.id.to_string(),
            name: client.name.to_string(),
            tenant_id: client.entra_tenant_id.as_ref().map(ToString::to_string),
            domains: client.domains.iter().map(ToString::to_string).collect(),
            federation: "Not checked".to_owned(),
            federation_status: "not_checked",
            federation_reason: None,
        }
    }
}

/// The create/edit form's contents.
pub struct ClientFormView {
    pub action: String,
    pub submit_label: &'static str,
    pub is_edit: bool,
    pub name: String,
    pub entra_tenant_id: String,
    pub domains: String,
    pub error: Option<String>,
}

impl ClientFormView {
    fn empty_create() -> ClientFormView {
        ClientFormView {
            action: "/clients".to_owned(),
            submit_label: "Add client",
            is_edit: false,
            name: String::new(),
            entra_tenant_id: String::new(),
            domains: String::new(),
            error: None,
        }
    }

    fn edit_of(client: &Client) -> ClientFormView {
        ClientFormView {
            action: format!("/clients/{}", client.id),
            submit_label: "Save changes",
            is_edit: true,
            name: client.name.to_string(),
            entra_tenant_id: client
                .entra_tenant_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            domains: client
                .domains
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            error: None,
        }
    }
}

#[derive(Template)]
#[template(path = "clients/list.html")]
pub struct ClientListPage {
    pub layout: Layout,
    pub clients: Vec<ClientRowView>,
    pub form: ClientFormView,
}

#[derive(Template)]
#[template(path = "clients/edit.html")]
pub struct ClientEditPage {
    pub layout: Layout,
    pub form: ClientFormView,
}

/// The client form fields as posted.
#[derive(Debug, Deserialize)]
pub struct ClientForm {
    pub name: String,
    #[serde(default)]
    pub entra_tenant_id: String,
    #[serde(default)]
    pub domains: String,
}

async fn render_list(
    state: &AppState,
    signed_in: &SignedIn,
    form: ClientFormView,
    status: StatusCode,
) -> WebResult<Response> {
    let mut conn = state.db.acquire().await?;
    let clients = store::clients::list(&mut conn).await?;
    let federation = store::federation::last_checks(&mut conn).await?;
    drop(conn);
    let rows = clients
        .iter()
        .map(|client| {
            let check = federation.get(&client.id);
            let (status, label) = crate::web::federation::client_list_status(check);
            ClientRowView {
                federation: label,
                federation_status: status,
                federation_reason: check.and_then(|check| check.result.reasons.first().cloned()),
                ..ClientRowView::from(client)
            }
        })
        .collect();
    let page = ClientListPage {
        layout: Layout::new(
            "Clients",
            "clients",
            &signed_in.technician,
            &signed_in.session,
        )
        .await,
        clients: rows,
        form,
    };
    Ok((status, Html(page.render()?)).into_response())
}

/// `GET /clients`.
pub async fn list(State(state): State<AppState>, signed_in: SignedIn) -> WebResult<Response> {
    render_list(
        &state,
        &signed_in,
        ClientFormView::empty_create(),
        StatusCode::OK,
    )
    .await
}

/// `POST /clients`.
pub async fn create(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Form(form): Form<ClientForm>,
) -> WebResult<Response> {
    let refill = |error: String| ClientFormView {
        name: form.name.clone(),
        entra_tenant_id: form.entra_tenant_id.clone(),
        domains: form.domains.clone(),
        error: Some(error),
        ..ClientFormView::empty_create()
    };
    let new = match NewClient::parse(
        &form.name,
        Some(&form.entra_tenant_id),
        std::slice::from_ref(&form.domains),
    ) {
        Ok(new) => new,
        Err(err) => {
            return render_list(
                &state,
                &signed_in,
                refill(err.to_string()),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    let created = store::clients::create(
        &mut *state.db.acquire().await?,
        &new,
        OffsetDateTime::now_utc(),
    )
    .await;
    match created {
        Ok(client) => {
            flash_ok(&signed_in.session, format!("Client {} added.", client.name)).await;
            Ok(Redirect::to("/clients").into_response())
        }
        Err(store::StoreError::Conflict(message) | store::StoreError::Invalid(message)) => {
            render_list(&state, &signed_in, refill(message), StatusCode::BAD_REQUEST).await
        }
        Err(err) => Err(err.into()),
    }
}

fn parse_client_id(raw: &str) -> Result<ClientId, WebError> {
    ClientId::parse(raw).map_err(|_| WebError::not_found("This client"))
}

/// `GET /clients/{id}/edit`.
pub async fn edit_form(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let id = parse_client_id(&id)?;
    let client = store::clients::get(&mut *state.db.acquire().await?, id).await?;
    let page = ClientEditPage {
        layout: Layout::new(
            format!("Edit {}", client.name),
            "clients",
            &signed_in.technician,
            &signed_in.session,
        )
        .await,
        form: ClientFormView::edit_of(&client),
    };
    Ok(Html(page.render()?).into_response())
}

/// `POST /clients/{id}`: saves name, tenant ID and domains (an empty tenant ID removes it).
pub async fn update(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<ClientForm>,
) -> WebResult<Response> {
    let id = parse_client_id(&id)?;
    let mut conn = state.db.acquire().await?;
    let client = store::clients::get(&mut conn, id).await?;
    let domains = [form.domains.clone()];
    let outcome = match ClientUpdate::parse(
        Some(&form.name),
        Some(&form.entra_tenant_id),
        Some(&domains),
    ) {
        Ok(update) => {
            store::clients::update(&mut conn, id, &update, OffsetDateTime::now_utc()).await
        }
        Err(err) => Err(store::StoreError::Invalid(err.to_string())),
    };
    drop(conn);
    match outcome {
        Ok(client) => {
            flash_ok(&signed_in.session, format!("Client {} saved.", client.name)).await;
            Ok(Redirect::to("/clients").into_response())
        }
        Err(store::StoreError::Conflict(message) | store::StoreError::Invalid(message)) => {
            let form_view = ClientFormView {
                name: form.name,
                entra_tenant_id: form.entra_tenant_id,
                domains: form.domains,
                error: Some(message),
                ..ClientFormView::edit_of(&client)
            };
            let page = ClientEditPage {
                layout: Layout::new(
                    format!("Edit {}", client.name),
                    "clients",
                    &signed_in.technician,
                    &signed_in.session,
                )
                .await,
                form: form_view,
            };
            Ok((StatusCode::BAD_REQUEST, Html(page.render()?)).into_response())
        }
        Err(err) => Err(err.into()),
    }
}
