//! Verify Client Federation (ARCHITECTURE §9): per client, Connected / Blocked / Unknown — and why.
//!
//! Teams chat across tenants works only if both tenants' external-access settings allow it, and
//! Graph cannot read those settings with our scopes (graph-facts §7). So the verdict combines
//! what can honestly be known: the tenant ID's shape, whether the tenant exists (OIDC discovery),
//! live evidence from our own data (last message received, last reply accepted, last send
//! refused), and the MSP tenant's own settings when the admin has imported them.
//!
//! * [`import`]: parses `Get-CsTenantFederationConfiguration | ConvertTo-Json` into
//!   [`MspFederationSettings`], or a clear [`ImportError`] (the caller keeps the old settings).
//! * [`rules`]: [`verdict`] — the precedence of the rules is documented there.
//! * [`check`]: runs the check for every client (lookups, evidence, storing the verdicts).
//! * [`powershell`]: the remediation text — PowerShell, Teams admin center steps, and the message
//!   for the client's administrator.
//!
//! Everything here is pure: no database, no HTTP, no clock. The caller gathers the evidence
//! (running lookups concurrently with a bound and a timeout each), calls [`verdict`] per client
//! and stores the result. This module must never claim Connected without a received message, nor
//! name a blocking side it cannot see.

pub mod check;
pub mod import;
pub mod powershell;
pub mod rules;

pub use import::{
    AllowedDomains, ImportError, MspFederationSettings, import_federation_configuration,
    import_federation_configuration_bytes,
};
pub use powershell::instructions_for_client_admin;
pub use rules::{
    AdminAction, ClientEvidence, FailedSend, FederationResult, FederationStatus, Remediation, Side,
    TenantLookup, verdict,
};
