//! Ticket screens: the list with status/client filters, the ticket view (header, status change,
//! tenant assignment, conversation timeline, reply box), and the form posts behind them.
//!
//! Form posts answer with a redirect back to the ticket (post/redirect/get) and a flash
//! message. The conversation is also served alone (`/tickets/{id}/conversation`) so htmx can
//! refresh it in place. No lifecycle rule is decided here; the store applies them.

use askama::Template;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::OffsetDateTime;

use super::{Layout, SelectOption, display_time};
use crate::app::AppState;
use crate::store;
use crate::tickets::{
    Client, ClientFilter, ClientId, DeliveryState, DownloadState, Entry, EntryKind, Ticket,
    TicketDetail, TicketFilter, TicketId, TicketStatus,
};
use crate::web::auth::{SignedIn, flash_error, flash_ok};
use crate::web::error::{WebError, WebResult};
use crate::web::extract::{Form, Path, Query};

/// Tickets per page in the UI list.
pub const PAGE_SIZE: i64 = 50;

// ---------------------------------------------------------------- view structs

/// One row of the ticket list.
pub struct TicketRowView {
    pub id: String,
    pub number: i64,
    pub subject: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub client_name: Option<String>,
    pub unassigned_tenant: Option<String>,
    pub requester: String,
    pub updated_at: String,
}

impl From<&Ticket> for TicketRowView {
    fn from(ticket: &Ticket) -> Self {
        TicketRowView {
            id: ticket.id.to_string(),
            number: ticket.number,
            subject: ticket.subject.clone(),
            status: ticket.status.as_str(),
            status_label: ticket.status.label(),
            client_name: ticket.client_name.clone(),
            unassigned_tenant: ticket
                .unassigned_tenant_id
                .as_ref()
                .map(ToString::to_string),
            requester: ticket
                .requester_name
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
            updated_at: display_time(ticket.updated_at),
        }
    }
}

/// The ticket view's header.
pub struct TicketHeaderView {
    pub id: String,
    pub number: i64,
    pub subject: String,
    pub status: &'static str,
    pub status_label: &'static str,
    pub client_name: Option<String>,
    /// Set only while the ticket is Unassigned and the sender's tenant is known.
    pub unassigned_tenant: Option<String>,
    pub requester: String,
    pub created_at: String,
    pub has_chat: bool,
    pub follow_up_of: Option<String>,
}

impl From<&Ticket> for TicketHeaderView {
    fn from(ticket: &Ticket) -> Self {
        TicketHeaderView {
            id: ticket.id.to_string(),
            number: ticket.number,
            subject: ticket.subject.clone(),
            status: ticket.status.as_str(),
            status_label: ticket.status.label(),
            client_name: ticket.client_name.clone(),
            unassigned_tenant: if ticket.client_id.is_none() {
                ticket
                    .unassigned_tenant_id
                    .as_ref()
                    .map(ToString::to_string)
            } else {
                None
            },
            requester: ticket
                .requester_name
                .clone()
                .unwrap_or_else(|| "—".to_owned()),
            created_at: display_time(ticket.created_at),
            has_chat: ticket.teams_chat_id.is_some(),
            follow_up_of: ticket.follow_up_of.map(|id| id.to_string()),
        }
    }
}

/// The conversation timeline (also the htmx fragment).
pub struct ConversationView {
    pub ticket_id: String,
    pub entries: Vec<EntryView>,
    /// htmx refresh interval: fast while a reply is still queued for Teams, so its delivery
    /// state changes in front of the technician, slow otherwise.
    pub refresh_secs: u32,
}

/// One timeline entry.
pub struct EntryView {
    pub id: String,
    /// `client_message`, `reply`, `note` or `event` (CSS class `entry-<kind>`).
    pub kind: &'static str,
    pub author: String,
    pub text: String,
    /// Sanitised HTML, when the entry has any (inbound Teams messages); else `text` is shown.
    pub html: Option<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    pub sent_from_teams: bool,
    pub delivery: Option<DeliveryView>,
    pub attachments: Vec<AttachmentView>,
}

/// Delivery badge of a reply.
pub struct DeliveryView {
    /// `queued`, `sent` or `failed`.
    pub state: &'static str,
    pub label: &'static str,
    pub attempts: i64,
    pub error: Option<String>,
}

/// An attachment line.
pub struct AttachmentView {
    pub name: String,
    /// Only http(s) links are ever put into an `href`.
    pub url: Option<String>,
    pub note: &'static str,
}

