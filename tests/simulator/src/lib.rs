//! `m365sync-simulator`: a local stand-in for the Microsoft identity platform
//! token endpoint and Microsoft Graph v1.0, serving a deterministic, generated
//! tenant. Used by the end-to-end tests, the benchmark and `m365sync demo`.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use m365sync_simulator::{SimConfig, Simulator, TenantSpec};
//! let sim = Simulator::start(SimConfig::new(TenantSpec::new(42, 2500))).await?;
//! let creds = sim.credentials();
//! // POST {login_url}/{tenant_id}/oauth2/v2.0/token, then GET {graph_url}/v1.0/users
//! println!("{} {} {}", sim.login_url(), sim.graph_url(), creds.tenant_id);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Graph serves users (list, get, `/manager`, `users/delta` with
//! `$select=…,manager`, signInActivity), groups (list, get, `groups/delta`
//! with `members@delta`), the organization, subscribedSkus (service plans
//! included), domains, `admin/reportSettings` and the per-user usage reports
//! (`/reports/get…(period='D7')`), which redirect to a third listener, the
//! download host on 127.0.0.2 ([`Simulator::download_url`]).
//!
//! The directory can be changed while the simulator runs
//! ([`Simulator::create_users`], [`Simulator::update_users`],
//! [`Simulator::delete_users`], [`Simulator::restore_users`],
//! [`Simulator::create_group`], [`Simulator::add_group_members`],
//! [`Simulator::remove_group_members`], [`Simulator::delete_group`]) and
//! tracked with `GET /v1.0/users/delta` and `/v1.0/groups/delta`; throttling ([`Simulator::set_throttle`]), faults
//! ([`Simulator::inject_fault`]) and token expiry ([`Simulator::expire_tokens`],
//! [`Simulator::expire_delta_tokens`]) can be switched on at run time.
//!
//! `POST /v1.0/$batch` (JSON batching) runs up to 20 GETs through the same
//! handlers, with its own throttling schedule for the requests inside
//! ([`Simulator::set_batch_throttle`]) and its own log
//! ([`Simulator::batched_requests`]). The token endpoint issues tokens for
//! the Graph resource of one Microsoft cloud ([`SimConfig::cloud`]).
//!
//! The client authenticates with its secret, with a client assertion signed
//! by a certificate registered on the app ([`SimConfig::certificates`]), or
//! with an external identity provider's token that a federated identity
//! credential trusts ([`SimConfig::federated_credentials`]);
//! [`assertions`] signs both kinds for tests. A tenant can start without the
//! administrator's consent ([`SimConfig::consented`]) and get it through the
//! admin consent endpoint ([`Simulator::admin_consent_url`]). Graph also
//! serves the app registration with its credentials
//! (`/v1.0/applications(appId='…')`) and the partner's delegated admin
//! relationships (`/v1.0/tenantRelationships/delegatedAdminRelationships`,
//! [`SimConfig::delegated_admin_relationships`]).
//!
//! Behaviour follows Microsoft's documentation; each module cites the pages it
//! relies on.

mod applications;
pub mod assertions;
mod batch;
mod consent;
mod credentials;
mod delta;
mod directory;
mod download;
mod gdap;
mod graph;
mod groups;
mod names;
mod odata;
mod paging;
mod reports;
mod rng;
mod server;
mod tenant;
mod token;
mod userprops;
mod util;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use credentials::{FederatedCredential, PasswordCredential, TOKEN_EXCHANGE_AUDIENCE};
pub use gdap::{
    DEFAULT_ROLE_DEFINITION_IDS, DelegatedAdminRelationship, RelationshipStatus,
    sample_delegated_admin_relationships,
};
pub use reports::{PERIODS, ReportKind, ReportRow};
pub use tenant::{Domain, Group, GroupKind, Sku, Tenant, TenantSpec, User};

/// The application credentials a client uses against the token endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

