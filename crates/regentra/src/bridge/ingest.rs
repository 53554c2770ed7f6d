//! Ingest: what one chat's freshly read Graph messages do to the helpdesk (ARCHITECTURE §5.4–5.6,
//! §6), stored together with the chat's cursor in **one transaction**.
//!
//! For every message, oldest first:
//! * a known (chat, message id) with a newer `lastModifiedDateTime` is an edit (the previous text
//!   is kept as a revision) or, when deleted or emptied, a deletion — never a new entry;
//! * a new `message` from a person (`from.user`) in another tenant creates or extends the chat's
//!   ticket (new / append / reopen / follow-up by `tickets::lifecycle`);
//! * the support user's own messages are our side: a reply Regentra sent (matched by stored Graph
//!   id, or by text while it is still being sent) or one typed directly in Teams, recorded as a
//!   reply "sent from Teams";
//! * everything else is skipped and counted by [`SkipReason`].
//!
//! Network work (pasted-image downloads, a member lookup for a sender without tenant id) happens
//! *before* the transaction opens; a failed image download leaves a placeholder attachment that
//! is retried later. This module never reads the chat list, never decides which chats to read
//! and never advances a cursor past messages it did not store: that is the poller's job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use msgraph::model::{ChatMessage, ChatMessageType, ConversationMember};
use msgraph::{GraphClient, HostedContentBytes, HostedContentRef};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bridge::content::{self, AttachmentInput, BodyType, MentionInput, MessageContent};
use crate::store::entries::{self, EditOutcome, EditedMessage, TeamsReply, TeamsReplyOutcome};
use crate::store::poller::{self as poll_store, ChatProgress};
use crate::store::tickets::{self as ticket_store, InboundClientMessage, ReceiveOutcome};
use crate::store::{Db, StoreError};
use crate::tickets::{
    AttachmentKind, ChatId, DownloadState, EntraObjectId, GraphMessageId, NewAttachment,
    NewContact, ReopenWindow, TenantId,
};

/// How long a failed image download waits before its first retry; doubles per attempt.
pub const IMAGE_RETRY_BASE: time::Duration = time::Duration::minutes(5);
/// Attempts after which a pasted image is given up (the placeholder stays).
pub const IMAGE_MAX_ATTEMPTS: i64 = 6;

/// Why a message did not become ticket content. The `as_str` names are the keys of the cycle
/// summary's `skipped` map and of the `regentra_poll_messages_skipped_total` metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// `systemEventMessage`, `chatEvent`, `unknownFutureValue` or an `eventDetail`.
    SystemEvent,
    /// Any other `messageType` (`typing`, a value Graph adds later).
    NotAMessage,
    /// Sent by a bot, connector or application (`from.application`, no `from.user`).
    BotOrApp,
    /// `from: null` (or an empty `from`).
    NoSender,
    /// A sender from the MSP's own tenant (`REGENTRA_IGNORE_OWN_TENANT`).
    OwnTenant,
    /// A meeting chat (counted once per chat; its messages are not read).
    MeetingChat,
    /// Created before the connection's history start (connect time minus backfill).
    BeforeConnect,
    /// Already deleted when first seen.
    DeletedBeforeSeen,
    /// No text and no attachments: treated as deleted, never stored as a blank entry.
    Empty,
    /// The sender's tenant could not be learned (no `tenantId`, not in the chat roster).
    UnknownSenderTenant,
    /// The item could not be read (bad id, timestamp or JSON).
    Unreadable,
    /// The support user wrote in a chat that has no ticket yet.
    OwnMessageWithoutTicket,
    /// A reply Regentra is sending right now; the outbox records its Graph id.
    OwnReplyInFlight,
}

impl SkipReason {
    /// Every reason, for metrics that list all of them.
    pub const ALL: [SkipReason; 13] = [
        SkipReason::SystemEvent,
        SkipReason::NotAMessage,
        SkipReason::BotOrApp,
        SkipReason::NoSender,
        SkipReason::OwnTenant,
        SkipReason::MeetingChat,
        SkipReason::BeforeConnect,
        SkipReason::DeletedBeforeSeen,
        SkipReason::Empty,
        SkipReason::UnknownSenderTenant,
        SkipReason::Unreadable,
        SkipReason::OwnMessageWithoutTicket,
        SkipReason::OwnReplyInFlight,
    ];