impl From<&Entry> for EntryView {
    fn from(entry: &Entry) -> Self {
        // Client messages carry Teams HTML (sanitised by the store); show it, sanitised once
        // more here as defence in depth. Our own replies/notes/events are shown as text.
        let html = (entry.kind == EntryKind::ClientMessage && !entry.html.trim().is_empty())
            .then(|| ammonia::clean(&entry.html));
        EntryView {
            id: entry.id.to_string(),
            kind: entry.kind.as_str(),
            author: entry.author_name.clone(),
            text: entry.text.clone(),
            html,
            created_at: display_time(entry.created_at),
            edited_at: entry.edited_at.map(display_time),
            deleted: entry.deleted_at.is_some(),
            sent_from_teams: entry.sent_from_teams,
            delivery: entry.delivery.as_ref().map(|delivery| DeliveryView {
                state: delivery.state.as_str(),
                label: match delivery.state {
                    DeliveryState::Queued => "Queued",
                    DeliveryState::Sent => "Sent",
                    DeliveryState::Failed => "Failed",
                },
                attempts: delivery.attempts,
                error: delivery.error.clone(),
            }),
            attachments: entry
                .attachments
                .iter()
                .map(|attachment| AttachmentView {
                    name: attachment.name.clone(),
                    url: attachment
                        .url
                        .clone()
                        .filter(|url| url.starts_with("https://") || url.starts_with("http://")),
                    note: match attachment.download_state {
                        DownloadState::Pending => "download pending",
                        DownloadState::Failed => "could not be downloaded",
                        DownloadState::Downloaded | DownloadState::NotNeeded => "stored",
                    },
                })
                .collect(),
        }
    }
}

impl ConversationView {
    fn of(detail: &TicketDetail) -> ConversationView {
        let any_queued = detail.entries.iter().any(|entry| {
            entry
                .delivery
                .as_ref()
                .is_some_and(|delivery| delivery.state == DeliveryState::Queued)
        });
        ConversationView {
            ticket_id: detail.ticket.id.to_string(),
            entries: detail.entries.iter().map(EntryView::from).collect(),
            refresh_secs: if any_queued { 2 } else { 15 },
        }
    }
}

// ---------------------------------------------------------------- list

#[derive(Template)]
#[template(path = "tickets/list.html")]
pub struct TicketListPage {
    pub layout: Layout,
    pub tickets: Vec<TicketRowView>,
    pub total: i64,
    pub status_options: Vec<SelectOption>,
    pub client_options: Vec<SelectOption>,
    pub prev_href: Option<String>,
    pub next_href: Option<String>,
    pub range_label: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    /// `active` (default), `all`, or one status.
    pub status: Option<String>,
    /// Empty (all), `unassigned`, or a client id.
    pub client: Option<String>,
    pub offset: Option<i64>,
}

/// Status filter choices: `active` (new+open+pending, the default), `all`, or one status.
fn parse_status_filter(raw: Option<&str>) -> Result<(String, Vec<TicketStatus>), WebError> {
    match raw.map(str::trim).unwrap_or("active") {
        "" | "active" => Ok((
            "active".to_owned(),
            vec![TicketStatus::New, TicketStatus::Open, TicketStatus::Pending],
        )),
        "all" => Ok(("all".to_owned(), Vec::new())),
        other => {
            let status: TicketStatus = other
                .parse()
                .map_err(|err| WebError::invalid_field("status", err))?;
            Ok((status.as_str().to_owned(), vec![status]))
        }
    }
}

/// Client filter: empty = all, `unassigned`, or a client id.
pub fn parse_client_filter(raw: Option<&str>) -> Result<ClientFilter, WebError> {
    match raw.map(str::trim).unwrap_or("") {
        "" | "all" => Ok(ClientFilter::Any),
        "unassigned" => Ok(ClientFilter::Unassigned),
        id => ClientId::parse(id)
            .map(ClientFilter::Client)
            .map_err(|err| WebError::invalid_field("client", err)),
    }
}