/// A Microsoft cloud, which decides the Graph resource the token endpoint
/// issues tokens for. Each national cloud has its own Graph service root
/// (microsoftgraph/microsoft-graph-docs-contrib: concepts/deployments.md,
/// "Microsoft Graph and Graph Explorer service root endpoints"), and "access
/// tokens acquired for a national cloud deployment are not interchangeable with
/// those acquired for the global service or any other national cloud".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cloud {
    /// `https://graph.microsoft.com`, sign-in at login.microsoftonline.com.
    #[default]
    Global,
    /// US Government L4 (GCC High): `https://graph.microsoft.us`.
    UsGov,
    /// US Government L5 (DoD): `https://dod-graph.microsoft.us`.
    UsGovDod,
    /// Operated by 21Vianet: `https://microsoftgraph.chinacloudapi.cn`.
    China,
}

impl Cloud {
    /// The cloud's Microsoft Graph resource (service root), the application ID
    /// URI a client-credentials `scope` names: `{resource}/.default`.
    pub fn graph_resource(self) -> &'static str {
        match self {
            Cloud::Global => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn",
        }
    }

    /// The cloud's Microsoft Entra ID endpoint (deployments.md, "App
    /// registration and token service root endpoints").
    pub fn login_authority(self) -> &'static str {
        match self {
            Cloud::Global => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
}

/// How to run the simulator.
#[derive(Clone)]
pub struct SimConfig {
    pub tenant: TenantSpec,
    /// The registered application's client id (default: a GUID derived from the seed).
    pub client_id: String,
    /// The application's secret (default: a 40-character secret derived from the seed).
    pub client_secret: String,
    /// When true the token endpoint answers AADSTS7000222 (expired secret) to
    /// the right secret.
    pub secret_expired: bool,
    /// App roles put in the token's `roles` claim (default `["User.Read.All"]`).
    pub roles: Vec<String>,
    /// Delay added to every Graph request (default none: no sleeps at all).
    pub latency: Option<Duration>,
    /// `expires_in` of issued tokens, in seconds (default 3599).
    pub token_lifetime_secs: u64,
    /// When true (the default) Graph checks the token's `roles` against the
    /// application permissions each API documents and answers 403
    /// `Authorization_RequestDenied` when none is held.
    pub enforce_roles: bool,
    /// Whether the tenant has Microsoft Entra ID P1/P2 (default true). Without
    /// it, `$select=signInActivity` gets 403
    /// `Authentication_RequestFromNonPremiumTenantOrB2CTenant`.
    pub premium: bool,
    /// Whether usage reports conceal user names (the admin center's "display
    /// concealed user, group, and site names in all reports"; default false):
    /// user principal names and display names become 32 hex characters.
    pub concealed_reports: bool,
    /// The tenant's cloud (default global): the token endpoint accepts only a
    /// scope for this cloud's Graph resource (or Graph's application id) and
    /// answers any other with AADSTS70011 `invalid_scope`; tokens carry the
    /// resource as `aud`.
    pub cloud: Cloud,
    /// When true, a users/delta replay represents an updated user by its id
    /// and only the properties that changed, as with `Prefer: return=minimal`,
    /// even when the client did not ask for it (default false: the same
    /// properties as the initial round, user-delta.md). Graph is allowed to:
    /// "Updated instances are represented by their id with *at least* the
    /// properties that have been updated" (concepts/delta-query-overview.md),
    /// so a client must cope with it.
    pub minimal_updates: bool,
    /// When true, a token request body sent chunked (without `Content-Length`)
    /// reaches the token endpoint empty, as through a server or proxy that
    /// reads only Content-Length bodies (default false): it answers
    /// AADSTS900144 for the missing `grant_type`. (`$batch` is not affected.)
    pub content_length_bodies_only: bool,
    /// Report functions (e.g. "getSkypeForBusinessActivityUserDetail") the
    /// tenant's cloud no longer serves: Graph answers them `400 BadRequest`
    /// "Resource not found for the segment '{function}'." (default none).
    pub unserved_reports: Vec<String>,
    /// Whether `client_secret` is registered on the app (default true). When
    /// false, every secret gets AADSTS7000215 and Graph lists no password
    /// credential for it: the app authenticates with certificates or
    /// federated credentials only.
    pub secret_registered: bool,
    /// The client secrets Graph lists in the app's `passwordCredentials`.
    /// Default: one for `client_secret`, its `hint` the secret's first three
    /// characters, valid from 30 days before `SimConfig::new` until two years
    /// after. The entry whose hint is the secret's stands for it: once its
    /// end has passed, the secret gets AADSTS7000222, and with
    /// `secret_expired` Graph shows its end in the past.
    pub password_credentials: Vec<PasswordCredential>,
    /// PEM certificates registered on the app ("keyCredentials", default
    /// none): a client assertion signed with one's key and naming it by
    /// `x5t#S256`, `x5t` or `kid` authenticates the app.
    pub certificates: Vec<String>,
    /// Federated identity credentials on the app (default none): an external
    /// token matching one's issuer, subject and an audience, signed by the
    /// issuer's key, authenticates the app.
    pub federated_credentials: Vec<FederatedCredential>,
    /// Whether an administrator has consented to the app in this tenant
    /// (default true). While false, the token endpoint answers AADSTS700016
    /// ("… has not been installed by the administrator of the tenant …"), so
    /// nothing in Graph is reachable; the admin consent endpoint
    /// ([`Simulator::admin_consent_url`]) or [`Simulator::set_consented`]
    /// grants it.
    pub consented: bool,
    /// The redirect URIs registered on the app, which the admin consent
    /// endpoint accepts exactly. Default none: then any loopback URL
    /// (`http://127.0.0.1…`, `http://localhost…`) is accepted.
    pub redirect_uris: Vec<String>,
    /// The partner tenant's delegated admin relationships with its customers
    /// (GDAP; default none). See [`sample_delegated_admin_relationships`] and
    /// [`DelegatedAdminRelationship::new`].
    pub delegated_admin_relationships: Vec<DelegatedAdminRelationship>,
    /// Page size of delegatedAdminRelationships without `$top` (default 2,
    /// small so that clients must follow `@odata.nextLink`; not documented).
    pub delegated_admin_page_size: usize,
}

impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("tenant", &self.tenant)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("secret_expired", &self.secret_expired)
            .field("roles", &self.roles)
            .field("latency", &self.latency)
            .field("token_lifetime_secs", &self.token_lifetime_secs)
            .field("enforce_roles", &self.enforce_roles)
            .field("premium", &self.premium)
            .field("concealed_reports", &self.concealed_reports)
            .field("cloud", &self.cloud)
            .field("minimal_updates", &self.minimal_updates)
            .field(
                "content_length_bodies_only",
                &self.content_length_bodies_only,
            )
            .field("unserved_reports", &self.unserved_reports)
            .field("secret_registered", &self.secret_registered)
            .field("password_credentials", &self.password_credentials)
            .field("certificates", &self.certificates.len())
            .field("federated_credentials", &self.federated_credentials)
            .field("consented", &self.consented)
            .field("redirect_uris", &self.redirect_uris)
            .field(
                "delegated_admin_relationships",
                &self.delegated_admin_relationships.len(),
            )
            .field("delegated_admin_page_size", &self.delegated_admin_page_size)
            .finish()
    }
}

impl SimConfig {
    pub fn new(tenant: TenantSpec) -> Self {
        let mut r = rng::Rng::derived(tenant.seed, 0x00C1_1E17);
        let client_id = r.guid();
        // Entra client secrets are 40 characters: a 3-character key id, "8Q~"
        // style marker and random text drawn from this alphabet.
        const ALPHABET: &[u8] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~";
        let mut secret = String::with_capacity(40);
        for i in 0..40 {
            if i == 3 {
                secret.push('8');
            } else if i == 4 {
                secret.push('Q');
            } else if i == 5 {
                secret.push('~');
            } else {
                secret.push(*r.pick(ALPHABET) as char);
            }
        }
        let now = util::unix_now();
        let password_credentials = vec![PasswordCredential {
            key_id: r.guid(),
            display_name: "m365sync".to_string(),
            hint: secret.chars().take(3).collect(),
            start: now.saturating_sub(30 * 86_400),
            end: now + 730 * 86_400,
        }];
        SimConfig {
            tenant,
            client_id,
            client_secret: secret,
            secret_registered: true,
            password_credentials,
            certificates: Vec::new(),
            federated_credentials: Vec::new(),
            consented: true,
            redirect_uris: Vec::new(),
            delegated_admin_relationships: Vec::new(),
            delegated_admin_page_size: 2,
            secret_expired: false,
            roles: vec!["User.Read.All".to_string()],
            latency: None,
            token_lifetime_secs: 3599,
            enforce_roles: true,
            premium: true,
            concealed_reports: false,
            cloud: Cloud::Global,
            minimal_updates: false,
            content_length_bodies_only: false,
            unserved_reports: Vec::new(),
        }
    }
}