    /// The snake_case name used in summaries and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::SystemEvent => "system_event",
            SkipReason::NotAMessage => "not_a_message",
            SkipReason::BotOrApp => "bot_or_app",
            SkipReason::NoSender => "no_sender",
            SkipReason::OwnTenant => "own_tenant",
            SkipReason::MeetingChat => "meeting_chat",
            SkipReason::BeforeConnect => "before_connect",
            SkipReason::DeletedBeforeSeen => "deleted_before_seen",
            SkipReason::Empty => "empty",
            SkipReason::UnknownSenderTenant => "unknown_sender_tenant",
            SkipReason::Unreadable => "unreadable",
            SkipReason::OwnMessageWithoutTicket => "own_message_without_ticket",
            SkipReason::OwnReplyInFlight => "own_reply_in_flight",
        }
    }
}

/// Rules that come from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestSettings {
    /// Skip senders from the MSP's own tenant (`REGENTRA_IGNORE_OWN_TENANT`, default true).
    pub ignore_own_tenant: bool,
    /// Skip meeting chats (default true).
    pub ignore_meeting_chats: bool,
    /// `REGENTRA_REOPEN_DAYS`.
    pub reopen_window: ReopenWindow,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self {
            ignore_own_tenant: true,
            ignore_meeting_chats: true,
            reopen_window: ReopenWindow::default(),
        }
    }
}

/// The connected support user: "our side" of every chat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportUser {
    /// Key of the poller's rows for this account (the connection id).
    pub account_id: String,
    /// Entra object id (`from.user.id` of the support user's messages), compared case-insensitively.
    pub user_id: String,
    pub display_name: String,
    /// The MSP's tenant (own-tenant senders are skipped by default).
    pub tenant_id: Option<TenantId>,
}

/// What one chat's ingest did; added up into the cycle summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestTally {
    /// Messages handed in (after the listing's own de-duplication) plus unreadable items.
    pub messages_seen: u64,
    /// New entries: client messages and replies typed in Teams.
    pub messages_ingested: u64,
    /// Tickets opened (new or follow-up).
    pub tickets_created: u64,
    /// Entries added to an existing ticket.
    pub entries_appended: u64,
    /// Entries whose text changed (previous text kept).
    pub edits: u64,
    /// Entries marked deleted.
    pub deletes: u64,
    /// Skipped messages by reason.
    pub skipped: BTreeMap<SkipReason, u64>,
    /// Pasted images that could not be downloaded now (placeholder stored, retried later).
    pub image_failures: u64,
}

impl IngestTally {
    /// Counts one skipped message.
    pub fn skip(&mut self, reason: SkipReason) {
        *self.skipped.entry(reason).or_default() += 1;
    }

    /// Adds another tally into this one.
    pub fn add(&mut self, other: &IngestTally) {
        self.messages_seen += other.messages_seen;
        self.messages_ingested += other.messages_ingested;
        self.tickets_created += other.tickets_created;
        self.entries_appended += other.entries_appended;
        self.edits += other.edits;
        self.deletes += other.deletes;
        self.image_failures += other.image_failures;
        for (reason, count) in &other.skipped {
            *self.skipped.entry(*reason).or_default() += count;
        }
    }
}

/// How a chat's read ended, which decides what the chat row records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadEnd {
    /// Graph said there is nothing more: the cursor may advance to the newest
    /// `lastModifiedDateTime` read, and the chat's last activity to `activity_at`.
    Complete { activity_at: Option<OffsetDateTime> },
    /// Paging stopped early (repeated link, page cap): messages read are stored, the cursor
    /// stays and the chat is marked `incomplete` so the next cycle reads it again.
    Incomplete { reason: String },
}

/// One chat to ingest.
#[derive(Debug, Clone)]
pub struct ChatBatch<'a> {
    pub chat_id: &'a ChatId,
    /// Graph `chatType` (`oneOnOne`, `group`, …) when known.
    pub chat_type: Option<&'a str>,
    /// Messages as listed (any order; duplicates allowed).
    pub messages: &'a [ChatMessage],
    /// Items of the listing that could not be parsed.
    pub unreadable: usize,
    /// The chat's stored cursor before this read. Messages at or before it that have no entry
    /// were already judged (skipped) by an earlier cycle and are re-read only because of the
    /// overlap: they are neither applied nor counted again.
    pub previous_cursor: Option<OffsetDateTime>,
    pub end: ReadEnd,
}

