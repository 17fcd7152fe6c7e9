//! Reads a host asks for outside a sync, each signing in app-only on its own and touching
//! no storage: a partner tenant's delegated admin relationships with its customers
//! (`engine.partner-relationships`, every page) and the credentials of the tenant's own app
//! registration (`engine.app-credentials`, how a host warns before a secret or certificate
//! expires). Both go through the run's Graph client (retries, throttling, paging), and
//! errors and log lines leave masked by its redactor. Any 403 is the permission the read
//! needs missing, whatever Graph's error code.

use crate::bindings::m365sync::engine::log::Level;
use crate::graph::client::Reply;
use crate::graph::paging::Pager;
use crate::graph::{GraphClient, Need};
use crate::platform::Env;
use crate::sources::{app_credentials, relationships};
use crate::sync::{self, CheckedTenant, log_line};
use crate::types::{
    AppCredential, Cloud, DelegatedRelationship, HttpFailure, PermissionDenied, SyncError, Tenant,
};
use crate::url::display_url;

/// `engine.partner-relationships`: every delegated admin relationship of the partner tenant.
pub fn partner_relationships(
    env: &mut Env<'_>,
    partner: &Tenant,
) -> Result<Vec<DelegatedRelationship>, SyncError> {
    let t = sync::check_tenant(partner)?;
    // tenantrelationship-list-delegatedadminrelationships.md: "Global service only".
    if t.cloud != Cloud::Global {
        return Err(SyncError::Unsupported(format!(
            "tenant {}: delegated admin relationships (GDAP) exist only in Microsoft's global \
             cloud, not in the {} cloud this tenant is configured for",
            t.key,
            crate::graph::token::cloud_name(t.cloud)
        )));
    }
    let mut graph = sync::graph_client(
        &mut *env.http,
        &mut *env.clock,
        &mut *env.secrets,
        &mut *env.credentials,
        &t,
    )?;
    let result = read_relationships(&mut graph);
    let redactor = graph.redactor().clone();
    let (found, pages) = result.map_err(|e| redactor.error(forbidden(e, relationships::NEED)))?;
    log_line(
        &mut *env.log,
        &redactor,
        Level::Info,
        &format!(
            "partner tenant {}: {} delegated admin relationship(s) in {pages} page(s)",
            t.key,
            found.len()
        ),
    );
    Ok(found)
}

/// Every page of the list, following `@odata.nextLink` on the Graph endpoint only.
fn read_relationships(
    graph: &mut GraphClient<'_>,
) -> Result<(Vec<DelegatedRelationship>, u32), SyncError> {
    let mut found = Vec::new();
    let mut pager = Pager::new(graph.graph(), relationships::url(graph.graph()));
    while let Some(url) = pager.next_url() {
        let page = match graph.get_json(
            &url,
            relationships::NEED,
            &[],
            "list of delegated admin relationships",
            |b| relationships::parse_page(b, &url),
        )? {
            Reply::Ok(page) => page,
            Reply::Resync(f) => return Err(SyncError::Http(f)),
        };
        pager.advance(&url, page.next_link)?;
        found.extend(page.items);
    }
    Ok((found, pager.pages()))
}

/// `engine.app-credentials`: the client secrets and certificates of the tenant's app
/// registration, read in the tenant (which must be the app's home tenant).
pub fn app_credentials(
    env: &mut Env<'_>,
    tenant: &Tenant,
) -> Result<Vec<AppCredential>, SyncError> {
    let t = sync::check_tenant(tenant)?;
    let mut graph = sync::graph_client(
        &mut *env.http,
        &mut *env.clock,
        &mut *env.secrets,
        &mut *env.credentials,
        &t,
    )?;
    let url = app_credentials::url(graph.graph(), &t.client_id);
    let result = graph
        .get_json(&url, app_credentials::NEED, &[], "application", |b| {
            app_credentials::parse(b, &url)
        })
        .and_then(|reply| match reply {
            Reply::Ok(found) => Ok(found),
            Reply::Resync(f) => Err(SyncError::Http(f)),
        });
    let redactor = graph.redactor().clone();
    let found = result
        .map_err(|e| not_home_tenant(forbidden(e, app_credentials::NEED), &t))
        .map_err(|e| redactor.error(e))?;
    log_line(
        &mut *env.log,
        &redactor,
        Level::Info,
        &format!(
            "app {} of tenant {}: {} credential(s)",
            t.client_id,
            t.key,
            found.len()
        ),
    );
    Ok(found)
}

