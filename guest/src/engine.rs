//! The exported `engine` functions as plain Rust over [`Env`]: `info`,
//! `required-permissions`, `check-permissions`, `sync` (in [`crate::sync`]), the
//! organization review (in [`crate::review`]), and the reads outside a sync
//! (`partner-relationships`, `app-credentials`, in [`crate::lookups`]).

use crate::bindings::m365sync::engine::log::Level;
use crate::fieldmap::FieldMap;
use crate::graph::token::token_roles;
use crate::lookups;
use crate::permissions;
use crate::platform::Env;
use crate::review;
use crate::sync::{self, IMPLEMENTED};
use crate::types::{
    AppCredential, DelegatedRelationship, EngineInfo, Features, FieldMapping, HttpFailure,
    OrganizationMatch, Permission, PermissionCheck, ReviewAction, SyncError, SyncFailure,
    SyncPreview, SyncReport, SyncRequest, Tenant,
};
use crate::url::display_url;

/// The WIT package version this engine was built from.
pub const WIT_VERSION: &str = "0.6.0";

pub fn info() -> EngineInfo {
    EngineInfo {
        wit_version: WIT_VERSION.into(),
        engine_version: env!("CARGO_PKG_VERSION").into(),
        features: IMPLEMENTED,
    }
}

pub fn required_permissions(features: Features) -> Vec<Permission> {
    permissions::required(features)
}

/// Signs in and compares the token's `roles` with what `features` need.
pub fn check_permissions(
    env: &mut Env<'_>,
    tenant: &Tenant,
    features: Features,
) -> Result<PermissionCheck, SyncError> {
    let t = sync::check_tenant(tenant)?;
    let mut graph = sync::graph_client(
        &mut *env.http,
        &mut *env.clock,
        &mut *env.secrets,
        &mut *env.credentials,
        &t,
    )?;
    let token_url = graph.token_url();
    let result = graph.sign_in().and_then(|token| {
        token_roles(token).map_err(|why| {
            SyncError::BadResponse(HttpFailure {
                url: display_url(&token_url),
                status: Some(200),
                graph_code: None,
                message: format!("{why}, so the app's permissions cannot be read from it"),
            })
        })
    });
    let redactor = graph.redactor().clone();
    let roles = result.map_err(|e| redactor.error(e))?;
    let check = permissions::check(roles, features, &t.client_id);
    sync::log_line(
        &mut *env.log,
        &redactor,
        Level::Info,
        &format!(
            "permissions of tenant {}: {} granted, {} missing",
            t.key,
            check.granted.len(),
            check.missing.len()
        ),
    );
    Ok(check)
}

pub fn sync(env: &mut Env<'_>, request: &SyncRequest) -> Result<SyncReport, Box<SyncFailure>> {
    sync::run(env, request)
}

pub fn preview(env: &mut Env<'_>, request: &SyncRequest) -> Result<SyncPreview, SyncError> {
    sync::preview(env, request)
}

pub fn field_map(overrides: &[FieldMapping]) -> Result<Vec<FieldMapping>, SyncError> {
    FieldMap::resolve(overrides).map(|m| m.mappings())
}

pub fn review_organization(
    env: &mut Env<'_>,
    tenant: &Tenant,
) -> Result<OrganizationMatch, SyncError> {
    review::review(env, tenant)
}

pub fn decide_organization(
    env: &mut Env<'_>,
    tenant: &Tenant,
    action: &ReviewAction,
) -> Result<OrganizationMatch, SyncError> {
    review::decide(env, tenant, action)
}

pub fn partner_relationships(
    env: &mut Env<'_>,
    partner: &Tenant,
) -> Result<Vec<DelegatedRelationship>, SyncError> {
    lookups::partner_relationships(env, partner)
}

