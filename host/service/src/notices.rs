//! Looking again, outside syncs, at what will break a tenant's syncs, and keeping it as the
//! tenant's notices in the store (see `m365sync_store::notices`): the credentials it signs
//! in with that end within [`expiry::WARN_DAYS`] (the config's `client_secret_expires`, and the
//! app registration's secrets and certificates read from Graph in the app's home tenant),
//! and, for a customer a `[[partner]]` added, the partner's delegated admin relationships
//! ending or ended. `serve` does it at start and daily; `status`, the API, `/metrics` and
//! `sync` show the notices, and each new one (or new stage) is a change-feed event.
//!
//! A customer whose relationships have all ended is stopped: [`stopped`] says why, and a
//! run of it is refused with that message instead of signing in.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use m365sync_config::{ConfigFile, TenantRun};
use m365sync_runtime::{EventSink, Runtime};
use m365sync_store::notices::{Notice, NoticeKind, NoticeStage};
use m365sync_store::{StoreBackend, StoreError};

use crate::expiry;

/// The key of the notice of a tenant's config secret (`client_secret_expires`), which
/// views show as their `credential_expiry` instead.
pub const CONFIG_SECRET_KEY: &str = "config:client-secret";

/// What a refresh found and could not read.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// The notices set, of every tenant.
    pub notices: Vec<Notice>,
    /// Change-feed events appended (new notices, new stages).
    pub events: u32,
    /// What could not be read (an app's credentials, a partner's relationships): the
    /// notices it would have given are left as they were.
    pub errors: Vec<String>,
}

/// Look again at every tenant's credentials and partner relationships as of `now`, and
/// set their notices in `store`.
pub async fn refresh(
    runtime: &Runtime,
    config: &ConfigFile,
    store: &dyn StoreBackend,
    now: jiff::Timestamp,
    sink: Arc<dyn EventSink>,
) -> Result<Refreshed, StoreError> {
    let mut refreshed = Refreshed::default();
    // Read once: the tenants to run, and below the partners' customers among them.
    let registered = store.registered_tenants().await?;
    let runs = crate::onboarding::runs_with(config, &registered);
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();

    // The apps' own credentials, read once per app.
    let mut app_notices: HashMap<String, Option<Vec<Notice>>> = HashMap::new();
    for read in expiry::app_credentials(runtime, config, now, sink.clone()).await {
        let notices = match &read.error {
            Some(error) => {
                refreshed.errors.push(format!(
                    "app {}: reading its credentials in tenant {}: {error}",
                    read.app, read.home_tenant_id
                ));
                None
            }
            None => Some(app_credential_notices(&read)),
        };
        app_notices.insert(read.app.clone(), notices);
    }
    for run in &runs {
        let tenant = &run.tenant.key;
        let mut notices: Vec<Notice> = config_secret_notice(run, today).into_iter().collect();
        let app_read = run.app.as_ref().and_then(|app| app_notices.get(app));
        match app_read {
            Some(Some(read)) => notices.extend(read.iter().cloned()),
            // Not read this time: the app's notices stand as they were.
            Some(None) => {
                notices.extend(
                    store.notices(Some(tenant)).await?.into_iter().filter(|n| {
                        n.kind == NoticeKind::SecretExpiring && n.key.starts_with("app:")
                    }),
                )
            }
            None => {}
        }
        for notice in &mut notices {
            notice.tenant = tenant.clone();
        }
        refreshed.events += store
            .set_notices(
                tenant,
                NoticeKind::SecretExpiring,
                &notices,
                now.as_millisecond(),
            )
            .await?;
        refreshed.notices.extend(notices);
    }

    // Partners' customers: the tenants registered through each partner.
    for partner in &config.partners {
        let customers: Vec<_> = registered
            .iter()
            .filter(|t| t.partner.as_deref() == Some(partner.name.as_str()))
            .collect();
        if customers.is_empty() {
            continue;
        }
        let relationships =
            match crate::partner::relationships(runtime, config, partner, sink.clone()).await {
                Ok(relationships) => relationships,
                Err(error) => {
                    refreshed.errors.push(format!(
                        "partner {}: reading its delegated admin relationships: {error}",
                        partner.name
                    ));
                    continue;
                }
            };
        for customer in customers {
            let none = Vec::new();
            let theirs = relationships.get(&customer.tenant_id).unwrap_or(&none);
            let notices = if theirs.is_empty() {
                vec![no_relationship(partner, customer)]
            } else {
                crate::partner::relationship_notices(
                    &customer.name,
                    &customer.tenant_id,
                    theirs,
                    now,
                )
            };
            refreshed.events += store
                .set_notices(
                    &customer.name,
                    NoticeKind::RelationshipEnding,
                    &notices,
                    now.as_millisecond(),
                )
                .await?;
            refreshed.notices.extend(notices);
        }
    }
    Ok(refreshed)
}

