//! Credentials that stop working on a known day: a client secret's end date, from the
//! config (`client_secret_expires`). A platform learns it ahead of time instead of from a
//! night of failed syncs (AADSTS7000222): from [`WARN_DAYS`] days before, `status`, the
//! API's tenant view, `/metrics` and each sync say which secret ends and when; once it has
//! ended, the warning says how to rotate it.

use serde::Serialize;

use m365sync_config::{Credential, TenantRun};

/// How many days before its end a credential is warned about.
pub const WARN_DAYS: i64 = 30;

/// A tenant's credential with a known end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CredentialExpiry {
    /// The `[[app]]` whose credential it is (none: the tenant's own).
    pub app: Option<String>,
    /// Which credential, and where it is read from (never its value).
    pub credential: String,
    /// The day it ends, YYYY-MM-DD.
    pub expires: String,
    /// Days from today to that day (negative once it has passed).
    pub days_left: i64,
    /// Within [`WARN_DAYS`] of its end, or past it.
    pub warn: bool,
    /// What to do, in words.
    pub message: String,
}

/// The end of `run`'s credential as of `today`, when the config says when it ends.
pub fn credential_expiry(run: &TenantRun, today: jiff::civil::Date) -> Option<CredentialExpiry> {
    let Credential::ClientSecret {
        expires: Some(expires),
        ..
    } = &run.credential
    else {
        return None;
    };
    // Between two civil dates the span is in days (jiff's default largest unit).
    let days_left = today
        .until(*expires)
        .map_or(0, |span| i64::from(span.get_days()));
    let owner = match &run.app {
        Some(app) => format!(
            "the client secret of app {app:?} ({})",
            run.tenant.client_id
        ),
        None => format!("the client secret of app {}", run.tenant.client_id),
    };
    let message = if days_left < 0 {
        format!(
            "{owner} expired on {expires}: sign-ins fail with AADSTS7000222 until a new \
             secret is added under Certificates & secrets in the app registration and the \
             config's secret and client_secret_expires are updated"
        )
    } else {
        format!(
            "{owner} expires on {expires} (in {days_left} day{}): add a new secret under \
             Certificates & secrets in the app registration, put it in the config's secret \
             source and client_secret_expires, and remove the old one",
            if days_left == 1 { "" } else { "s" }
        )
    };
    Some(CredentialExpiry {
        app: run.app.clone(),
        credential: run.credential.describe(),
        expires: expires.to_string(),
        days_left,
        warn: days_left <= WARN_DAYS,
        message,
    })
}

/// An app registration's own credentials as Graph lists them, with their ends.
#[derive(Debug, Clone, Serialize)]
pub struct AppCredentials {
    pub app: String,
    /// The app's home tenant, where they were read.
    pub home_tenant_id: String,
    pub credentials: Vec<ReadCredential>,
    /// Why they could not be read (e.g. Application.Read.All missing).
    pub error: Option<String>,
}

/// One secret or certificate of an app registration: never its value.
#[derive(Debug, Clone, Serialize)]
pub struct ReadCredential {
    /// `password` (a client secret) or `certificate`.
    pub kind: String,
    pub key_id: String,
    pub display_name: Option<String>,
    /// A secret's first characters, as Graph shows them.
    pub hint: Option<String>,
    /// RFC 3339.
    pub end_date_time: Option<String>,
    /// Whole days from now to its end (negative once ended).
    pub days_left: Option<i64>,
    /// Within [`WARN_DAYS`] of its end, or past it.
    pub warn: bool,
}

/// The secrets and certificates of every `[[app]]` that names its `home_tenant_id`, read
/// from Graph (`engine.app-credentials`, needs Application.Read.All in that tenant), as of
/// `now`.
pub async fn app_credentials(
    runtime: &m365sync_runtime::Runtime,
    config: &m365sync_config::ConfigFile,
    now: jiff::Timestamp,
    sink: std::sync::Arc<dyn m365sync_runtime::EventSink>,
) -> Vec<AppCredentials> {
    let mut all = Vec::new();
    for app in &config.apps {
        let Some(home) = &app.home_tenant_id else {
            continue;
        };
        let run = config.app_run(app, &app.name, home, app.cloud, app.endpoints.as_ref());
        let (credentials, error) = match runtime.app_credentials(&run, sink.clone()).await {
            Ok(read) => (read.iter().map(|c| read_credential(c, now)).collect(), None),
            Err(error) => (Vec::new(), Some(error.to_string())),
        };
        all.push(AppCredentials {
            app: app.name.clone(),
            home_tenant_id: home.clone(),
            credentials,
            error,
        });
    }
    all
}

fn read_credential(
    credential: &m365sync_wit::types::AppCredential,
    now: jiff::Timestamp,
) -> ReadCredential {
    use m365sync_wit::names::WitName;
    let days_left = credential
        .end_date_time
        .as_deref()
        .and_then(|end| end.parse::<jiff::Timestamp>().ok())
        .map(|end| days_until(end, now));
    ReadCredential {
        kind: credential.kind.name().to_string(),
        key_id: credential.key_id.clone(),
        display_name: credential.display_name.clone(),
        hint: credential.hint.clone(),
        end_date_time: credential.end_date_time.clone(),
        days_left,
        warn: days_left.is_some_and(|d| d <= WARN_DAYS),
    }
}

/// Whole days from `now` to `end`, counted down (negative once it has passed): how every
/// end read from Graph is warned about.
pub fn days_until(end: jiff::Timestamp, now: jiff::Timestamp) -> i64 {
    (end.as_second() - now.as_second()).div_euclid(86_400)
}

/// Now (what Graph's end dates are compared with).
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

/// Today, in UTC (the day a secret's end date is compared with).
pub fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

#[cfg(test)]
mod tests {
    use super::*;
    use m365sync_config::{ConfigFile, SecretSource};
    use std::path::Path;

    fn run(expires: &str) -> TenantRun {
        let text = format!(
            "[[tenant]]\nname = \"t\"\ntenant_id = \"t.onmicrosoft.com\"\n\
             client_id = \"11111111-2222-3333-4444-555555555555\"\n\
             client_secret_env = \"S\"\nclient_secret_expires = \"{expires}\"\n"
        );
        let config = ConfigFile::parse(&text, Path::new("t.toml")).unwrap();
        config.resolve(&config.tenants[0])
    }

    #[test]
    fn a_secret_is_warned_about_from_thirty_days_before_its_end() {
        let today = jiff::civil::date(2027, 4, 1);
        let far = credential_expiry(&run("2027-06-01"), today).unwrap();
        assert_eq!((far.days_left, far.warn), (61, false));
        let near = credential_expiry(&run("2027-05-01"), today).unwrap();
        assert_eq!((near.days_left, near.warn), (30, true));
        assert!(
            near.message.contains("expires on 2027-05-01 (in 30 days)"),
            "{}",
            near.message
        );
        assert!(near.credential.contains("environment variable S"));
        let past = credential_expiry(&run("2027-03-31"), today).unwrap();
        assert_eq!((past.days_left, past.warn), (-1, true));
        assert!(past.message.contains("AADSTS7000222"), "{}", past.message);
    }

    #[test]
    fn no_end_date_no_expiry() {
        let mut run = run("2027-06-01");
        run.credential = SecretSource::Env("S".into()).into();
        assert_eq!(credential_expiry(&run, today()), None);
    }
}