/// Graph reads the ingest may need: pasted images and, rarely, the chat roster. Implemented by
/// [`GraphClient`]; tests and benchmarks pass [`NoGraph`].
#[async_trait::async_trait]
pub trait GraphReads: Send + Sync {
    /// Bytes of a pasted image.
    async fn hosted_content(
        &self,
        chat_id: &str,
        message_id: &str,
        hosted_content_id: &str,
    ) -> Result<HostedContentBytes, msgraph::Error>;

    /// The chat's members (to learn a sender's tenant when the message does not carry it).
    async fn chat_members(&self, chat_id: &str) -> Result<Vec<ConversationMember>, msgraph::Error>;
}

#[async_trait::async_trait]
impl GraphReads for GraphClient {
    async fn hosted_content(
        &self,
        chat_id: &str,
        message_id: &str,
        hosted_content_id: &str,
    ) -> Result<HostedContentBytes, msgraph::Error> {
        self.get_hosted_content(HostedContentRef::Ids {
            chat_id,
            message_id,
            hosted_content_id,
        })
        .await
    }

    async fn chat_members(&self, chat_id: &str) -> Result<Vec<ConversationMember>, msgraph::Error> {
        Ok(self.list_chat_members(chat_id).await?.members)
    }
}

/// A [`GraphReads`] with nothing behind it: every read fails as "unavailable" (images become
/// placeholders; senders without a tenant id are skipped).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGraph;

#[async_trait::async_trait]
impl GraphReads for NoGraph {
    async fn hosted_content(
        &self,
        _chat_id: &str,
        _message_id: &str,
        _hosted_content_id: &str,
    ) -> Result<HostedContentBytes, msgraph::Error> {
        Err(msgraph::Error::TokenUnavailable {
            message: "no Graph client in this context".into(),
        })
    }

    async fn chat_members(
        &self,
        _chat_id: &str,
    ) -> Result<Vec<ConversationMember>, msgraph::Error> {
        Err(msgraph::Error::TokenUnavailable {
            message: "no Graph client in this context".into(),
        })
    }
}

/// Why a chat could not be ingested. Nothing of the chat was committed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Storing failed; the transaction was rolled back and the cursor did not move.
    #[error("storing the chat's messages failed: {0}")]
    Store(#[from] StoreError),
    /// The Microsoft 365 connection needs a human (raised by a Graph read during preparation).
    #[error(transparent)]
    Graph(#[from] msgraph::Error),
}

/// Everything the ingest needs besides the chat itself.
#[derive(Clone)]
pub struct IngestContext<'a> {
    pub db: &'a Db,
    pub support: &'a SupportUser,
    pub settings: IngestSettings,
    /// Messages created before this open no tickets.
    pub history_start: OffsetDateTime,
    pub graph: Arc<dyn GraphReads>,
    pub now: OffsetDateTime,
}

/// A message ready to store: parsed ids, rendered content, downloaded images.
struct Prepared {
    id: GraphMessageId,
    message: ChatMessage,
    created: OffsetDateTime,
    last_modified: OffsetDateTime,
    rendered: content::RenderedContent,
    known: bool,
    attachments: Vec<NewAttachment>,
    /// Error text of each image that could not be downloaded (same order as the pending
    /// image attachments).
    image_errors: Vec<String>,
    verdict: Verdict,
}

#[derive(Debug, Clone)]
enum Verdict {
    Client(NewContact),
    Support,
    Skip(SkipReason),
}

