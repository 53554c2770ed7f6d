//! The demo world used by `regentra demo`: the MSP "Northwind IT" with its shared support user,
//! an app registration for Regentra, and client tenants whose Teams federation is allowed
//! (Contoso) or blocked (Fabrikam), plus a well-known tenant id that does not exist at all.
//!
//! All ids, names and the secret are made up. Never put real tenant data here.

use serde_json::{Map, Value, json};

use crate::scenario::{
    ExternalAccess, ExternalAccessMode, Scenario, ScenarioApp, ScenarioTenant, ScenarioUser,
};

pub const MSP_TENANT_ID: &str = "4b6e1f3a-7c2d-4e8f-9a1b-2c3d4e5f6a70";
pub const MSP_TENANT_NAME: &str = "Northwind IT";
pub const MSP_DOMAIN: &str = "northwind-it.example";
/// The shared support account the bridge connects.
pub const SUPPORT_USER_ID: &str = "9d2c5a1e-3f4b-4c6d-8e7f-0a1b2c3d4e51";
pub const SUPPORT_UPN: &str = "support@northwind-it.example";
pub const SUPPORT_DISPLAY_NAME: &str = "Northwind IT Support";
/// One MSP technician (same tenant as the support user).
pub const STAFF_USER_ID: &str = "1e7a9b3c-5d2f-4a8e-b6c4-d0e1f2a3b452";
pub const STAFF_UPN: &str = "alex.morgan@northwind-it.example";

pub const CONTOSO_TENANT_ID: &str = "c0a1b2c3-d4e5-4f60-8a7b-9c0d1e2f3a41";
pub const CONTOSO_TENANT_NAME: &str = "Contoso";
pub const CONTOSO_DOMAIN: &str = "contoso.example";
pub const CONTOSO_USER_1_ID: &str = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c61";
pub const CONTOSO_USER_1_UPN: &str = "pat.lee@contoso.example";
pub const CONTOSO_USER_2_ID: &str = "3b4c5d6e-7f8a-4b9c-8d1e-2f3a4b5c6d72";
pub const CONTOSO_USER_2_UPN: &str = "robin.diaz@contoso.example";

pub const FABRIKAM_TENANT_ID: &str = "f0b1c2d3-e4f5-4a06-9b7c-8d9e0f1a2b33";
pub const FABRIKAM_TENANT_NAME: &str = "Fabrikam";
pub const FABRIKAM_DOMAIN: &str = "fabrikam.example";
pub const FABRIKAM_USER_ID: &str = "4c5d6e7f-8a9b-4c0d-9e1f-3a4b5c6d7e83";
pub const FABRIKAM_USER_UPN: &str = "sam.king@fabrikam.example";

/// A well-formed tenant id that the simulator does NOT know (discovery answers AADSTS90002).
pub const UNKNOWN_CLIENT_TENANT_ID: &str = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a94";
pub const UNKNOWN_CLIENT_NAME: &str = "Tailspin Toys";

pub const REGENTRA_CLIENT_ID: &str = "6f7a8b9c-0d1e-4f2a-9b3c-4d5e6f7a8b05";
/// Made-up simulator secret; only valid against this simulator.
pub const REGENTRA_CLIENT_SECRET: &str = "sim-demo-secret-NOT-A-REAL-SECRET";
pub const REGENTRA_APP_NAME: &str = "Regentra Helpdesk";

fn tenant(id: &str, name: &str, domain: &str, mode: ExternalAccessMode) -> ScenarioTenant {
    ScenarioTenant {
        id: id.to_owned(),
        display_name: name.to_owned(),
        verified_domains: vec![json!(domain)],
        teams_external_access: ExternalAccess {
            mode,
            allowed_domains: Vec::new(),
            blocked_domains: Vec::new(),
        },
        admin_consent_required: false,
        admin_consent_granted: Vec::new(),
        extra: Map::new(),
    }
}

fn user(
    id: &str,
    tenant_id: &str,
    upn: &str,
    display_name: &str,
    given: &str,
    surname: &str,
    job: &str,
) -> ScenarioUser {
    let mut extra = Map::new();
    extra.insert("givenName".into(), Value::from(given));
    extra.insert("surname".into(), Value::from(surname));
    extra.insert("jobTitle".into(), Value::from(job));
    extra.insert("preferredLanguage".into(), Value::from("en-US"));
    ScenarioUser {
        id: id.to_owned(),
        tenant_id: tenant_id.to_owned(),
        user_principal_name: upn.to_owned(),
        display_name: display_name.to_owned(),
        mail: Some(upn.to_owned()),
        extra,
    }
}

/// The demo scenario. `app_redirect_uri` is Regentra's callback, e.g.
/// `http://127.0.0.1:8080/integrations/teams/callback` (known only once the app has its port).
pub fn demo_scenario(app_redirect_uri: &str) -> Scenario {
    Scenario {
        tenants: vec![
            tenant(
                MSP_TENANT_ID,
                MSP_TENANT_NAME,
                MSP_DOMAIN,
                ExternalAccessMode::AllowAll,
            ),
            tenant(
                CONTOSO_TENANT_ID,
                CONTOSO_TENANT_NAME,
                CONTOSO_DOMAIN,
                ExternalAccessMode::AllowAll,
            ),
            tenant(
                FABRIKAM_TENANT_ID,
                FABRIKAM_TENANT_NAME,
                FABRIKAM_DOMAIN,
                ExternalAccessMode::BlockAll,
            ),
        ],
        users: vec![
            user(
                SUPPORT_USER_ID,
                MSP_TENANT_ID,
                SUPPORT_UPN,
                SUPPORT_DISPLAY_NAME,
                "Support",
                "Desk",
                "Service Desk",
            ),
            user(
                STAFF_USER_ID,
                MSP_TENANT_ID,
                STAFF_UPN,
                "Alex Morgan",
                "Alex",
                "Morgan",
                "Technician",
            ),
            user(
                CONTOSO_USER_1_ID,
                CONTOSO_TENANT_ID,
                CONTOSO_USER_1_UPN,
                "Pat Lee",
                "Pat",
                "Lee",
                "Office Manager",
            ),
            user(
                CONTOSO_USER_2_ID,
                CONTOSO_TENANT_ID,
                CONTOSO_USER_2_UPN,
                "Robin Diaz",
                "Robin",
                "Diaz",
                "Accountant",
            ),
            user(
                FABRIKAM_USER_ID,
                FABRIKAM_TENANT_ID,
                FABRIKAM_USER_UPN,
                "Sam King",
                "Sam",
                "King",
                "Director",
            ),
        ],
        app_registrations: vec![ScenarioApp {
            client_id: REGENTRA_CLIENT_ID.to_owned(),
            client_secret: REGENTRA_CLIENT_SECRET.to_owned(),
            redirect_uris: vec![app_redirect_uri.to_owned()],
            display_name: Some(REGENTRA_APP_NAME.to_owned()),
            allow_any_loopback_port: false,
        }],
        chats: Vec::new(),
        extra: Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_scenario_is_consistent_and_leaves_the_unknown_tenant_out() {
        let scenario = demo_scenario("http://127.0.0.1:8080/integrations/teams/callback");
        assert!(scenario.check().is_ok());
        assert!(
            !scenario
                .tenants
                .iter()
                .any(|t| t.id == UNKNOWN_CLIENT_TENANT_ID)
        );
        assert_eq!(
            scenario
                .users
                .iter()
                .filter(|u| u.tenant_id == CONTOSO_TENANT_ID)
                .count(),
            2
        );
    }
}
