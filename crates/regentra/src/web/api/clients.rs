//! `/api/v1/clients`: list, get, create and update clients. A malformed Entra tenant ID is a
//! 400 whose message names `entra_tenant_id`; a tenant ID another client already has is a 409.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ListJson, PageQuery, present, rfc3339};
use crate::app::AppState;
use crate::store;
use crate::tickets::{Client, ClientId, ClientUpdate, NewClient};
use crate::web::auth::ApiCaller;
use crate::web::error::{WebError, WebResult};
use crate::web::extract::{Json, Path, Query};

/// A client as the API shows it.
#[derive(Debug, Serialize)]
pub struct ClientJson {
    pub id: String,
    pub name: String,
    pub entra_tenant_id: Option<String>,
    pub domains: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Client> for ClientJson {
    fn from(client: &Client) -> Self {
        ClientJson {
            id: client.id.to_string(),
            name: client.name.to_string(),
            entra_tenant_id: client.entra_tenant_id.as_ref().map(ToString::to_string),
            domains: client.domains.iter().map(ToString::to_string).collect(),
            created_at: rfc3339(client.created_at),
            updated_at: rfc3339(client.updated_at),
        }
    }
}

fn parse_client_id(raw: &str) -> Result<ClientId, WebError> {
    ClientId::parse(raw).map_err(|_| WebError::not_found("Client"))
}

/// `GET /api/v1/clients?limit=&offset=`.
pub async fn list(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(page): Query<PageQuery>,
) -> WebResult<Json<ListJson<ClientJson>>> {
    let (limit, offset) = page.resolve()?;
    let page = store::clients::list_page(&mut *state.db.acquire().await?, limit, offset).await?;
    Ok(Json(ListJson {
        items: page.items.iter().map(ClientJson::from).collect(),
        total: page.total,
    }))
}

/// `GET /api/v1/clients/{id}`.
pub async fn get(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> WebResult<Json<ClientJson>> {
    let client =
        store::clients::get(&mut *state.db.acquire().await?, parse_client_id(&id)?).await?;
    Ok(Json(ClientJson::from(&client)))
}

/// `POST /api/v1/clients` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateClientBody {
    pub name: String,
    #[serde(default)]
    pub entra_tenant_id: Option<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// `POST /api/v1/clients` → 201 + the client.
pub async fn create(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Json(body): Json<CreateClientBody>,
) -> WebResult<(StatusCode, Json<ClientJson>)> {
    let new = NewClient::parse(&body.name, body.entra_tenant_id.as_deref(), &body.domains)?;
    let client = store::clients::create(
        &mut *state.db.acquire().await?,
        &new,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(ClientJson::from(&client))))
}

/// `PATCH /api/v1/clients/{id}` body: only the fields present change; `"entra_tenant_id":
/// null` (or `""`) removes the tenant ID.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientBody {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub entra_tenant_id: Option<Option<String>>,
    #[serde(default)]
    pub domains: Option<Vec<String>>,
}

/// `PATCH /api/v1/clients/{id}` → the client.
pub async fn update(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
    Json(body): Json<UpdateClientBody>,
) -> WebResult<Json<ClientJson>> {
    let id = parse_client_id(&id)?;
    let tenant = body
        .entra_tenant_id
        .as_ref()
        .map(|value| value.as_deref().unwrap_or(""));
    let update = ClientUpdate::parse(body.name.as_deref(), tenant, body.domains.as_deref())?;
    let client = store::clients::update(
        &mut *state.db.acquire().await?,
        id,
        &update,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(ClientJson::from(&client)))
}