/// Stores one chat's messages and its progress in one transaction. On error nothing of the chat
/// is committed (its cursor stays), so the next cycle reads the same messages again.
pub async fn ingest_chat(
    ctx: &IngestContext<'_>,
    batch: &ChatBatch<'_>,
) -> Result<IngestTally, IngestError> {
    let mut tally = IngestTally {
        messages_seen: u64::try_from(batch.unreadable).unwrap_or(u64::MAX),
        ..IngestTally::default()
    };
    for _ in 0..batch.unreadable {
        tally.skip(SkipReason::Unreadable);
    }
    let prepared = prepare(ctx, batch, &mut tally).await?;

    let mut tx = ctx.db.begin().await?;
    let mut in_flight: Option<Vec<(crate::tickets::EntryId, String)>> = None;
    for item in &prepared {
        apply(
            ctx,
            batch.chat_id,
            item,
            &mut tx,
            &mut in_flight,
            &mut tally,
        )
        .await?;
    }
    let progress = match &batch.end {
        ReadEnd::Complete { activity_at } => {
            let newest_modified = prepared.iter().map(|p| p.last_modified).max();
            let newest_created = prepared.iter().map(|p| p.created).max();
            ChatProgress {
                chat_type: batch.chat_type.map(str::to_owned),
                message_cursor: newest_modified,
                last_preview_at: [*activity_at, newest_created].into_iter().flatten().max(),
                failure: None,
            }
        }
        ReadEnd::Incomplete { reason } => ChatProgress {
            chat_type: batch.chat_type.map(str::to_owned),
            message_cursor: None,
            last_preview_at: None,
            failure: Some(("incomplete".to_owned(), reason.clone())),
        },
    };
    poll_store::save_chat_progress(
        &mut tx,
        &ctx.support.account_id,
        batch.chat_id,
        &progress,
        ctx.now,
    )
    .await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(tally)
}

/// Parses, classifies, renders and (for new messages) downloads images — no transaction open.
async fn prepare(
    ctx: &IngestContext<'_>,
    batch: &ChatBatch<'_>,
    tally: &mut IngestTally,
) -> Result<Vec<Prepared>, IngestError> {
    // Keep the newest version of each id (listings may repeat an id across pages or cycles).
    let mut newest: HashMap<&str, &ChatMessage> = HashMap::new();
    for message in batch.messages {
        let replace = match newest.get(message.id.as_str()) {
            None => true,
            Some(existing) => {
                message
                    .last_modified_date_time
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH)
                    > existing
                        .last_modified_date_time
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            }
        };
        if replace {
            newest.insert(message.id.as_str(), message);
        }
    }
    let ids: Vec<&str> = newest.keys().copied().collect();
    let known = {
        let mut conn = ctx.db.acquire().await?;
        poll_store::known_message_ids(&mut conn, batch.chat_id, &ids).await?
    };

    let mut members: Option<Vec<ConversationMember>> = None;
    let mut prepared = Vec::with_capacity(newest.len());
    for message in newest.into_values() {
        tally.messages_seen += 1;
        let (Ok(id), Some(created)) = (
            GraphMessageId::parse(&message.id),
            message
                .created_date_time
                .or(message.last_modified_date_time),
        ) else {
            tally.skip(SkipReason::Unreadable);
            continue;
        };
        let last_modified = message.last_modified_date_time.unwrap_or(created);
        let is_known = known.contains(&message.id);
        if !is_known
            && batch
                .previous_cursor
                .is_some_and(|cursor| last_modified <= cursor)
        {
            // Judged by an earlier cycle (it was skipped then); re-read only through the overlap.
            continue;
        }
        let rendered = render(message);
        let mut verdict = if is_known {
            // Known entries are only ever edited or deleted; the sender does not matter.
            Verdict::Support
        } else {
            classify(ctx, batch, message, created, &rendered)
        };
        if let Verdict::Skip(SkipReason::UnknownSenderTenant) = verdict {
            // The message does not say which tenant the sender is in: ask the roster once.
            if members.is_none() {
                members = Some(match ctx.graph.chat_members(batch.chat_id.as_str()).await {
                    Ok(list) => list,
                    Err(error) if error.needs_reconnect() => return Err(error.into()),
                    Err(error) => {
                        tracing::warn!(chat.id = %batch.chat_id, %error, "could not read the chat's members to learn a sender's tenant");
                        Vec::new()
                    }
                });
            }
            verdict = sender_from_roster(ctx, message, members.as_deref().unwrap_or_default());
        }
        let mut attachments: Vec<NewAttachment> = Vec::new();
        let mut image_errors = Vec::new();
        if !is_known && matches!(verdict, Verdict::Client(_)) {
            for link in &rendered.links {
                attachments.push(NewAttachment::link(link.name.clone(), link.url.clone()));
            }
            for (index, image) in rendered.hosted_images.iter().enumerate() {
                let name = image
                    .alt
                    .as_deref()
                    .map(str::trim)
                    .filter(|alt| !alt.is_empty())
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("Pasted image {}", index + 1));
                let hosted_id = decode_path_segment(&image.hosted_content_id);
                match ctx
                    .graph
                    .hosted_content(batch.chat_id.as_str(), &message.id, &hosted_id)
                    .await
                {
                    Ok(bytes) => attachments.push(NewAttachment {
                        kind: AttachmentKind::Image,
                        name,
                        url: Some(image.url.clone()),
                        content_type: bytes.content_type,
                        content: Some(bytes.bytes),
                        download_state: DownloadState::Downloaded,
                    }),
                    Err(error) if error.needs_reconnect() => return Err(error.into()),
                    Err(error) => {
                        tracing::warn!(chat.id = %batch.chat_id, message.id = %message.id, %error, "a pasted image could not be downloaded; storing a placeholder and retrying later");
                        tally.image_failures += 1;
                        image_errors.push(error.to_string());
                        attachments.push(NewAttachment {
                            kind: AttachmentKind::Image,
                            name,
                            url: Some(image.url.clone()),
                            content_type: None,
                            content: None,
                            download_state: DownloadState::Pending,
                        });
                    }
                }
            }
        }
        prepared.push(Prepared {
            id,
            message: message.clone(),
            created,
            last_modified,
            rendered,
            known: is_known,
            attachments,
            image_errors,
            verdict,
        });
    }
    // Oldest first: the first message opens the ticket, later ones append.
    prepared.sort_by(|a, b| (a.created, a.id.as_str()).cmp(&(b.created, b.id.as_str())));
    Ok(prepared)
}

