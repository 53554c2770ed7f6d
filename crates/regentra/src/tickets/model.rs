//! The records of the helpdesk as the rest of Regentra sees them (what `store` returns and
//! accepts). Plain data with validated field types; no behaviour beyond small helpers.
//!
//! These are not the JSON API shapes: `web` maps them to its own response types, so the
//! database and the API can evolve separately. Nothing here holds a secret.

use time::OffsetDateTime;

use super::{
    AttachmentId, AttachmentKind, ChatId, ClientId, ClientName, ContactId, DeliveryState, Domain,
    DownloadState, EntraObjectId, EntryId, EntryKind, GraphMessageId, TechnicianEmail,
    TechnicianId, TenantId, TicketId, TicketStatus, TokenId, ValidationError,
};

/// A helpdesk user who logs in to the web UI. (The password hash never leaves the store.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Technician {
    pub id: TechnicianId,
    pub email: TechnicianEmail,
    pub display_name: String,
    pub created_at: OffsetDateTime,
}

/// An API token's metadata. The token itself is shown once at creation and stored only as a
/// SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: TokenId,
    pub technician_id: TechnicianId,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A client (customer company). Tickets from senders whose Entra tenant equals
/// `entra_tenant_id` belong to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub name: ClientName,
    pub entra_tenant_id: Option<TenantId>,
    pub domains: Vec<Domain>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A client to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClient {
    pub name: ClientName,
    pub entra_tenant_id: Option<TenantId>,
    pub domains: Vec<Domain>,
}

impl NewClient {
    /// Parses the raw fields of a form or JSON body. An empty or blank tenant id means "none".
    /// Domains are de-duplicated (after normalisation) and kept in the given order.
    pub fn parse(
        name: &str,
        entra_tenant_id: Option<&str>,
        domains: &[String],
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            name: ClientName::parse(name)?,
            entra_tenant_id: parse_optional_tenant(entra_tenant_id)?,
            domains: parse_domains(domains)?,
        })
    }
}

/// A partial update of a client (`PATCH` semantics): `None` leaves a field as it is.
/// `entra_tenant_id: Some(None)` removes the tenant id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientUpdate {
    pub name: Option<ClientName>,
    pub entra_tenant_id: Option<Option<TenantId>>,
    pub domains: Option<Vec<Domain>>,
}

impl ClientUpdate {
    /// Parses raw optional fields; `Some("")` for the tenant id means "remove it".
    pub fn parse(
        name: Option<&str>,
        entra_tenant_id: Option<&str>,
        domains: Option<&[String]>,
    ) -> Result<Self, ValidationError> {
        Ok(Self {
            name: name.map(ClientName::parse).transpose()?,
            entra_tenant_id: entra_tenant_id
                .map(|raw| parse_optional_tenant(Some(raw)))
                .transpose()?,
            domains: domains.map(parse_domains).transpose()?,
        })
    }
}

fn parse_optional_tenant(raw: Option<&str>) -> Result<Option<TenantId>, ValidationError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => TenantId::parse(value).map(Some),
    }
}

/// Parses domains; also accepts one entry holding several separated by commas, spaces or
/// newlines (as typed into a single form field). Blank pieces are ignored.
fn parse_domains(raw: &[String]) -> Result<Vec<Domain>, ValidationError> {
    let mut domains: Vec<Domain> = Vec::new();
    for piece in raw
        .iter()
        .flat_map(|entry| entry.split(|c: char| c == ',' || c == ';' || c.is_whitespace()))
        .filter(|piece| !piece.trim().is_empty())
    {
        let domain = Domain::parse(piece)?;
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    Ok(domains)
}

/// A person at a client, identified by Entra object id + tenant id (the key Teams gives us).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub id: ContactId,
    /// `None` while the contact's tenant belongs to no client (Unassigned).
    pub client_id: Option<ClientId>,
    pub display_name: String,
    pub email: Option<String>,
    pub entra_object_id: EntraObjectId,
    pub entra_tenant_id: TenantId,
    pub created_at: OffsetDateTime,
}

/// A contact as seen on a message: found by (object id, tenant id) or created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewContact {
    pub entra_object_id: EntraObjectId,
    pub entra_tenant_id: TenantId,
    pub display_name: String,
    pub email: Option<String>,
}

/// A ticket, with the display names the list and detail views need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub id: TicketId,
    /// Sequential, human-facing number (`#42`), unique across all tickets.
    pub number: i64,
    pub subject: String,
    pub status: TicketStatus,
    /// `None` = Unassigned.
    pub client_id: Option<ClientId>,
    /// The client's name (joined), when assigned.
    pub client_name: Option<String>,
    /// For Unassigned tickets: the sender's tenant, shown so a technician can assign it.
    pub unassigned_tenant_id: Option<TenantId>,
    pub requester_contact_id: Option<ContactId>,
    /// The requester's display name (joined).
    pub requester_name: Option<String>,
    /// The Teams chat this ticket lives in (replies go there).
    pub teams_chat_id: Option<ChatId>,
    /// The earlier ticket this one follows up (closed, or resolved outside the reopen window).
    pub follow_up_of: Option<TicketId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub resolved_at: Option<OffsetDateTime>,
    pub closed_at: Option<OffsetDateTime>,
}

/// A ticket to create by hand (API/UI). Tickets from Teams are created by
/// `store::tickets::receive_client_message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub subject: String,
    pub client_id: Option<ClientId>,
    pub unassigned_tenant_id: Option<TenantId>,
    pub requester_contact_id: Option<ContactId>,
    pub teams_chat_id: Option<ChatId>,
    pub follow_up_of: Option<TicketId>,
}

