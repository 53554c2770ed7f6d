//! `/api/v1/tickets`: list (status/client filters, paging), get with entries, create a manual
//! ticket, change the status, add a reply or note.
//!
//! Filters: `status` is one status or a comma-separated list (absent = every status);
//! `client` is a client id or `unassigned` (absent = every client).

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{ListJson, PageQuery, rfc3339};
use crate::app::AppState;
use crate::store;
use crate::tickets::{
    ClientFilter, ClientId, Entry, Ticket, TicketDetail, TicketFilter, TicketId, TicketStatus,
};
use crate::web::actions;
use crate::web::auth::ApiCaller;
use crate::web::error::{WebError, WebResult};
use crate::web::extract::{Json, Path, Query};

/// `{id, name}` of the ticket's client or requester.
#[derive(Debug, Serialize)]
pub struct NamedRef {
    pub id: String,
    pub name: Option<String>,
}

/// A ticket as the API shows it.
#[derive(Debug, Serialize)]
pub struct TicketJson {
    pub id: String,
    pub number: i64,
    pub subject: String,
    pub status: TicketStatus,
    /// `null` = Unassigned.
    pub client: Option<NamedRef>,
    /// For Unassigned tickets from Teams: the sender's tenant.
    pub unassigned_tenant_id: Option<String>,
    pub requester: Option<NamedRef>,
    pub chat_id: Option<String>,
    pub follow_up_of: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
    pub closed_at: Option<String>,
}

impl From<&Ticket> for TicketJson {
    fn from(ticket: &Ticket) -> Self {
        TicketJson {
            id: ticket.id.to_string(),
            number: ticket.number,
            subject: ticket.subject.clone(),
            status: ticket.status,
            client: ticket.client_id.map(|id| NamedRef {
                id: id.to_string(),
                name: ticket.client_name.clone(),
            }),
            unassigned_tenant_id: ticket
                .unassigned_tenant_id
                .as_ref()
                .map(ToString::to_string),
            requester: ticket.requester_contact_id.map(|id| NamedRef {
                id: id.to_string(),
                name: ticket.requester_name.clone(),
            }),
            chat_id: ticket.teams_chat_id.as_ref().map(ToString::to_string),
            follow_up_of: ticket.follow_up_of.map(|id| id.to_string()),
            created_at: rfc3339(ticket.created_at),
            updated_at: rfc3339(ticket.updated_at),
            resolved_at: ticket.resolved_at.map(rfc3339),
            closed_at: ticket.closed_at.map(rfc3339),
        }
    }
}

/// A ticket with its timeline.
#[derive(Debug, Serialize)]
pub struct TicketDetailJson {
    #[serde(flatten)]
    pub ticket: TicketJson,
    pub entries: Vec<EntryJson>,
}

impl From<&TicketDetail> for TicketDetailJson {
    fn from(detail: &TicketDetail) -> Self {
        TicketDetailJson {
            ticket: TicketJson::from(&detail.ticket),
            entries: detail.entries.iter().map(EntryJson::from).collect(),
        }
    }
}

/// Who wrote an entry.
#[derive(Debug, Serialize)]
pub struct AuthorJson {
    pub name: String,
    pub technician_id: Option<String>,
    pub contact_id: Option<String>,
}

/// Delivery of a reply to Teams.
#[derive(Debug, Serialize)]
pub struct DeliveryJson {
    pub state: crate::tickets::DeliveryState,
    pub attempts: i64,
    pub error: Option<String>,
    pub sent_at: Option<String>,
}

/// An attachment's metadata (the bytes are not part of the API yet).
#[derive(Debug, Serialize)]
pub struct AttachmentJson {
    pub id: String,
    pub kind: crate::tickets::AttachmentKind,
    pub name: String,
    pub url: Option<String>,
    pub content_type: Option<String>,
    pub size_bytes: Option<i64>,
    pub download_state: crate::tickets::DownloadState,
}

/// One timeline entry.
#[derive(Debug, Serialize)]
pub struct EntryJson {
    pub id: String,
    pub kind: crate::tickets::EntryKind,
    pub author: AuthorJson,
    pub text: String,
    /// Sanitised HTML.
    pub html: String,
    pub attachments: Vec<AttachmentJson>,
    pub graph_message_id: Option<String>,
    pub sent_from_teams: bool,
    /// Replies only.
    pub delivery: Option<DeliveryJson>,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
    pub created_at: String,
}

impl From<&Entry> for EntryJson {
    fn from(entry: &Entry) -> Self {
        EntryJson {
            id: entry.id.to_string(),
            kind: entry.kind,
            author: AuthorJson {
                name: entry.author_name.clone(),
                technician_id: entry.author_technician_id.map(|id| id.to_string()),
                contact_id: entry.author_contact_id.map(|id| id.to_string()),
            },
            text: entry.text.clone(),
            html: entry.html.clone(),
            attachments: entry
                .attachments
                .iter()
                .map(|attachment| AttachmentJson {
                    id: attachment.id.to_string(),
                    kind: attachment.kind,
                    name: attachment.name.clone(),
                    url: attachment.url.clone(),
                    content_type: attachment.content_type.clone(),
                    size_bytes: attachment.size_bytes,
                    download_state: attachment.download_state,
                })
                .collect(),
            graph_message_id: entry.graph_message_id.as_ref().map(ToString::to_string),
            sent_from_teams: entry.sent_from_teams,
            delivery: entry.delivery.as_ref().map(|delivery| DeliveryJson {
                state: delivery.state,
                attempts: delivery.attempts,
                error: delivery.error.clone(),
                sent_at: delivery.sent_at.map(rfc3339),
            }),
            edited_at: entry.edited_at.map(rfc3339),
            deleted_at: entry.deleted_at.map(rfc3339),
            created_at: rfc3339(entry.created_at),
        }
    }
}

