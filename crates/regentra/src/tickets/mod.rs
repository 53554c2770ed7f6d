//! The helpdesk domain: clients, contacts, tickets, entries and their lifecycle rules
//! (ARCHITECTURE §6).
//!
//! This module is pure: validated value types (`TenantId::parse`, `ChatId::parse`, …), the
//! records the store hands out (`Ticket`, `Entry`, `Client`, …) and the lifecycle rules as plain
//! functions in [`lifecycle`]. It must never touch the database, HTTP or Microsoft Graph; the
//! `store` module persists these types and the `web`/`bridge` modules call both.
//!
//! Parse, don't validate: every value that crosses a module boundary is one of the newtypes
//! below, built with `parse` at the edge (form, JSON, Graph payload). Their fields are private,
//! so a `TenantId` in hand is always a well-formed, lower-case GUID.

mod error;
mod ids;
pub mod lifecycle;
mod model;
mod status;
mod values;

pub use error::ValidationError;
pub use ids::{AttachmentId, ClientId, ContactId, EntryId, TechnicianId, TicketId, TokenId};
pub use lifecycle::{CurrentTicket, Decision, ReopenWindow, TransitionError};
pub use model::{
    ApiToken, Attachment, Client, ClientFilter, ClientUpdate, Contact, Delivery, Entry,
    EntryRevision, NewAttachment, NewClient, NewContact, NewTicket, Page, Technician, Ticket,
    TicketDetail, TicketFilter,
};
pub use status::{AttachmentKind, DeliveryState, DownloadState, EntryKind, TicketStatus};
pub use values::{
    ChatId, ClientName, Domain, EntraObjectId, GraphMessageId, TechnicianEmail, TenantId,
    text_to_html,
};