/// A 403 of any code as the permission `need` names missing (a 403
/// `Authorization_RequestDenied` already is one).
fn forbidden(e: SyncError, need: Need) -> SyncError {
    match e {
        SyncError::Http(f) if f.status == Some(403) => SyncError::Permission(PermissionDenied {
            permission: need.permission.into(),
            feature: need.feature.into(),
            message: format!(
                "{} This read ({}) needs the Microsoft Graph application permission {}: add it \
                 to the app registration (API permissions) and grant admin consent.",
                f.message, need.feature, need.permission
            ),
        }),
        other => other,
    }
}

/// A 404 of the application: the app registration is not in this tenant.
fn not_home_tenant(e: SyncError, t: &CheckedTenant) -> SyncError {
    match e {
        SyncError::Http(f) if f.status == Some(404) => SyncError::Http(HttpFailure {
            message: format!(
                "{}. No app registration with application (client) id {} is in tenant {}: an \
                 app registration lives in its home tenant, the one it was registered in, and \
                 can be read only there (the other tenants that use a multi-tenant app hold \
                 only its service principal). Ask for the app's credentials with its home \
                 tenant.",
                f.message.trim_end_matches('.'),
                t.client_id,
                t.tenant_id
            ),
            url: display_url(&f.url),
            ..f
        }),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::m365sync::engine::credentials::CredentialError;
    use crate::fakes::{
        SECRET, World, cert_assertion, fake_jwt, json_response, tenant, token_response,
    };
    use crate::sources::relationships::tests::DOC_EXAMPLE;
    use crate::types::{AppCredentialKind, CredentialKind};

    const TOKEN: &str = "POST https://login.test/tenant-1/oauth2/v2.0/token";
    const GDAP: &str =
        "GET https://graph.test/v1.0/tenantRelationships/delegatedAdminRelationships";
    const APP: &str = "GET https://graph.test/v1.0/applications(appId='client-1')?$select=passwordCredentials,keyCredentials";

    fn page(ids: &[&str], next: Option<&str>) -> String {
        let value: Vec<_> = ids
            .iter()
            .map(|id| {
                serde_json::json!({
                    "id": id, "displayName": format!("rel {id}"), "status": "active",
                    "customer": {"tenantId": format!("tid-{id}"), "displayName": format!("Customer {id}")},
                    "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "role-1"}]},
                })
            })
            .collect();
        let mut v = serde_json::json!({ "value": value });
        if let Some(n) = next {
            v["@odata.nextLink"] = n.into();
        }
        v.to_string()
    }

    #[test]
    fn partner_relationships_reads_every_page() {
        let mut w = World::new();
        w.http.push_ok(TOKEN, token_response(&fake_jwt(&[]), 3600));
        let next =
            "https://graph.test/v1.0/tenantRelationships/delegatedAdminRelationships?$skiptoken=P2";
        w.http
            .push_ok(GDAP, json_response(200, &page(&["r1", "r2"], Some(next))));
        w.http
            .push_ok(&format!("GET {next}"), json_response(200, DOC_EXAMPLE));
        let found = partner_relationships(&mut w.env(), &tenant()).unwrap();
        let ids: Vec<_> = found.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(&ids[..2], ["r1", "r2"]);
        assert_eq!(found[0].customer_tenant_id, "tid-r1");
        assert_eq!(found[2].customer_display_name, "Contoso Inc");
        w.http.assert_done();
        assert!(w.store.commits.is_empty());
        assert!(
            w.log
                .lines
                .iter()
                .any(|(_, l)| l.contains("4 delegated admin relationship(s) in 2 page(s)")),
            "{:?}",
            w.log.lines
        );
    }

    #[test]
    fn partner_relationships_refused_is_the_permission_and_other_clouds_are_unsupported() {
        for body in [
            r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges to complete the operation."}}"#,
            r#"{"error":{"code":"Forbidden","message":"Access denied"}}"#,
        ] {
            let mut w = World::new();
            w.http.push_ok(TOKEN, token_response(&fake_jwt(&[]), 3600));
            w.http.push_ok(GDAP, json_response(403, body));
            let Err(SyncError::Permission(p)) = partner_relationships(&mut w.env(), &tenant())
            else {
                panic!()
            };
            assert_eq!(p.permission, "DelegatedAdminRelationship.Read.All");
            assert_eq!(p.feature, "partner");
            assert!(
                p.message.contains("DelegatedAdminRelationship.Read.All"),
                "{}",
                p.message
            );
        }
        let mut w = World::new();
        let mut t = tenant();
        t.cloud = Cloud::UsGov;
        let Err(SyncError::Unsupported(m)) = partner_relationships(&mut w.env(), &t) else {
            panic!()
        };
        assert!(m.contains("global cloud"), "{m}");
        assert!(w.http.sent.is_empty());
    }

    #[test]
    fn app_credentials_lists_secrets_and_certificates() {
        let mut w = World::new();
        w.http.push_ok(TOKEN, token_response(&fake_jwt(&[]), 3600));
        w.http.push_ok(
            APP,
            json_response(
                200,
                r#"{"passwordCredentials":[{"keyId":"k1","displayName":"sync","hint":"Ab1","endDateTime":"2026-01-01T00:00:00Z"}],
                    "keyCredentials":[{"keyId":"k2","displayName":"CN=app","endDateTime":"2027-01-01T00:00:00Z","key":"TUlJ"}]}"#,
            ),
        );
        let found = app_credentials(&mut w.env(), &tenant()).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].kind, AppCredentialKind::Password);
        assert_eq!(found[0].hint.as_deref(), Some("Ab1"));
        assert_eq!(found[1].kind, AppCredentialKind::Certificate);
        assert_eq!(
            found[1].end_date_time.as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        w.http.assert_done();
    }

    #[test]
    fn app_credentials_403_is_the_permission_and_404_names_the_home_tenant() {
        let mut w = World::new();
        w.http.push_ok(TOKEN, token_response(&fake_jwt(&[]), 3600));
        w.http.push_ok(
            APP,
            json_response(403, r#"{"error":{"code":"Authorization_RequestDenied","message":"Insufficient privileges"}}"#),
        );
        let Err(SyncError::Permission(p)) = app_credentials(&mut w.env(), &tenant()) else {
            panic!()
        };
        assert_eq!(
            (p.permission.as_str(), p.feature.as_str()),
            ("Application.Read.All", "credentials")
        );

        let mut w = World::new();
        w.http.push_ok(TOKEN, token_response(&fake_jwt(&[]), 3600));
        w.http.push_ok(
            APP,
            json_response(
                404,
                r#"{"error":{"code":"Request_ResourceNotFound","message":"Resource 'client-1' does not exist or one of its queried reference-property objects are not present."}}"#,
            ),
        );
        let Err(SyncError::Http(f)) = app_credentials(&mut w.env(), &tenant()) else {
            panic!()
        };
        assert_eq!(f.status, Some(404));
        assert_eq!(f.graph_code.as_deref(), Some("Request_ResourceNotFound"));
        for want in ["client-1", "tenant-1", "home tenant", "service principal"] {
            assert!(f.message.contains(want), "{want}: {}", f.message);
        }
    }

    #[test]
    fn the_reads_sign_in_with_an_assertion_when_the_tenant_says_so() {
        let mut w = World::new();
        let mut t = tenant();
        t.credential = CredentialKind::ClientAssertion;
        w.secrets.0.clear();
        w.credentials.push(Ok(cert_assertion(7)));
        w.http.push_ok(TOKEN, token_response(&fake_jwt(&[]), 3600));
        w.http.push_ok(
            APP,
            json_response(200, r#"{"passwordCredentials":[],"keyCredentials":[]}"#),
        );
        assert!(app_credentials(&mut w.env(), &t).unwrap().is_empty());
        let form = String::from_utf8(w.http.sent[0].body.clone().unwrap()).unwrap();
        assert!(
            form.contains(&format!("client_assertion={}", cert_assertion(7))),
            "{form}"
        );
        assert!(
            !form.contains(SECRET) && !form.contains("client_secret"),
            "{form}"
        );
        assert_eq!(
            w.credentials.audiences,
            vec!["https://login.test/tenant-1/oauth2/v2.0/token"]
        );

        // No assertion to be had: a secret error naming the source, nothing sent.
        let mut w = World::new();
        w.credentials.push(Err(CredentialError::Unreadable(
            "file /run/token: ENOENT".into(),
        )));
        let Err(SyncError::Secret(m)) = partner_relationships(&mut w.env(), &t) else {
            panic!()
        };
        assert!(m.contains("/run/token: ENOENT"), "{m}");
        assert!(w.http.sent.is_empty());
    }
}