fn parse_ticket_id(raw: &str) -> Result<TicketId, WebError> {
    TicketId::parse(raw).map_err(|_| WebError::not_found("Ticket"))
}

/// `GET /api/v1/tickets` query.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub client: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// `GET /api/v1/tickets?status=&client=&limit=&offset=`.
pub async fn list(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Query(query): Query<ListQuery>,
) -> WebResult<Json<ListJson<TicketJson>>> {
    let (limit, offset) = PageQuery {
        limit: query.limit,
        offset: query.offset,
    }
    .resolve()?;
    let statuses = match query.status.as_deref().map(str::trim) {
        None | Some("") | Some("all") => Vec::new(),
        Some(list) => list
            .split(',')
            .map(|one| one.parse::<TicketStatus>())
            .collect::<Result<Vec<_>, _>>()?,
    };
    let client = match query.client.as_deref().map(str::trim) {
        None | Some("") => ClientFilter::Any,
        Some("unassigned") => ClientFilter::Unassigned,
        Some(id) => ClientFilter::Client(ClientId::parse(id).map_err(|_| {
            WebError::invalid_field("client", "client must be a client id or `unassigned`")
        })?),
    };
    let filter = TicketFilter {
        statuses,
        client,
        limit,
        offset,
    };
    let page = store::tickets::list(&mut *state.db.acquire().await?, &filter).await?;
    Ok(Json(ListJson {
        items: page.items.iter().map(TicketJson::from).collect(),
        total: page.total,
    }))
}

/// `GET /api/v1/tickets/{id}`: the ticket and its `entries`, oldest first.
pub async fn get(
    State(state): State<AppState>,
    _caller: ApiCaller,
    Path(id): Path<String>,
) -> WebResult<Json<TicketDetailJson>> {
    let detail =
        store::tickets::detail(&mut *state.db.acquire().await?, parse_ticket_id(&id)?).await?;
    Ok(Json(TicketDetailJson::from(&detail)))
}

/// `POST /api/v1/tickets` body: a **manual ticket** (no Teams chat), e.g. for scripts and
/// tests. `text` becomes the first internal note.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTicketBody {
    pub subject: String,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
}

/// `POST /api/v1/tickets` → 201 + the ticket with its entries.
pub async fn create(
    State(state): State<AppState>,
    caller: ApiCaller,
    Json(body): Json<CreateTicketBody>,
) -> WebResult<(StatusCode, Json<TicketDetailJson>)> {
    let client_id = match body.client_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) => Some(ClientId::parse(id)?),
    };
    let now = OffsetDateTime::now_utc();
    let (ticket, _) = actions::create_manual_ticket(
        &state,
        &caller.technician,
        &body.subject,
        client_id,
        body.text.as_deref(),
        now,
    )
    .await?;
    let detail = store::tickets::detail(&mut *state.db.acquire().await?, ticket.id).await?;
    Ok((StatusCode::CREATED, Json(TicketDetailJson::from(&detail))))
}

/// `PATCH /api/v1/tickets/{id}` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateTicketBody {
    pub status: String,
}

/// `PATCH /api/v1/tickets/{id}` `{status}` → the ticket. A transition the lifecycle refuses
/// (e.g. changing a closed ticket, or back to `new`) is a 422 saying why.
pub async fn update(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    Json(body): Json<UpdateTicketBody>,
) -> WebResult<Json<TicketJson>> {
    let id = parse_ticket_id(&id)?;
    let status: TicketStatus = body.status.parse()?;
    let ticket = store::tickets::set_status(
        &mut *state.db.acquire().await?,
        id,
        status,
        caller.technician.id,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(TicketJson::from(&ticket)))
}

/// `POST /api/v1/tickets/{id}/replies` body: `internal: true` = note (never sent to Teams).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyBody {
    pub text: String,
    /// Required, so that a forgotten flag never sends a note to the client.
    pub internal: bool,
}

/// `POST /api/v1/tickets/{id}/replies` → 201 + the entry.
pub async fn add_reply(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    Json(body): Json<ReplyBody>,
) -> WebResult<(StatusCode, Json<EntryJson>)> {
    let id = parse_ticket_id(&id)?;
    let entry = actions::add_entry(
        &state,
        id,
        &caller.technician,
        &body.text,
        body.internal,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(EntryJson::from(&entry))))
}

/// `POST /api/v1/tickets/{id}/replies/{entry}/retry` → the reply, queued again for Teams.
/// 422 when the reply has not failed (queued or already sent); 404 when it is not on the ticket.
pub async fn retry_delivery(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, entry)): Path<(String, String)>,
) -> WebResult<Json<EntryJson>> {
    let id = parse_ticket_id(&id)?;
    let entry = crate::tickets::EntryId::parse(&entry).map_err(|_| WebError::not_found("Reply"))?;
    let entry = actions::retry_delivery(
        &state,
        id,
        entry,
        &caller.technician,
        OffsetDateTime::now_utc(),
    )
    .await?;
    Ok(Json(EntryJson::from(&entry)))
}