/// Decides what a message that has no entry yet is.
fn classify(
    ctx: &IngestContext<'_>,
    batch: &ChatBatch<'_>,
    message: &ChatMessage,
    created: OffsetDateTime,
    rendered: &content::RenderedContent,
) -> Verdict {
    if message.is_system_event() {
        return Verdict::Skip(SkipReason::SystemEvent);
    }
    match &message.message_type {
        // Absent in some recorded payloads: a message with a body is a message.
        None | Some(ChatMessageType::Message) => {}
        Some(_) => return Verdict::Skip(SkipReason::NotAMessage),
    }
    if ctx.settings.ignore_meeting_chats && batch.chat_type == Some("meeting") {
        return Verdict::Skip(SkipReason::MeetingChat);
    }
    if created < ctx.history_start {
        return Verdict::Skip(SkipReason::BeforeConnect);
    }
    if message.deleted_date_time.is_some() {
        return Verdict::Skip(SkipReason::DeletedBeforeSeen);
    }
    let Some(from) = &message.from else {
        return Verdict::Skip(SkipReason::NoSender);
    };
    let Some(user) = from.user.as_ref().filter(|user| user.id.is_some()) else {
        return if from.application.is_some() {
            Verdict::Skip(SkipReason::BotOrApp)
        } else {
            Verdict::Skip(SkipReason::NoSender)
        };
    };
    let user_id = user.id.as_deref().unwrap_or_default();
    if rendered.is_empty {
        return Verdict::Skip(SkipReason::Empty);
    }
    if user_id.eq_ignore_ascii_case(&ctx.support.user_id) {
        return Verdict::Support;
    }
    let Ok(object_id) = EntraObjectId::parse(user_id) else {
        return Verdict::Skip(SkipReason::Unreadable);
    };
    let Some(tenant) = user
        .tenant_id
        .as_deref()
        .and_then(|t| TenantId::parse(t).ok())
    else {
        return Verdict::Skip(SkipReason::UnknownSenderTenant);
    };
    client_or_own_tenant(ctx, object_id, tenant, user.display_name.clone(), None)
}

fn client_or_own_tenant(
    ctx: &IngestContext<'_>,
    object_id: EntraObjectId,
    tenant: TenantId,
    display_name: Option<String>,
    email: Option<String>,
) -> Verdict {
    if ctx.settings.ignore_own_tenant && ctx.support.tenant_id.as_ref() == Some(&tenant) {
        return Verdict::Skip(SkipReason::OwnTenant);
    }
    Verdict::Client(NewContact {
        entra_object_id: object_id,
        entra_tenant_id: tenant,
        display_name: display_name.unwrap_or_default(),
        email,
    })
}