impl NewTicket {
    /// A ticket with just a subject (Unassigned, no requester, no chat).
    pub fn with_subject(subject: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            client_id: None,
            unassigned_tenant_id: None,
            requester_contact_id: None,
            teams_chat_id: None,
            follow_up_of: None,
        }
    }
}

/// A ticket with its whole timeline, oldest entry first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketDetail {
    pub ticket: Ticket,
    pub entries: Vec<Entry>,
}

/// One entry of a ticket's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: EntryId,
    pub ticket_id: TicketId,
    pub kind: EntryKind,
    pub author_technician_id: Option<TechnicianId>,
    pub author_contact_id: Option<ContactId>,
    /// Name shown on the timeline (technician, Teams sender, or "Regentra" for events).
    pub author_name: String,
    /// Readable plain text.
    pub text: String,
    /// Sanitised HTML for display (never raw Teams HTML).
    pub html: String,
    /// The Teams chat this entry came from or is delivered to.
    pub teams_chat_id: Option<ChatId>,
    /// The Graph message id, once known (inbound: always; replies: after sending).
    pub graph_message_id: Option<GraphMessageId>,
    /// Graph `lastModifiedDateTime` of the version we hold (for edit detection).
    pub graph_last_modified: Option<OffsetDateTime>,
    /// A reply the support user typed directly in Teams (not through Regentra).
    pub sent_from_teams: bool,
    /// Delivery to Teams (replies only).
    pub delivery: Option<Delivery>,
    pub edited_at: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub attachments: Vec<Attachment>,
}

/// Delivery state of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub state: DeliveryState,
    pub attempts: i64,
    /// The last error, shown on the ticket (cleared when sent).
    pub error: Option<String>,
    pub sent_at: Option<OffsetDateTime>,
}

/// The text an entry had before an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRevision {
    pub entry_id: EntryId,
    pub previous_text: String,
    pub previous_html: String,
    pub replaced_at: OffsetDateTime,
}

/// A file or link attached to an entry. The bytes are fetched separately
/// (`store::entries::attachment_content`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: AttachmentId,
    pub entry_id: EntryId,
    pub kind: AttachmentKind,
    pub name: String,
    pub url: Option<String>,
    pub content_type: Option<String>,
    /// Size of the stored bytes, when downloaded.
    pub size_bytes: Option<i64>,
    pub download_state: DownloadState,
    pub created_at: OffsetDateTime,
}

/// An attachment to store with an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttachment {
    pub kind: AttachmentKind,
    pub name: String,
    pub url: Option<String>,
    pub content_type: Option<String>,
    /// The bytes, when already downloaded (then `download_state` is `Downloaded`).
    pub content: Option<Vec<u8>>,
    pub download_state: DownloadState,
}

impl NewAttachment {
    /// A link attachment (nothing to download).
    pub fn link(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            kind: AttachmentKind::Link,
            name: name.into(),
            url: Some(url.into()),
            content_type: None,
            content: None,
            download_state: DownloadState::NotNeeded,
        }
    }
}

/// Which client a ticket list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ClientFilter {
    /// All tickets.
    #[default]
    Any,
    /// Only tickets without a client.
    Unassigned,
    /// Only this client's tickets.
    Client(ClientId),
}

/// Ticket list query. `statuses` empty = every status. Sorted by last activity, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFilter {
    pub statuses: Vec<TicketStatus>,
    pub client: ClientFilter,
    /// Page size; the store clamps it to 1..=1000.
    pub limit: i64,
    pub offset: i64,
}

impl Default for TicketFilter {
    fn default() -> Self {
        Self {
            statuses: Vec::new(),
            client: ClientFilter::Any,
            limit: 100,
            offset: 0,
        }
    }
}

/// One page of a list plus the total number of matching rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_client_parses_tenant_and_domain_list() {
        let client = NewClient::parse(
            " Contoso ",
            Some("72F988BF-86F1-41AF-91AB-2D7CD011DB47"),
            &[
                "Contoso.com, contoso.co.uk".to_owned(),
                "contoso.com".to_owned(),
            ],
        )
        .unwrap();
        assert_eq!(client.name.as_str(), "Contoso");
        assert_eq!(
            client.entra_tenant_id.unwrap().as_str(),
            "72f988bf-86f1-41af-91ab-2d7cd011db47"
        );
        let domains: Vec<&str> = client.domains.iter().map(Domain::as_str).collect();
        assert_eq!(domains, ["contoso.com", "contoso.co.uk"]);
    }

    #[test]
    fn new_client_with_blank_tenant_has_none() {
        let client = NewClient::parse("Fabrikam", Some("  "), &[]).unwrap();
        assert_eq!(client.entra_tenant_id, None);
    }

    #[test]
    fn new_client_with_bad_tenant_names_the_field() {
        let err = NewClient::parse("Fabrikam", Some("fabrikam.com"), &[]).unwrap_err();
        assert_eq!(err.field(), "entra_tenant_id");
    }

    #[test]
    fn client_update_distinguishes_absent_from_removed_tenant() {
        let untouched = ClientUpdate::parse(Some("New name"), None, None).unwrap();
        assert_eq!(untouched.entra_tenant_id, None);
        let removed = ClientUpdate::parse(None, Some(""), None).unwrap();
        assert_eq!(removed.entra_tenant_id, Some(None));
    }
}