/// Why `tenant` must not run, when a notice says so (see [`stopping`]).
pub async fn stopped(store: &dyn StoreBackend, tenant: &str) -> Result<Option<String>, StoreError> {
    let notices = store.notices(Some(tenant)).await?;
    Ok(stopping(&notices).map(|n| n.message.clone()))
}

/// The notice among a tenant's `notices` that stops it: every delegated admin
/// relationship of the partner that added it has ended.
pub fn stopping(notices: &[Notice]) -> Option<&Notice> {
    notices
        .iter()
        .find(|n| n.kind == NoticeKind::RelationshipEnding && n.stage == NoticeStage::Ended)
}

/// Each tenant's notices as views and reports show them, by tenant (tenants without any
/// left out): all but the config secret's, which they show as `credential_expiry`,
/// computed from the config and always current.
pub async fn shown_by_tenant(
    store: &dyn StoreBackend,
) -> Result<BTreeMap<String, Vec<Notice>>, StoreError> {
    let mut by_tenant: BTreeMap<String, Vec<Notice>> = BTreeMap::new();
    for notice in store.notices(None).await? {
        if notice.key == CONFIG_SECRET_KEY {
            continue;
        }
        by_tenant
            .entry(notice.tenant.clone())
            .or_default()
            .push(notice);
    }
    Ok(by_tenant)
}

/// Whole days from `now` to a notice's end (a date or RFC 3339), negative once it passed.
pub fn days_left(ends: &str, now: jiff::Timestamp) -> Option<i64> {
    let end = match ends.parse::<jiff::Timestamp>() {
        Ok(end) => end,
        Err(_) => ends
            .parse::<jiff::civil::Date>()
            .ok()?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp(),
    };
    Some(expiry::days_until(end, now))
}

/// The config's client secret, from [`expiry::WARN_DAYS`] before its end.
fn config_secret_notice(run: &TenantRun, today: jiff::civil::Date) -> Option<Notice> {
    let expiry = expiry::credential_expiry(run, today).filter(|e| e.warn)?;
    Some(Notice {
        tenant: run.tenant.key.clone(),
        kind: NoticeKind::SecretExpiring,
        key: CONFIG_SECRET_KEY.to_string(),
        stage: stage(expiry.days_left),
        ends: expiry.expires,
        message: expiry.message,
        raised_ms: 0,
    })
}

/// An app's secrets and certificates that end within [`expiry::WARN_DAYS`], as notices (of no
/// tenant yet).
fn app_credential_notices(read: &expiry::AppCredentials) -> Vec<Notice> {
    read.credentials
        .iter()
        .filter(|c| c.warn)
        .filter_map(|c| {
            let days = c.days_left?;
            let ends = c.end_date_time.clone()?;
            let what = match (&c.kind[..], &c.display_name) {
                ("password", Some(name)) => format!("client secret {name:?}"),
                ("password", None) => "a client secret".to_string(),
                (_, Some(name)) => format!("certificate {name:?}"),
                (_, None) => "a certificate".to_string(),
            };
            let owner = format!("{what} (key id {}) of app {:?}", c.key_id, read.app);
            let day = ends.get(..10).unwrap_or(&ends);
            let message = if days < 0 {
                format!(
                    "{owner} ended on {day}: sign-ins with it fail (AADSTS7000222 for a \
                     secret) until a new one is added under Certificates & secrets in the \
                     app registration and the config uses it"
                )
            } else {
                format!(
                    "{owner} ends on {day} (in {days} day{}): add a new one under \
                     Certificates & secrets in the app registration, switch the config to \
                     it, and remove the old one",
                    if days == 1 { "" } else { "s" }
                )
            };
            Some(Notice {
                tenant: String::new(),
                kind: NoticeKind::SecretExpiring,
                key: format!("app:{}:{}", read.app, c.key_id),
                stage: stage(days),
                ends,
                message,
                raised_ms: 0,
            })
        })
        .collect()
}