/// `GET /tickets`.
pub async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<ListQuery>,
) -> WebResult<Html<String>> {
    let (status_value, statuses) = parse_status_filter(query.status.as_deref())?;
    let client_filter = parse_client_filter(query.client.as_deref())?;
    let offset = query.offset.unwrap_or(0).max(0);
    let filter = TicketFilter {
        statuses,
        client: client_filter.clone(),
        limit: PAGE_SIZE,
        offset,
    };

    let mut conn = state.db.acquire().await?;
    let page = store::tickets::list(&mut conn, &filter).await?;
    let clients = store::clients::list(&mut conn).await?;
    drop(conn);

    let mut status_options = vec![
        SelectOption::new(
            "active",
            "Active (new, open, pending)",
            status_value == "active",
        ),
        SelectOption::new("all", "All statuses", status_value == "all"),
    ];
    status_options.extend(
        TicketStatus::ALL
            .iter()
            .map(|s| SelectOption::new(s.as_str(), s.label(), status_value == s.as_str())),
    );
    let mut client_options = vec![
        SelectOption::new("", "All clients", client_filter == ClientFilter::Any),
        SelectOption::new(
            "unassigned",
            "Unassigned",
            client_filter == ClientFilter::Unassigned,
        ),
    ];
    client_options.extend(clients.iter().map(|client| {
        SelectOption::new(
            client.id.to_string(),
            client.name.as_str(),
            client_filter == ClientFilter::Client(client.id),
        )
    }));

    let client_param = query.client.clone().unwrap_or_default();
    let href = |offset: i64| {
        let params: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &status_value)
            .append_pair("client", &client_param)
            .append_pair("offset", &offset.to_string())
            .finish();
        format!("/tickets?{params}")
    };
    let shown = i64::try_from(page.items.len()).unwrap_or(i64::MAX);
    let prev_href = (offset > 0).then(|| href((offset - PAGE_SIZE).max(0)));
    let next_href = (offset + shown < page.total).then(|| href(offset + PAGE_SIZE));
    let range_label = if shown == 0 {
        String::new()
    } else {
        format!("{}–{} of {}", offset + 1, offset + shown, page.total)
    };

    let page_view = TicketListPage {
        layout: Layout::new(
            "Tickets",
            "tickets",
            &signed_in.technician,
            &signed_in.session,
        )
        .await,
        tickets: page.items.iter().map(TicketRowView::from).collect(),
        total: page.total,
        status_options,
        client_options,
        prev_href,
        next_href,
        range_label,
    };
    Ok(Html(page_view.render()?))
}

// ---------------------------------------------------------------- view

#[derive(Template)]
#[template(path = "tickets/view.html")]
pub struct TicketPage {
    pub layout: Layout,
    pub ticket: TicketHeaderView,
    pub status_options: Vec<SelectOption>,
    /// Clients that have no tenant ID yet (candidates for "assign this tenant").
    pub assignable_clients: Vec<SelectOption>,
    pub conversation: ConversationView,
}

#[derive(Template)]
#[template(path = "tickets/conversation_fragment.html")]
pub struct ConversationFragment {
    pub conversation: ConversationView,
}

fn parse_ticket_id(raw: &str) -> Result<TicketId, WebError> {
    // A malformed id cannot name an existing ticket: answer like an unknown one.
    TicketId::parse(raw).map_err(|_| WebError::not_found("This ticket"))
}