/// A throttling schedule for Graph requests (see [`Simulator::set_throttle`]).
/// Graph requests are counted from the moment the schedule is set, from 1; a
/// request is throttled when either rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Every Nth Graph request is throttled (N, 2N, 3N…).
    pub every_nth: Option<u32>,
    /// `(start, count)`: Graph requests `start..start + count` are throttled.
    pub burst: Option<(usize, usize)>,
    /// 429, or 503 / 504.
    pub status: u16,
    /// Sent as `Retry-After` (seconds) when set.
    pub retry_after_secs: Option<u32>,
}

impl Throttle {
    /// 429 on every Nth Graph request, with `Retry-After: retry_after_secs`.
    pub fn every(n: u32, retry_after_secs: u32) -> Throttle {
        Throttle {
            every_nth: Some(n),
            burst: None,
            status: 429,
            retry_after_secs: Some(retry_after_secs),
        }
    }
}

/// How an injected fault shows itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 500 with a Graph error body (`generalException`).
    ServerError,
    /// The TCP connection is closed without a response (recorded with status 0).
    ResetConnection,
    /// A 200 whose `Content-Length` promises more bytes than are sent before
    /// the connection closes.
    TruncatedBody,
    /// A 200 with a syntactically broken JSON body.
    InvalidJson,
    /// A paging loop: the first answer due that has an `@odata.nextLink` is
    /// served as it is, and every later one links back to that first page
    /// (A → B → A …), as a faulty server or proxy might.
    PagingLoop,
    /// A 200 whose `Content-Length` announces 255,000,000 bytes, of which 12
    /// are sent before the connection closes.
    LyingContentLength,
}

/// A fault schedule for Graph requests (see [`Simulator::inject_fault`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// This many Graph requests (counted from the moment the fault is set) are
    /// served normally first.
    pub after_graph_requests: usize,
    /// How many requests then fail; `None`: every one until cleared.
    pub count: Option<usize>,
    pub kind: FaultKind,
}

/// One request inside a `POST /v1.0/$batch`, as the simulator answered it
/// (see [`Simulator::batched_requests`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchedRequest {
    /// Which `$batch` call carried it: 1 for the first the simulator answered
    /// with a `responses` list, 2 for the next, ...
    pub batch: usize,
    /// The request's `id` in the batch.
    pub id: String,
    pub method: String,
    /// The path as Graph resolved it (with `/v1.0`, still percent-encoded).
    pub path: String,
    /// The raw query string without `?`, or "".
    pub query: String,
    /// The status answered inside the batch.
    pub status: u16,
}

/// Which of the three listeners received a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// The identity platform (token endpoint).
    Login,
    /// Microsoft Graph.
    Graph,
    /// The report download host (pre-authenticated URLs).
    Download,
}