pub fn app_credentials(
    env: &mut Env<'_>,
    tenant: &Tenant,
) -> Result<Vec<AppCredential>, SyncError> {
    lookups::app_credentials(env, tenant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::{World, fake_jwt, json_response, tenant, token_response};

    #[test]
    fn info_names_versions_and_features() {
        let i = info();
        assert_eq!(i.wit_version, "0.6.0");
        assert_eq!(i.engine_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(i.features, Features::all());
    }

    /// `WIT_VERSION` is a copy of the package line of the WIT the bindings came from.
    #[test]
    fn wit_version_is_the_packages() {
        let wit = include_str!("../../wit/engine.wit");
        let package = format!("\npackage m365sync:engine@{WIT_VERSION};\n");
        assert!(wit.contains(&package), "wit/engine.wit lacks {package:?}");
    }

    #[test]
    fn check_permissions_compares_roles() {
        let mut w = World::new();
        let token = fake_jwt(&["User.Read.All", "Organization.Read.All"]);
        w.http
            .push_ok("POST https://login.test/", token_response(&token, 3600));
        let c = check_permissions(
            &mut w.env(),
            &tenant(),
            Features::USERS | Features::ORGANIZATION | Features::MAILBOXES,
        )
        .unwrap();
        assert_eq!(c.granted, vec!["Organization.Read.All", "User.Read.All"]);
        let missing: Vec<_> = c
            .missing
            .iter()
            .map(|m| (m.permission.as_str(), m.feature.as_str()))
            .collect();
        assert_eq!(
            missing,
            vec![
                ("Domain.Read.All", "organization"),
                ("Reports.Read.All", "mailboxes")
            ]
        );
        w.http.assert_done();
        assert!(w.store.commits.is_empty());
    }

    #[test]
    fn check_permissions_signs_in_with_a_federated_token() {
        use crate::fakes::federated_token;
        let mut w = World::new();
        w.secrets.0.clear();
        w.credentials.push(Ok(federated_token()));
        w.http.push_ok(
            "POST https://login.test/",
            token_response(&fake_jwt(&["User.Read.All"]), 3600),
        );
        let mut t = tenant();
        t.credential = crate::types::CredentialKind::ClientAssertion;
        let c = check_permissions(&mut w.env(), &t, Features::USERS).unwrap();
        assert!(c.missing.is_empty());
        let form = String::from_utf8(w.http.sent[0].body.clone().unwrap()).unwrap();
        assert!(form.contains(&federated_token()), "{form}");

        // Refused: no federated credential matches its subject.
        let mut w = World::new();
        w.credentials.push(Ok(federated_token()));
        w.http.push_ok(
            "POST https://login.test/",
            json_response(
                400,
                r#"{"error":"invalid_client","error_description":"AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:m365sync:engine'.","error_codes":[700213]}"#,
            ),
        );
        let Err(SyncError::Auth(a)) = check_permissions(&mut w.env(), &t, Features::USERS) else {
            panic!()
        };
        assert_eq!(a.failure, crate::types::AuthFailure::InvalidAssertion);
        for want in [
            "matches the token's subject",
            "https://oidc.example.test/cluster-1",
            "Federated credentials",
        ] {
            assert!(a.message.contains(want), "{want}: {}", a.message);
        }
    }

    #[test]
    fn check_permissions_with_an_opaque_token_is_a_bad_response() {
        let mut w = World::new();
        w.http.push_ok(
            "POST https://login.test/",
            token_response("opaque-token-value", 3600),
        );
        let Err(SyncError::BadResponse(f)) =
            check_permissions(&mut w.env(), &tenant(), Features::USERS)
        else {
            panic!()
        };
        assert_eq!(f.url, "https://login.test/tenant-1/oauth2/v2.0/token");
        assert!(!f.message.contains("opaque-token-value"));
    }

    #[test]
    fn check_permissions_reports_sign_in_failures() {
        let mut w = World::new();
        w.http.push_ok(
            "POST https://login.test/",
            json_response(
                400,
                r#"{"error":"unauthorized_client","error_description":"AADSTS700016: Application not found.","error_codes":[700016]}"#,
            ),
        );
        let Err(SyncError::Auth(a)) = check_permissions(&mut w.env(), &tenant(), Features::USERS)
        else {
            panic!()
        };
        assert_eq!(a.failure, crate::types::AuthFailure::AppNotFound);
    }

    fn org(id: &str, name: &str) -> crate::types::PlatformOrganization {
        crate::types::PlatformOrganization {
            id: id.into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_review_workflow_suggests_accepts_ignores_and_refuses_duplicates() {
        use crate::types::MatchState;
        let mut w = World::new();
        w.store
            .checkpoints
            .insert(review::ORGANIZATION_NAME.into(), "Contoso Ltd.".into());
        w.store.organizations = vec![org("o1", "Contoso Holdings"), org("o2", "Fabrikam")];
        let t = tenant();

        let m = review_organization(&mut w.env(), &t).unwrap();
        assert_eq!(m.state, MatchState::Suggested);
        assert_eq!(m.suggestions[0].organization.id, "o1");

        let e = decide_organization(&mut w.env(), &t, &ReviewAction::Create).unwrap_err();
        assert!(
            matches!(&e, SyncError::InvalidRequest(m) if m.contains("o1")),
            "{e:?}"
        );
        let e =
            decide_organization(&mut w.env(), &t, &ReviewAction::Accept("o2".into())).unwrap_err();
        assert!(matches!(e, SyncError::InvalidRequest(_)));

        let m = decide_organization(&mut w.env(), &t, &ReviewAction::Accept("o1".into())).unwrap();
        assert_eq!(m.state, MatchState::Matched);
        assert_eq!(
            w.store.decisions["contoso"].action,
            ReviewAction::Accept("o1".into())
        );
        // Honoured later.
        let m = review_organization(&mut w.env(), &t).unwrap();
        assert_eq!(m.organization.map(|o| o.id).as_deref(), Some("o1"));

        let m = decide_organization(&mut w.env(), &t, &ReviewAction::Ignore).unwrap();
        assert_eq!(m.state, MatchState::Ignored);
        assert_eq!(
            review_organization(&mut w.env(), &t).unwrap().state,
            MatchState::Ignored
        );
    }

    #[test]
    fn create_makes_an_organization_only_when_nothing_matches() {
        use crate::types::MatchState;
        let mut w = World::new();
        w.store
            .checkpoints
            .insert(review::ORGANIZATION_NAME.into(), "Northwind Traders".into());
        w.store.organizations = vec![org("o1", "Fabrikam")];
        let t = tenant();
        assert_eq!(
            review_organization(&mut w.env(), &t).unwrap().state,
            MatchState::Unmatched
        );
        let m = decide_organization(&mut w.env(), &t, &ReviewAction::Create).unwrap();
        assert_eq!(m.state, MatchState::Matched);
        let created = m.organization.unwrap();
        assert_eq!(created.name, "Northwind Traders");
        assert_eq!(w.store.organizations.len(), 2);
        assert_eq!(
            w.store.decisions["contoso"].action,
            ReviewAction::Change(created.id.clone())
        );
    }
}