/// A partner's customer with no relationship left at all (deleted, or never approved).
fn no_relationship(
    partner: &m365sync_config::PartnerSection,
    customer: &m365sync_store::onboarding::RegisteredTenant,
) -> Notice {
    Notice {
        tenant: customer.name.clone(),
        kind: NoticeKind::RelationshipEnding,
        key: format!("relationship:{}", customer.tenant_id),
        stage: NoticeStage::Ended,
        ends: String::new(),
        message: format!(
            "partner {} has no delegated admin relationship with this customer any more: \
             its syncs are stopped until the customer approves a new relationship",
            partner.name
        ),
        raised_ms: 0,
    }
}

fn stage(days_left: i64) -> NoticeStage {
    if days_left < 0 {
        NoticeStage::Ended
    } else {
        NoticeStage::Ending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_left_reads_dates_and_times() {
        let now: jiff::Timestamp = "2027-04-01T12:00:00Z".parse().unwrap();
        assert_eq!(days_left("2027-05-01", now), Some(29));
        assert_eq!(days_left("2027-05-01T12:00:00Z", now), Some(30));
        assert_eq!(days_left("2027-03-31T00:00:00Z", now), Some(-2));
        assert_eq!(days_left("", now), None);
    }

    #[test]
    fn an_apps_credentials_ending_soon_are_its_notices() {
        let read = expiry::AppCredentials {
            app: "sync".into(),
            home_tenant_id: "home".into(),
            credentials: vec![
                expiry::ReadCredential {
                    kind: "password".into(),
                    key_id: "k1".into(),
                    display_name: Some("prod".into()),
                    hint: Some("abc".into()),
                    end_date_time: Some("2027-04-20T00:00:00Z".into()),
                    days_left: Some(19),
                    warn: true,
                },
                expiry::ReadCredential {
                    kind: "certificate".into(),
                    key_id: "k2".into(),
                    display_name: None,
                    hint: None,
                    end_date_time: Some("2030-01-01T00:00:00Z".into()),
                    days_left: Some(1000),
                    warn: false,
                },
                expiry::ReadCredential {
                    kind: "certificate".into(),
                    key_id: "k3".into(),
                    display_name: Some("CN=old".into()),
                    hint: None,
                    end_date_time: Some("2027-03-01T00:00:00Z".into()),
                    days_left: Some(-31),
                    warn: true,
                },
            ],
            error: None,
        };
        let notices = app_credential_notices(&read);
        let said: Vec<_> = notices
            .iter()
            .map(|n| (n.key.as_str(), n.stage, n.message.as_str()))
            .collect();
        assert_eq!(said.len(), 2, "{said:?}");
        assert_eq!((said[0].0, said[0].1), ("app:sync:k1", NoticeStage::Ending));
        assert!(
            said[0].2.starts_with(
                "client secret \"prod\" (key id k1) of app \"sync\" ends on 2027-04-20 (in 19 days)"
            ),
            "{}",
            said[0].2
        );
        assert_eq!((said[1].0, said[1].1), ("app:sync:k3", NoticeStage::Ended));
        assert!(said[1].2.contains("ended on 2027-03-01"), "{}", said[1].2);
        // The hint (a secret's first characters) is never in a notice.
        assert!(notices.iter().all(|n| !n.message.contains("abc")));
    }
}