/// The sender's tenant (and e-mail) from the chat roster, for messages without `tenantId`.
fn sender_from_roster(
    ctx: &IngestContext<'_>,
    message: &ChatMessage,
    members: &[ConversationMember],
) -> Verdict {
    let Some(user) = message.sender_user() else {
        return Verdict::Skip(SkipReason::NoSender);
    };
    let user_id = user.id.as_deref().unwrap_or_default();
    let member = members.iter().find(|member| {
        member
            .user_id
            .as_deref()
            .is_some_and(|id| id.eq_ignore_ascii_case(user_id))
    });
    let tenant = member
        .and_then(|member| member.tenant_id.as_deref())
        .and_then(|tenant| TenantId::parse(tenant).ok());
    match (EntraObjectId::parse(user_id), tenant) {
        (Ok(object_id), Some(tenant)) => client_or_own_tenant(
            ctx,
            object_id,
            tenant,
            user.display_name
                .clone()
                .or_else(|| member.and_then(|m| m.display_name.clone())),
            member.and_then(|m| m.email.clone()),
        ),
        _ => Verdict::Skip(SkipReason::UnknownSenderTenant),
    }
}

/// Applies one prepared message inside the chat's transaction.
async fn apply(
    ctx: &IngestContext<'_>,
    chat: &ChatId,
    item: &Prepared,
    tx: &mut crate::store::Tx,
    in_flight: &mut Option<Vec<(crate::tickets::EntryId, String)>>,
    tally: &mut IngestTally,
) -> Result<(), IngestError> {
    let message = &item.message;
    if item.known {
        if message.deleted_date_time.is_some() || item.rendered.is_empty {
            let at = message.deleted_date_time.unwrap_or(item.last_modified);
            if entries::mark_deleted(tx, chat, &item.id, at).await? == EditOutcome::Applied {
                tally.deletes += 1;
            }
        } else {
            let edited = EditedMessage {
                text: item.rendered.text.clone(),
                html: item.rendered.html.clone(),
                last_modified: item.last_modified,
            };
            if entries::apply_edit(tx, chat, &item.id, &edited, ctx.now).await?
                == EditOutcome::Applied
            {
                tally.edits += 1;
            }
        }
        return Ok(());
    }
    match &item.verdict {
        Verdict::Skip(reason) => tally.skip(*reason),
        Verdict::Support => {
            if in_flight.is_none() {
                *in_flight = Some(poll_store::replies_in_flight(tx, chat).await?);
            }
            let body = message_body_html(message);
            let ours = in_flight
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|(_, text)| content::reply_text_matches(&content::reply_html(text), &body));
            if ours {
                tally.skip(SkipReason::OwnReplyInFlight);
                return Ok(());
            }
            let reply = TeamsReply {
                chat_id: chat.clone(),
                graph_message_id: item.id.clone(),
                author_name: message
                    .sender_user()
                    .and_then(|user| user.display_name.clone())
                    .unwrap_or_else(|| ctx.support.display_name.clone()),
                text: item.rendered.text.clone(),
                html: item.rendered.html.clone(),
                sent_at: item.created,
                last_modified: item.last_modified,
            };
            match entries::record_teams_reply(tx, &reply, ctx.now).await? {
                TeamsReplyOutcome::Recorded { .. } => {
                    tally.messages_ingested += 1;
                    tally.entries_appended += 1;
                }
                TeamsReplyOutcome::AlreadyKnown { .. } => {}
                TeamsReplyOutcome::NoTicket => tally.skip(SkipReason::OwnMessageWithoutTicket),
            }
        }
        Verdict::Client(sender) => {
            let inbound = InboundClientMessage {
                chat_id: chat.clone(),
                graph_message_id: item.id.clone(),
                sender: sender.clone(),
                text: item.rendered.text.clone(),
                html: item.rendered.html.clone(),
                sent_at: item.created,
                last_modified: item.last_modified,
                attachments: item.attachments.clone(),
            };
            let received = ticket_store::receive_client_message(
                tx,
                &inbound,
                ctx.settings.reopen_window,
                ctx.now,
            )
            .await?;
            match received.outcome {
                ReceiveOutcome::AlreadyKnown => {}
                ReceiveOutcome::NewTicket | ReceiveOutcome::FollowUp { .. } => {
                    tally.messages_ingested += 1;
                    tally.tickets_created += 1;
                }
                ReceiveOutcome::Appended | ReceiveOutcome::Reopened { .. } => {
                    tally.messages_ingested += 1;
                    tally.entries_appended += 1;
                }
            }
            if received.outcome.is_new() && !item.image_errors.is_empty() {
                let entry = entries::get(tx, received.entry_id).await?;
                let pending = entry
                    .attachments
                    .iter()
                    .filter(|a| a.download_state == DownloadState::Pending);
                for (attachment, error) in pending.zip(item.image_errors.iter()) {
                    poll_store::schedule_download_retry(
                        tx,
                        attachment.id,
                        ctx.now + IMAGE_RETRY_BASE,
                        error,
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Maps a Graph message to the content module's input and renders it.
pub fn render(message: &ChatMessage) -> content::RenderedContent {
    let attachments: Vec<AttachmentInput> = message
        .attachments
        .iter()
        .map(|a| AttachmentInput {
            id: a.id.clone(),
            content_type: a.content_type.clone(),
            content_url: a.content_url.clone(),
            content: a.content.clone(),
            name: a.name.clone(),
            thumbnail_url: a.thumbnail_url.clone(),
        })
        .collect();
    let mentions: Vec<MentionInput> = message
        .mentions
        .iter()
        .filter_map(|m| {
            let mentioned = m.mentioned.as_ref();
            let identity = mentioned.and_then(|set| {
                set.user
                    .as_ref()
                    .or(set.application.as_ref())
                    .or(set.conversation.as_ref())
                    .or(set.tag.as_ref())
            });
            Some(MentionInput {
                id: m.id?,
                mention_text: m.mention_text.clone(),
                mentioned_id: identity.and_then(|i| i.id.clone()),
                display_name: identity.and_then(|i| i.display_name.clone()),
            })
        })
        .collect();
    let (body, body_type) = match &message.body {
        Some(body) => (
            body.content.as_deref().unwrap_or_default(),
            body.content_type
                .as_ref()
                .map(|t| BodyType::from_graph(t.as_str()))
                .unwrap_or(BodyType::Text),
        ),
        None => ("", BodyType::Html),
    };
    content::render(&MessageContent {
        body,
        body_type,
        attachments: &attachments,
        mentions: &mentions,
    })
}

/// The body as HTML (a text body is escaped the way a reply would be), for comparing with a
/// reply Regentra is sending.
fn message_body_html(message: &ChatMessage) -> String {
    let Some(body) = &message.body else {
        return String::new();
    };
    let content = body.content.as_deref().unwrap_or_default();
    match body
        .content_type
        .as_ref()
        .map(|t| BodyType::from_graph(t.as_str()))
    {
        Some(BodyType::Html) => content.to_owned(),
        _ => content::reply_html(content),
    }
}

/// A hosted-content id as it appears in a URL path, percent-decoded (the client encodes path
/// segments itself).
fn decode_path_segment(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

/// `(chat id, message id, hosted content id)` from a `…/chats/{chat}/messages/{message}/
/// hostedContents/{id}/$value` URL, percent-decoded; `None` for anything else.
pub fn hosted_content_ids(url: &str) -> Option<(String, String, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let segments: Vec<String> = parsed.path_segments()?.map(decode_path_segment).collect();
    let chats = segments.iter().position(|s| s == "chats")?;
    match &segments[chats..] {
        [_, chat, messages, message, hosted, id, ..]
            if messages == "messages" && hosted == "hostedContents" =>
        {
            Some((chat.clone(), message.clone(), id.clone()))
        }
        _ => None,
    }
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_content_urls_yield_their_ids() {
        let url = "https://graph.microsoft.com/v1.0/chats/19:2da4c29f6d7041eca70b638b43d45437@thread.v2/messages/1615971548136/hostedContents/aWQ9eF8wLXd1cy1kMTEtZmY%3D/$value";
        let (chat, message, id) = hosted_content_ids(url).unwrap();
        assert_eq!(chat, "19:2da4c29f6d7041eca70b638b43d45437@thread.v2");
        assert_eq!(message, "1615971548136");
        assert_eq!(id, "aWQ9eF8wLXd1cy1kMTEtZmY=");
        assert_eq!(hosted_content_ids("https://example.com/a.png"), None);
    }

    #[test]
    fn skip_reason_names_are_unique_snake_case() {
        let names: std::collections::BTreeSet<&str> =
            SkipReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), SkipReason::ALL.len());
        for reason in SkipReason::ALL {
            let json = serde_json::to_string(&reason).unwrap();
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
    }
}