/// One request the simulator answered. Secrets are never recorded: the token
/// endpoint takes them in the body, which is not kept, and a `client_secret`
/// wrongly sent in a query string is redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub host: Host,
    pub method: String,
    /// The path as received (still percent-encoded).
    pub path: String,
    /// The raw query string without `?` (still percent-encoded), or "".
    pub query: String,
    /// The status answered; 0 when the connection was reset without one.
    pub status: u16,
    /// True if the request carried `Authorization: Bearer …`.
    pub authorization: bool,
}

/// A running simulator: three HTTP/1.1 listeners, the login and Graph hosts on
/// 127.0.0.1 and the report download host on 127.0.0.2.
pub struct Simulator {
    shared: Arc<server::Shared>,
    login_addr: SocketAddr,
    graph_addr: SocketAddr,
    download_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("login_url", &self.login_url())
            .field("graph_url", &self.graph_url())
            .field("download_url", &self.download_url())
            .field("tenant_id", &self.shared.tenant.id)
            .finish()
    }
}

impl Simulator {
    /// Generates the tenant and binds three listeners with random ports: the
    /// login (token) host and Graph on 127.0.0.1, and the report download
    /// host on 127.0.0.2 — another host name, as Microsoft's download URLs are
    /// on another host than Graph, so that an HTTP client following the
    /// redirect treats it as a different origin (Linux routes all of 127/8 to
    /// loopback). Where 127.0.0.2 cannot be bound, the download host falls
    /// back to 127.0.0.1 (a warning is printed to stderr). Must be called
    /// within a Tokio runtime.
    pub async fn start(config: SimConfig) -> anyhow::Result<Simulator> {
        for (i, pem) in config.certificates.iter().enumerate() {
            credentials::parse_certificate(pem)
                .map_err(|e| anyhow::anyhow!("SimConfig::certificates[{i}]: {e}"))?;
        }
        for (i, f) in config.federated_credentials.iter().enumerate() {
            credentials::parse_certificate(&f.issuer_certificate_pem).map_err(|e| {
                anyhow::anyhow!("SimConfig::federated_credentials[{i}].issuer_certificate_pem: {e}")
            })?;
        }
        let login = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let graph = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let download = match tokio::net::TcpListener::bind(("127.0.0.2", 0)).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "m365sync-simulator: cannot bind 127.0.0.2 ({e}); the report download host falls back to 127.0.0.1"
                );
                tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?
            }
        };
        let login_addr = login.local_addr()?;
        let graph_addr = graph.local_addr()?;
        let download_addr = download.local_addr()?;
        let login_url = format!("http://{login_addr}");
        let graph_url = format!("http://{graph_addr}");
        let download_url = format!("http://{download_addr}");
        let shared = Arc::new(server::Shared::new(
            config,
            login_url,
            graph_url,
            download_url,
        ));
        let (stop, stop_rx) = watch::channel(false);
        let tasks = vec![
            server::spawn(login, Host::Login, shared.clone(), stop_rx.clone()),
            server::spawn(graph, Host::Graph, shared.clone(), stop_rx.clone()),
            server::spawn(download, Host::Download, shared.clone(), stop_rx),
        ];
        Ok(Simulator {
            shared,
            login_addr,
            graph_addr,
            download_addr,
            stop,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn login_url(&self) -> String {
        format!("http://{}", self.login_addr)
    }

    /// `http://127.0.0.1:PORT2`, no trailing slash.
    pub fn graph_url(&self) -> String {
        format!("http://{}", self.graph_addr)
    }

    /// `http://127.0.0.2:PORT3` (or `http://127.0.0.1:PORT3` where 127.0.0.2
    /// could not be bound), no trailing slash: the host report redirects
    /// point at (`{download_url}/data/download/{token}`).
    pub fn download_url(&self) -> String {
        format!("http://{}", self.download_addr)
    }

    /// `{login_url}/{tenant_id}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.login_url(),
            self.shared.tenant.id
        )
    }

    /// `{login_url}/{tenant_id}/v2.0/adminconsent`: the admin consent
    /// endpoint (v2-admin-consent.md), to which a client adds `client_id`,
    /// `scope`, `redirect_uri` and `state`. `GET` shows the consent page;
    /// `POST` with `decision=approve` (or `decline`) to the same URL answers
    /// the redirect.
    pub fn admin_consent_url(&self) -> String {
        format!(
            "{}/{}/v2.0/adminconsent",
            self.login_url(),
            self.shared.tenant.id
        )
    }

    /// Whether an administrator has consented to the app in the tenant.
    pub fn is_consented(&self) -> bool {
        self.shared.is_consented()
    }

    /// Grants (or withdraws) the administrator's consent: while withdrawn,
    /// the token endpoint answers AADSTS700016. Tokens already issued stay
    /// valid.
    pub fn set_consented(&self, consented: bool) {
        self.shared.set_consented(consented);
    }

    /// How many accepted certificate client assertions carried a `jti` an
    /// earlier, unexpired one had (Entra accepts them; see [`assertions`]).
    pub fn assertion_jti_reuses(&self) -> usize {
        self.shared.assertion_jti_reuses()
    }

    /// The delegated admin relationships Graph serves now.
    pub fn delegated_admin_relationships(&self) -> Vec<DelegatedAdminRelationship> {
        self.shared.delegated_admin_relationships()
    }

    /// Replaces the delegated admin relationships Graph serves.
    pub fn set_delegated_admin_relationships(
        &self,
        relationships: Vec<DelegatedAdminRelationship>,
    ) {
        self.shared.set_delegated_admin_relationships(relationships);
    }

    pub fn credentials(&self) -> Credentials {
        Credentials {
            tenant_id: self.shared.tenant.id.clone(),
            client_id: self.shared.config.client_id.clone(),
            client_secret: self.shared.config.client_secret.clone(),
        }
    }

    /// A snapshot of the tenant as it is now: ground truth for tests. `users`
    /// holds the current (live) users in creation order, without deleted
    /// ones; `groups` the live groups with their current members; SKUs'
    /// `consumedUnits` are counted from the users; `report_refresh_date` is
    /// the date the usage reports served now carry.
    pub fn tenant(&self) -> Tenant {
        self.shared.snapshot()
    }

    /// Generates `n` new users (same generator as the tenant's, with unique
    /// ids, UPNs and mail addresses, created now) and returns their ids.
    pub fn create_users(&self, n: usize) -> Vec<String> {
        let now = self.shared.now();
        self.shared.dir_mut().create(n, now)
    }

    /// Applies `change` to each live user named (by id or UPN; unknown or
    /// deleted ones are ignored) and records which properties changed. The id
    /// cannot be changed. A user that `change` leaves as it was does not count
    /// as changed.
    pub fn update_users(&self, ids: &[String], change: impl Fn(&mut User)) {
        self.shared.dir_mut().update(ids, &change);
    }

    /// Deletes users: to the directory's deleted items (restorable; delta shows
    /// `"@removed": {"reason": "changed"}`) or, with `permanently`, for good
    /// (`"reason": "deleted"`). A soft-deleted user can later be deleted
    /// permanently. Deleted users leave their groups (groups/delta shows them
    /// removed; a restore puts them back), and their reports lose their
    /// manager.
    pub fn delete_users(&self, ids: &[String], permanently: bool) {
        self.shared.dir_mut().delete(ids, permanently);
    }

    /// Restores soft-deleted users; delta then shows them in full again.
    pub fn restore_users(&self, ids: &[String]) {
        self.shared.dir_mut().restore(ids);
    }

    /// Creates a group with the live users named (by id or UPN) as members;
    /// returns its id. Mail-enabled kinds get an address on the default
    /// domain.
    pub fn create_group(&self, name: &str, kind: GroupKind, members: &[String]) -> String {
        let now = self.shared.now();
        self.shared.dir_mut().create_group(name, kind, members, now)
    }

    /// Adds live users (by id or UPN) to a live group (by id); users already
    /// in it are skipped. groups/delta shows them in `members@delta`.
    pub fn add_group_members(&self, group: &str, users: &[String]) {
        self.shared.dir_mut().add_group_members(group, users);
    }

    /// Removes users from a live group; groups/delta shows them in
    /// `members@delta` with `"@removed": {"reason": "deleted"}`.
    pub fn remove_group_members(&self, group: &str, users: &[String]) {
        self.shared.dir_mut().remove_group_members(group, users);
    }

    /// Deletes a group: a Microsoft 365 group goes to the deleted items
    /// (groups/delta: `"@removed": {"reason": "changed"}`), other kinds are
    /// deleted permanently (`"reason": "deleted"`).
    pub fn delete_group(&self, group: &str) {
        self.shared.dir_mut().delete_group(group);
    }

    /// What a usage report served now says about each user:
    /// `self.tenant().report_rows(report, period_days)` (see
    /// [`Tenant::report_rows`]).
    pub fn report_rows(&self, report: ReportKind, period_days: u16) -> Vec<ReportRow> {
        self.tenant().report_rows(report, period_days)
    }

    /// Every users/delta and groups/delta `$skiptoken` and `$deltatoken`
    /// issued so far becomes invalid: replaying one gets 410 Gone
    /// `syncStateNotFound` with a `Location` header for a fresh initial round.
    pub fn expire_delta_tokens(&self) {
        self.shared.expire_delta_tokens();
    }

    /// Every access token issued so far is rejected from now on with 401
    /// `InvalidAuthenticationToken` ("Lifetime validation failed, the token is
    /// expired."); tokens issued afterwards work.
    pub fn expire_tokens(&self) {
        self.shared.rotate_token_key();
    }

    /// The `roles` claim of tokens issued from now on.
    pub fn set_roles(&self, roles: Vec<String>) {
        self.shared.set_roles(roles);
    }

    /// Sets (or with `None` clears) the throttling schedule; Graph requests
    /// are counted from now.
    pub fn set_throttle(&self, throttle: Option<Throttle>) {
        self.shared.set_throttle(throttle);
    }

    /// Sets (or with `None` clears) a throttling schedule for the requests
    /// inside `POST /v1.0/$batch` calls, counted one by one from now (the
    /// schedule of [`Simulator::set_throttle`] counts the batch call itself as
    /// one Graph request). A request due is answered inside the batch with the
    /// schedule's status and `Retry-After`: "Requests in a batch are evaluated
    /// individually against throttling limits and if any request exceeds the
    /// limits, it fails with a `status` of `429`" (concepts/throttling.md,
    /// "Throttling and batching").
    pub fn set_batch_throttle(&self, throttle: Option<Throttle>) {
        self.shared.set_batch_throttle(throttle);
    }

    /// Every request received inside `$batch` calls, in the order answered.
    pub fn batched_requests(&self) -> Vec<BatchedRequest> {
        self.shared.batched_requests()
    }

    /// Sets (or with `None` clears) the fault schedule; Graph requests are
    /// counted from now. When a request is due for both throttling and a
    /// fault, it is throttled.
    pub fn inject_fault(&self, fault: Option<Fault>) {
        self.shared.set_fault(fault);
    }

    /// Every request received on both hosts, in the order they were answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests()
    }

    /// The requests received on the Graph host, in order.
    pub fn graph_requests(&self) -> Vec<RecordedRequest> {
        self.shared
            .requests()
            .into_iter()
            .filter(|r| r.host == Host::Graph)
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.shared.request_count()
    }

    /// TCP connections accepted so far by all three listeners (a client that keeps
    /// connections alive opens fewer than it sends requests).
    pub fn connections(&self) -> usize {
        [Host::Login, Host::Graph, Host::Download]
            .into_iter()
            .map(|host| self.shared.connections(host))
            .sum()
    }

    /// TCP connections accepted so far by one listener.
    pub fn connections_to(&self, host: Host) -> usize {
        self.shared.connections(host)
    }

    /// Stops the listeners and closes open connections.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod http_tests;