/// `GET /tickets/{id}`.
pub async fn view(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Html<String>> {
    let id = parse_ticket_id(&id)?;
    let mut conn = state.db.acquire().await?;
    let detail = store::tickets::detail(&mut conn, id).await?;
    let clients = store::clients::list(&mut conn).await?;
    drop(conn);

    let status_options = TicketStatus::ALL
        .iter()
        .map(|s| SelectOption::new(s.as_str(), s.label(), *s == detail.ticket.status))
        .collect();
    let assignable_clients = clients
        .iter()
        .filter(|client: &&Client| client.entra_tenant_id.is_none())
        .map(|client| SelectOption::new(client.id.to_string(), client.name.as_str(), false))
        .collect();
    let page = TicketPage {
        layout: Layout::new(
            format!("#{} {}", detail.ticket.number, detail.ticket.subject),
            "tickets",
            &signed_in.technician,
            &signed_in.session,
        )
        .await,
        ticket: TicketHeaderView::from(&detail.ticket),
        status_options,
        assignable_clients,
        conversation: ConversationView::of(&detail),
    };
    Ok(Html(page.render()?))
}

/// `GET /tickets/{id}/conversation`: the timeline alone, for htmx refresh.
pub async fn conversation(
    State(state): State<AppState>,
    _signed_in: SignedIn,
    Path(id): Path<String>,
) -> WebResult<Html<String>> {
    let id = parse_ticket_id(&id)?;
    let mut conn = state.db.acquire().await?;
    let detail = store::tickets::detail(&mut conn, id).await?;
    Ok(Html(
        ConversationFragment {
            conversation: ConversationView::of(&detail),
        }
        .render()?,
    ))
}

// ---------------------------------------------------------------- form posts

#[derive(Deserialize)]
pub struct StatusForm {
    status: String,
}

/// `POST /tickets/{id}/status`.
pub async fn change_status(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<StatusForm>,
) -> WebResult<Response> {
    let id = parse_ticket_id(&id)?;
    let status: TicketStatus = form
        .status
        .parse()
        .map_err(|err| WebError::invalid_field("status", err))?;
    let mut conn = state.db.acquire().await?;
    let back = format!("/tickets/{id}");
    match store::tickets::set_status(
        &mut conn,
        id,
        status,
        signed_in.technician.id,
        OffsetDateTime::now_utc(),
    )
    .await
    {
        Ok(ticket) => {
            flash_ok(
                &signed_in.session,
                format!("Status changed to {}.", ticket.status.label()),
            )
            .await;
        }
        // A refused transition is shown on the ticket, not as an error page.
        Err(store::StoreError::Invalid(message)) => {
            flash_error(&signed_in.session, format!("Status not changed: {message}")).await;
        }
        Err(err) => return Err(err.into()),
    }
    Ok(Redirect::to(&back).into_response())
}

#[derive(Deserialize)]
pub struct ReplyForm {
    text: String,
    /// `reply` ("Reply in Teams") or `note` ("Internal note").
    kind: String,
}

/// `POST /tickets/{id}/replies`: a public reply or an internal note, by the button pressed.
pub async fn add_reply(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<ReplyForm>,
) -> WebResult<Response> {
    let id = parse_ticket_id(&id)?;
    let back = format!("/tickets/{id}#reply-box");
    if form.text.trim().is_empty() {
        flash_error(
            &signed_in.session,
            "Write something first: the message was empty.",
        )
        .await;
        return Ok(Redirect::to(&back).into_response());
    }
    let internal = match form.kind.as_str() {
        "note" => true,
        "reply" => false,
        _ => return Err(WebError::invalid_field("kind", "must be reply or note")),
    };
    let now = OffsetDateTime::now_utc();
    let outcome = crate::web::actions::add_entry(
        &state,
        id,
        &signed_in.technician,
        &form.text,
        internal,
        now,
    )
    .await;
    match outcome {
        Ok(_) if internal => flash_ok(&signed_in.session, "Internal note added.").await,
        Ok(_) => flash_ok(&signed_in.session, "Reply queued for Teams.").await,
        Err(err)
            if err.status().is_client_error()
                && err.status() != axum::http::StatusCode::NOT_FOUND =>
        {
            flash_error(&signed_in.session, err.message().to_owned()).await;
        }
        Err(err) => return Err(err),
    }
    Ok(Redirect::to(&back).into_response())
}

/// `POST /tickets/{id}/replies/{entry}/retry`: the Retry button of a reply that failed to reach
/// Teams.
pub async fn retry_delivery(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((id, entry)): Path<(String, String)>,
) -> WebResult<Response> {
    let id = parse_ticket_id(&id)?;
    let entry =
        crate::tickets::EntryId::parse(&entry).map_err(|_| WebError::not_found("This reply"))?;
    let back = format!("/tickets/{id}#entry-{entry}");
    match crate::web::actions::retry_delivery(
        &state,
        id,
        entry,
        &signed_in.technician,
        OffsetDateTime::now_utc(),
    )
    .await
    {
        Ok(_) => flash_ok(&signed_in.session, "Reply queued again for Teams.").await,
        Err(err)
            if err.status().is_client_error()
                && err.status() != axum::http::StatusCode::NOT_FOUND =>
        {
            flash_error(&signed_in.session, err.message().to_owned()).await;
        }
        Err(err) => return Err(err),
    }
    Ok(Redirect::to(&back).into_response())
}

#[derive(Deserialize)]
pub struct AssignTenantForm {
    client_id: String,
}

/// `POST /tickets/{id}/assign-tenant`: gives the ticket's (unassigned) tenant to a client, so
/// this and future tickets from that tenant belong to it.
pub async fn assign_tenant(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<AssignTenantForm>,
) -> WebResult<Response> {
    let id = parse_ticket_id(&id)?;
    let client_id = ClientId::parse(&form.client_id)
        .map_err(|err| WebError::invalid_field("client_id", err))?;
    let back = format!("/tickets/{id}");
    let mut conn = state.db.acquire().await?;
    let ticket = store::tickets::get(&mut conn, id).await?;
    let Some(tenant) = ticket
        .unassigned_tenant_id
        .clone()
        .filter(|_| ticket.client_id.is_none())
    else {
        flash_error(
            &signed_in.session,
            "This ticket is not unassigned any more.",
        )
        .await;
        return Ok(Redirect::to(&back).into_response());
    };
    match store::clients::assign_tenant(&mut conn, client_id, &tenant, OffsetDateTime::now_utc())
        .await
    {
        Ok(moved) => {
            let client = store::clients::get(&mut conn, client_id).await?;
            let tickets = match moved.tickets_moved {
                1 => "1 ticket".to_owned(),
                n => format!("{n} tickets"),
            };
            flash_ok(
                &signed_in.session,
                format!(
                    "Tenant {tenant} now belongs to {}; {tickets} moved to it.",
                    client.name
                ),
            )
            .await;
        }
        Err(store::StoreError::Conflict(message) | store::StoreError::Invalid(message)) => {
            flash_error(&signed_in.session, message).await;
        }
        Err(err) => return Err(err.into()),
    }
    Ok(Redirect::to(&back).into_response())
}
